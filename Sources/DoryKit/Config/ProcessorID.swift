/// Processor ids: the validity rule of spec/dory-runtime.md §3.4 and the derivation from a pod name of §3.5.
public enum ProcessorID {
    /// The rule, for messages.
    public static let ruleText =
        "1...253 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit, not \".\" or \"..\""

    /// True when `id` is 1–253 characters of `[a-z0-9._-]`, starts with a letter or digit, and is not `.` or `..`.
    public static func isValid(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        guard !bytes.isEmpty, bytes.count <= 253, id != ".", id != ".." else { return false }
        guard isLowerAlphanumeric(bytes[0]) else { return false }
        return bytes.allSatisfy { isLowerAlphanumeric($0) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D }
    }

    /// The processor id for a pod name. Only the Deployment form `<base>-<hash>-<suffix>` is shortened to `<base>`:
    /// `<suffix>` is exactly 5 characters of `[a-z0-9]`, `<hash>` is 6–10 characters of `[a-z0-9]` without any of
    /// the vowels a, e, i, o, u, and `<base>` is non-empty. Every other name (StatefulSet ordinals, DaemonSet or
    /// bare pods, `unknown`) is returned unchanged.
    public static func derive(fromPodName podName: String) -> String {
        let bytes = Array(podName.utf8)
        guard let suffixDash = bytes.lastIndex(of: 0x2D) else { return podName }
        let suffix = bytes[(suffixDash + 1)...]
        guard suffix.count == 5, suffix.allSatisfy(isLowerAlphanumeric) else { return podName }
        guard let hashDash = bytes[..<suffixDash].lastIndex(of: 0x2D) else { return podName }
        let hash = bytes[(hashDash + 1)..<suffixDash]
        let vowels: Set<UInt8> = [0x61, 0x65, 0x69, 0x6F, 0x75] // a e i o u
        guard (6...10).contains(hash.count), hash.allSatisfy({ isLowerAlphanumeric($0) && !vowels.contains($0) }),
              hashDash > 0 else { return podName }
        return String(decoding: bytes[..<hashDash], as: UTF8.self)
    }

    /// The processor id of §3.4: the configured value (flag, `DORY_PROCESSOR_ID`, YAML — already validated by
    /// ``ConfigLoader``), then `PROCESSOR_ID`, then derived from `podName`. An empty variable counts as unset.
    /// - Throws: ``ConfigError`` naming `processor_id` when `PROCESSOR_ID` or the derived id breaks the rule.
    public static func resolve(configured: String?, environment: [String: String], podName: String)
        throws(ConfigError) -> String
    {
        if let configured { return configured }
        if let plain = environment["PROCESSOR_ID"], !plain.isEmpty {
            guard isValid(plain) else {
                throw ConfigError.invalid("processor_id", .environment("PROCESSOR_ID"), value: plain, expected: ruleText)
            }
            return plain
        }
        let derived = derive(fromPodName: podName)
        guard isValid(derived) else {
            throw ConfigError(
                setting: "processor_id", source: nil,
                description: "processor_id derived from the pod name \(ConfigText.quoted(podName)) is "
                    + "\(ConfigText.quoted(derived)): expected \(ruleText); set DORY_PROCESSOR_ID")
        }
        return derived
    }

    private static func isLowerAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The value syntaxes of spec/dory-runtime.md §10, applied to source text (an environment value, a flag argument
/// or a YAML scalar's text alike). Each returns nil when the text does not match; range checks are the caller's.
public enum SettingSyntax {
    /// A decimal integer: one or more ASCII digits, no sign, no `0x`, no `_`, no spaces. Leading zeros are decimal
    /// (`010` → 10, never octal). nil on overflow.
    public static func decimalInteger(_ text: String) -> Int? {
        var value = 0
        var digits = 0
        for byte in text.utf8 {
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int(byte - 0x30))
            if o1 || o2 { return nil }
            value = sum
            digits += 1
        }
        return digits > 0 ? value : nil
    }

    /// A decimal number of seconds (`30`, `0.05`, `1.500`) as whole milliseconds. The syntax is `D+` or `D+.D+`
    /// with no sign or exponent; digits past the third decimal must be zeros (millisecond resolution). nil on
    /// overflow.
    public static func milliseconds(fromSeconds text: String) -> Int64? {
        let bytes = Array(text.utf8)
        var index = 0
        var whole: Int64 = 0
        var wholeDigits = 0
        while index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 {
            let (times10, o1) = whole.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int64(bytes[index] - 0x30))
            if o1 || o2 { return nil }
            whole = sum
            wholeDigits += 1
            index += 1
        }
        guard wholeDigits > 0 else { return nil }
        var millis: Int64 = 0
        if index < bytes.count {
            guard bytes[index] == 0x2E else { return nil }
            index += 1
            var fractionDigits = 0
            while index < bytes.count {
                let byte = bytes[index]
                guard byte >= 0x30, byte <= 0x39 else { return nil }
                if fractionDigits < 3 {
                    millis = millis * 10 + Int64(byte - 0x30)
                } else if byte != 0x30 {
                    return nil // finer than a millisecond
                }
                fractionDigits += 1
                index += 1
            }
            guard fractionDigits > 0 else { return nil }
            if fractionDigits < 3 { for _ in fractionDigits..<3 { millis *= 10 } }
        }
        let (scaled, o1) = whole.multipliedReportingOverflow(by: 1000)
        let (total, o2) = scaled.addingReportingOverflow(millis)
        return o1 || o2 ? nil : total
    }

    /// A boolean: `true`/`false`/`1`/`0` in any case. (`yes`, `on` and friends are not booleans.)
    public static func boolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "1": true
        case "false", "0": false
        default: nil
        }
    }

    /// A token: 1–4096 visible ASCII characters (0x21–0x7E).
    public static func isValidToken(_ text: String) -> Bool {
        let bytes = text.utf8
        return !bytes.isEmpty && bytes.count <= 4096 && bytes.allSatisfy { $0 >= 0x21 && $0 <= 0x7E }
    }

    /// An IPv4 or IPv6 address literal as `inet_pton` reads it (no brackets, no zone, no host name).
    public static func isIPLiteral(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }

    /// Whether an IP literal means "all interfaces" (`0.0.0.0` or `::` in any spelling).
    public static func isUnspecifiedAddress(_ text: String) -> Bool {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return v4.s_addr == 0 }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { $0.allSatisfy { $0 == 0 } }
        }
        return false
    }

    /// Text for a millisecond count as decimal seconds: 100 → `0.1`, 3_600_000 → `3600`, 50 → `0.05`.
    public static func secondsText(milliseconds: Int64) -> String {
        let whole = milliseconds / 1000
        var fraction = milliseconds % 1000
        guard fraction != 0 else { return String(whole) }
        var digits = 3
        while fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        let text = String(fraction)
        return "\(whole)." + String(repeating: "0", count: digits - text.count) + text
    }
}

extension LogLevelSetting {
    /// Parses a `log_level` value case-insensitively; `warn` is accepted for `warning`.
    public init?(parsing text: String) {
        let lowered = text.lowercased()
        if lowered == "warn" {
            self = .warning
        } else if let level = LogLevelSetting(rawValue: lowered) {
            self = level
        } else {
            return nil
        }
    }

    /// The accepted spellings, for messages.
    public static let acceptedText = "one of trace, debug, info, notice, warning, warn, error, critical (any case)"
}

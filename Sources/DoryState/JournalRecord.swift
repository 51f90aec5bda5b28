// The records of `boots.jsonl` (spec §7).

/// `{"type":"boot",…}`: appended in initializing.
public struct BootRecord: Sendable, Equatable {
    public var bootID: String
    public var podName: String
    /// nil when the pod UID is unknown (then the member is omitted).
    public var podUID: String?
    public var startedAtMillis: Int64
    public var version: String
    public var generationHighWaterMark: Int64

    public init(bootID: String, podName: String, podUID: String?, startedAtMillis: Int64, version: String,
                generationHighWaterMark: Int64) {
        self.bootID = bootID
        self.podName = podName
        self.podUID = podUID
        self.startedAtMillis = startedAtMillis
        self.version = version
        self.generationHighWaterMark = generationHighWaterMark
    }
}

/// `{"type":"healthy",…}`: the boot stayed in running for `healthy_after_sec`.
public struct HealthyRecord: Sendable, Equatable {
    public var bootID: String
    public var atMillis: Int64

    public init(bootID: String, atMillis: Int64) {
        self.bootID = bootID
        self.atMillis = atMillis
    }
}

/// Who decided a run-mode exit code (supervise.md §4): the child's mapped status, or doryd's own code.
public enum EndSource: String, Sendable, Equatable {
    case child
    case doryd
}

/// The members run mode adds to the end record (supervise.md §4, §8.3), the same values as on the last log line
/// `doryd exiting`. Other workloads write neither member.
public struct ChildEnd: Sendable, Equatable {
    /// The last child's status before mapping (`child_status`); nil (written as `null`) when no child ended.
    public var childStatus: Int?
    /// `source`.
    public var source: EndSource

    public init(childStatus: Int?, source: EndSource) {
        self.childStatus = childStatus
        self.source = source
    }
}

/// `{"type":"end",…}`: written on every exit doryd controls.
public struct EndRecord: Sendable, Equatable {
    public var bootID: String
    public var endedAtMillis: Int64
    public var exitCode: Int
    public var clean: Bool
    public var errors: [String]
    /// Run mode only: `child_status` and `source`; nil leaves both members out.
    public var child: ChildEnd?

    public init(bootID: String, endedAtMillis: Int64, exitCode: Int, clean: Bool, errors: [String] = [], child: ChildEnd? = nil) {
        self.bootID = bootID
        self.endedAtMillis = endedAtMillis
        self.exitCode = exitCode
        self.clean = clean
        self.errors = errors
        self.child = child
    }
}

/// One line of the restart journal.
public enum JournalRecord: Sendable, Equatable {
    case boot(BootRecord)
    case healthy(HealthyRecord)
    case end(EndRecord)

    public var bootID: String {
        switch self {
        case .boot(let r): return r.bootID
        case .healthy(let r): return r.bootID
        case .end(let r): return r.bootID
        }
    }

    /// The JSON line, without the newline: `type` first, then the members in the order of §7.
    public func line() -> [UInt8] {
        var members: [(String, JSONValue)]
        switch self {
        case .boot(let r):
            members = [("type", .string("boot")), ("boot_id", .string(r.bootID)), ("pod_name", .string(r.podName))]
            if let uid = r.podUID { members.append(("pod_uid", .string(uid))) }
            members += [
                ("started_at", .string(WallClock.rfc3339(millis: r.startedAtMillis))), ("version", .string(r.version)),
                ("generation_hwm", .int(r.generationHighWaterMark)),
            ]
        case .healthy(let r):
            members = [("type", .string("healthy")), ("boot_id", .string(r.bootID)),
                       ("at", .string(WallClock.rfc3339(millis: r.atMillis)))]
        case .end(let r):
            members = [
                ("type", .string("end")), ("boot_id", .string(r.bootID)),
                ("ended_at", .string(WallClock.rfc3339(millis: r.endedAtMillis))), ("exit_code", .int(Int64(r.exitCode))),
                ("clean", .bool(r.clean)), ("errors", .array(r.errors.map { .string($0) })),
            ]
            if let child = r.child {
                members.append(("child_status", child.childStatus.map { .int(Int64($0)) } ?? .null))
                members.append(("source", .string(child.source.rawValue)))
            }
        }
        var out: [UInt8] = [UInt8(ascii: "{")]
        for (i, (key, value)) in members.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSON.appendQuoted(key, to: &out)
            out.append(UInt8(ascii: ":"))
            // Only strings, integers, booleans and string arrays: never fails.
            out.append(contentsOf: (try? JSON.encode(value)) ?? Array("null".utf8))
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Parses one line; nil when it is not a well-formed record (unknown type, missing member, bad time).
    public static func parse(_ line: some Collection<UInt8>) -> JournalRecord? {
        guard case .object(let o)? = try? JSON.parse(Array(line)) else { return nil }
        func string(_ key: String) -> String? {
            if case .string(let s)? = o[key] { return s }
            return nil
        }
        func time(_ key: String) -> Int64? { string(key).flatMap(WallClock.parseRFC3339) }
        guard let type = string("type"), let bootID = string("boot_id") else { return nil }
        switch type {
        case "boot":
            guard let started = time("started_at") else { return nil }
            var hwm: Int64 = 0
            if case .int(let n)? = o["generation_hwm"] { hwm = n }
            return .boot(BootRecord(bootID: bootID, podName: string("pod_name") ?? "", podUID: string("pod_uid"),
                                    startedAtMillis: started, version: string("version") ?? "",
                                    generationHighWaterMark: hwm))
        case "healthy":
            guard let at = time("at") else { return nil }
            return .healthy(HealthyRecord(bootID: bootID, atMillis: at))
        case "end":
            guard let ended = time("ended_at"), case .bool(let clean)? = o["clean"] else { return nil }
            var exitCode = 0
            if case .int(let n)? = o["exit_code"], let c = Int(exactly: n) { exitCode = c }
            var errors: [String] = []
            if case .array(let items)? = o["errors"] {
                errors = items.map { if case .string(let s) = $0 { return s } else { return (try? JSON.encode($0)).map { String(decoding: $0, as: UTF8.self) } ?? "" } }
            }
            var child: ChildEnd?
            if let source = string("source").flatMap(EndSource.init(rawValue:)) {
                var status: Int?
                if case .int(let n)? = o["child_status"] { status = Int(exactly: n) }
                child = ChildEnd(childStatus: status, source: source)
            }
            return .end(EndRecord(bootID: bootID, endedAtMillis: ended, exitCode: exitCode, clean: clean, errors: errors, child: child))
        default:
            return nil
        }
    }
}

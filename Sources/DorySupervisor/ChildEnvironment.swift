import Glibc

/// What doryd tells one child through its environment (spec/supervise.md §2.3).
public struct ChildEnvironmentValues: Sendable, Equatable {
    /// The control socket: an absolute path, or `@name` for an abstract one.
    public var controlSocket: String
    /// This child's recovery strategy and reason (`fresh`/`first_start`; after an in-pod restart `restore`
    /// or `fresh` with `child_restart`).
    public var recoveryStrategy: String
    public var recoveryReason: String
    /// The boot's attempt number (1 on a first start).
    public var attempt: Int
    /// In-pod restarts before this child in this boot.
    public var childRestarts: Int
    public var processorID: String
    /// `state_dir` made absolute (a read-only hint).
    public var stateDir: String
    /// This child's notify socket address (`--ready=notify` only; `@` marks an abstract name).
    public var notifySocket: String?
    /// The heartbeat timeout in microseconds, with `--ready=notify` and a timeout > 0.
    public var watchdogMicroseconds: Int?

    public init(
        controlSocket: String, recoveryStrategy: String, recoveryReason: String, attempt: Int, childRestarts: Int,
        processorID: String, stateDir: String, notifySocket: String? = nil, watchdogMicroseconds: Int? = nil
    ) {
        self.controlSocket = controlSocket
        self.recoveryStrategy = recoveryStrategy
        self.recoveryReason = recoveryReason
        self.attempt = attempt
        self.childRestarts = childRestarts
        self.processorID = processorID
        self.stateDir = stateDir
        self.notifySocket = notifySocket
        self.watchdogMicroseconds = watchdogMicroseconds
    }
}

/// Builds a child's environment: doryd's own, minus what must not cross, plus the rows of §2.3.
public enum ChildEnvironment {
    /// Variables never passed through: doryd's notify/watchdog/socket-activation variables and its tokens.
    public static let removed: Set<String> = [
        "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
        "DORY_STATE_TOKEN", "DORY_CONTROL_TOKEN",
    ]

    /// doryd's environment as `KEY=VALUE` strings (read it once at start: §2.3 says "at start").
    public static func current() -> [String] {
        var result: [String] = []
        var pointer = environ
        while let entry = pointer.pointee {
            result.append(String(cString: entry))
            pointer += 1
        }
        return result
    }

    /// The child's environment, in `inherited` order with the set rows appended (replacing inherited ones).
    public static func build(inherited: [String], values: ChildEnvironmentValues) -> [String] {
        var set: [(String, String)] = [
            ("DORY_CONTROL_SOCKET", values.controlSocket),
            ("DORY_RECOVERY_STRATEGY", values.recoveryStrategy),
            ("DORY_RECOVERY_REASON", values.recoveryReason),
            ("DORY_ATTEMPT", String(values.attempt)),
            ("DORY_CHILD_RESTARTS", String(values.childRestarts)),
            ("DORY_PROCESSOR_ID", values.processorID),
            ("DORY_STATE_DIR", values.stateDir),
        ]
        if let notify = values.notifySocket {
            set.append(("NOTIFY_SOCKET", notify))
            if let usec = values.watchdogMicroseconds, usec > 0 { set.append(("WATCHDOG_USEC", String(usec))) }
        }
        let overridden = Set(set.map(\.0))
        var result = inherited.filter { entry in
            let key = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? entry
            return !removed.contains(key) && !overridden.contains(key)
        }
        result += set.map { "\($0.0)=\($0.1)" }
        return result
    }
}

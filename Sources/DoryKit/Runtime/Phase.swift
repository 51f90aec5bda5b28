/// The lifecycle phases of spec §2.1, in order.
public enum Phase: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case initializing, backoff, starting, restoring, running, draining, stopping, stopped, failed

    public var description: String {
        switch self {
        case .initializing: "initializing"
        case .backoff: "backoff"
        case .starting: "starting"
        case .restoring: "restoring"
        case .running: "running"
        case .draining: "draining"
        case .stopping: "stopping"
        case .stopped: "stopped"
        case .failed: "failed"
        }
    }

    /// The transitions allowed by the table of §2.2.
    public func allows(_ next: Phase) -> Bool {
        switch self {
        case .initializing: [.backoff, .starting, .stopping, .failed].contains(next)
        case .backoff: [.starting, .stopping].contains(next)
        case .starting: [.restoring, .stopping].contains(next)
        case .restoring: [.running, .stopping].contains(next)
        case .running: [.draining, .stopping].contains(next)
        case .draining: [.stopping].contains(next)
        case .stopping: [.stopped, .failed].contains(next)
        case .stopped, .failed: false
        }
    }
}

/// Custom checks registered by the processor (spec §4.3).
public enum CheckKind: Sendable { case liveness, readiness }

/// Exit codes of spec §5.5.
public enum ExitCode {
    public static let ok: Int32 = 0
    public static let runFailed: Int32 = 1
    public static let invalidConfiguration: Int32 = 2
    public static let startupFailed: Int32 = 3
    public static let stateError: Int32 = 4
    public static let finalSaveFailed: Int32 = 5
    public static let rapidRestartRefused: Int32 = 6
    public static let bindFailed: Int32 = 7
    public static let internalFault: Int32 = 70
}

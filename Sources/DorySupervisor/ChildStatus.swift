import CDorySys
import Glibc

/// How a child ended (spec/supervise.md §3.2, §4): its exit code, or the signal that killed it.
public enum ChildStatus: Sendable, Hashable, CustomStringConvertible {
    case exited(code: Int32)
    case signaled(signal: Int32, coreDumped: Bool)

    /// Decodes a `waitpid` status through the `CDorySys` macro wrappers; nil for a stop/continue report.
    public init?(waitStatus status: Int32) {
        if dory_wifexited(status) != 0 {
            self = .exited(code: dory_wexitstatus(status))
        } else if dory_wifsignaled(status) != 0 {
            self = .signaled(signal: dory_wtermsig(status), coreDumped: dory_wcoredump(status) != 0)
        } else {
            return nil
        }
    }

    /// The status of §4: the exit code n, or 128 + s for signal s.
    public var code: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal, _): 128 + signal
        }
    }

    /// `dory_child_exits_total{how}`: `exited` or `signaled`.
    public var how: String {
        switch self {
        case .exited: "exited"
        case .signaled: "signaled"
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): "exit_code=\(code)"
        case .signaled(let signal, let core): "signal=\(SignalNames.name(signal))\(core ? " core_dumped" : "")"
        }
    }
}

/// `--success-exit-codes` (spec/supervise.md §4): statuses reported as 0. 0 is always in the set.
public struct SuccessExitCodes: Sendable, Hashable {
    public private(set) var codes: Set<Int32>

    public init(_ codes: some Sequence<Int32> = [0]) {
        self.codes = Set(codes).union([0])
    }

    /// The mapped status: 0 when `status` is listed, else `status` itself.
    public func mapped(_ status: Int32) -> Int32 { codes.contains(status) ? 0 : status }
}

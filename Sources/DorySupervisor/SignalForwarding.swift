import Glibc

/// What doryd does with a signal it received in run mode: the table of spec/supervise.md §3.1 as a pure function.
public enum SignalAction: Sendable, Equatable {
    /// Begin the stop (§5.1), sending `send` to the group (and descendants outside it).
    case beginStop(send: Int32)
    /// A second SIGTERM/SIGINT in stopping: SIGKILL every descendant now (§5.5).
    case escalate
    /// Count it, log at DEBUG and forward the same signal to the group.
    case forward(Int32)
    /// SIGUSR1: a snapshot of the slot; `forwardFirst` with `--forward-usr1` (sent before the snapshot is requested).
    case snapshot(forwardFirst: Bool)
    /// SIGCHLD: reap (§3.2).
    case reap
    /// Neither handled nor forwarded.
    case ignore

    /// The action for `signal` received while `stopping` (doryd already began the stop).
    public static func forReceived(_ signal: Int32, options: RunOptions, stopping: Bool) -> SignalAction {
        switch signal {
        case SIGTERM, SIGINT:
            stopping ? .escalate : .beginStop(send: options.stopSignal(forReceived: signal))
        case SIGHUP, SIGQUIT, SIGUSR2, SIGWINCH:
            .forward(signal)
        case SIGUSR1:
            .snapshot(forwardFirst: options.forwardUSR1)
        case SIGCHLD:
            .reap
        default:
            .ignore
        }
    }
}

import Glibc

/// Something that happened to a child, for the Supervisor to map onto its phases (spec/supervise.md §1.1:
/// child exits, readiness, heartbeats, notify messages and PUTs reach it as events).
public enum ChildEvent: Sendable, Equatable {
    /// A child was spawned (`child started`).
    case started(pid: pid_t, pgid: pid_t)
    /// The child met its readiness condition (`--ready` mode); sent once per child.
    case ready(pid: pid_t, mode: ReadyMode)
    /// The child was reaped; `uptimeMillis` since its spawn.
    case exited(pid: pid_t, status: ChildStatus, uptimeMillis: Int)
    /// Another process was reaped (an orphan re-parented to doryd).
    case orphanReaped(pid: pid_t, status: ChildStatus)
    /// A heartbeat (`POST /v1/heartbeat` or `WATCHDOG=1`).
    case heartbeat
    /// `STATUS=<text>` from the notify socket.
    case notifyStatus(String)
    /// `STOPPING=1` from the notify socket: the `child` readiness check fails from now on; no stop begins.
    case notifyStopping
    /// A datagram from a sender that is not a descendant (dropped).
    case notifyRejected(pid: pid_t)
    /// An accepted `PUT /v1/state`; `durable` is false for `?sync=0`.
    case statePut(sequence: UInt64, durable: Bool)
}

/// A multi-producer stream of `ChildEvent`s with one consumer (the Supervisor's mapping layer).
public final class ChildEvents: Sendable {
    public let stream: AsyncStream<ChildEvent>
    private let continuation: AsyncStream<ChildEvent>.Continuation

    public init() {
        (stream, continuation) = AsyncStream.makeStream(of: ChildEvent.self, bufferingPolicy: .unbounded)
    }

    public func yield(_ event: ChildEvent) { continuation.yield(event) }
    /// Ends the stream (at exit).
    public func finish() { continuation.finish() }
}

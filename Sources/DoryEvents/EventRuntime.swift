import DoryKit
import DoryState
import Logging
import Synchronization

/// What one invocation is run for: its ids (§2.2). `requestId` nil → the `invocation_id`.
public struct InvocationRequest: Sendable, Equatable {
    public var invocationId: String
    public var requestId: String?
    public var subscriptionId: String?

    public init(invocationId: String = UUIDv7.make(), requestId: String? = nil, subscriptionId: String? = nil) {
        self.invocationId = invocationId
        self.requestId = requestId
        self.subscriptionId = subscriptionId
    }
}

/// Everything shared by the invocations of one workload: the YAML base deployment, the workload state (tag map and
/// channels), the tag-commit writer, limits, logging, metrics and the clock. ``runApp(_:event:context:runtime:)``
/// serialises invocations on it.
public final class EventRuntime: Sendable {
    /// The deployment from the YAML `events` section (§9.1).
    public let base: Deployment
    public let state: EventState
    public let tagWriter: any TagCommitWriter
    /// Summary field 14 (`events.function_name`, default the processor id).
    public let functionName: String?
    /// Summary field 15 (`events.function_version`, default doryd's version).
    public let functionVersion: String?
    /// `event_timeout_sec`: the deadline of the app steps S6, S11, S12, S13 together; 0 = none.
    public let timeoutSeconds: Double
    /// The deadline of `close()` (§4.4: 10 s).
    public let closeTimeoutSeconds: Double
    public let logStream: LogStream
    public let metrics: EventMetrics
    /// Wall-clock milliseconds.
    public let clock: @Sendable () -> Int64
    /// Called at S16 before `invocation finished` to flush captured standard output (§10.3); nil = nothing to do.
    public let flushCapturedOutput: (@Sendable () -> Void)?
    let gate = AsyncGate()
    let watchdog = Watchdog()

    public init(base: Deployment, state: EventState, tagWriter: any TagCommitWriter = InMemoryTagCommitWriter(),
                functionName: String?, functionVersion: String?, timeoutSeconds: Double = 300,
                closeTimeoutSeconds: Double = 10, logStream: LogStream = DoryLogging.shared,
                metrics: EventMetrics = EventMetrics(), clock: @escaping @Sendable () -> Int64 = { WallClock.nowMillis() },
                flushCapturedOutput: (@Sendable () -> Void)? = nil)
    {
        self.base = base
        self.state = state
        self.tagWriter = tagWriter
        self.functionName = functionName
        self.functionVersion = functionVersion
        self.timeoutSeconds = timeoutSeconds
        self.closeTimeoutSeconds = closeTimeoutSeconds
        self.logStream = logStream
        self.metrics = metrics
        self.clock = clock
        self.flushCapturedOutput = flushCapturedOutput
    }
}

/// A FIFO async lock: serialises `runApp` calls for one runtime.
final class AsyncGate: Sendable {
    private struct State {
        var locked = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func acquire() async {
        let immediate = state.withLock { s -> Bool in
            if !s.locked {
                s.locked = true
                return true
            }
            return false
        }
        if immediate { return }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if !s.locked {
                    s.locked = true
                    return true
                }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiters.isEmpty {
                s.locked = false
                return nil
            }
            return s.waiters.removeFirst()
        }
        next?.resume()
    }
}

import DoryState
import Logging
import Synchronization

/// What a processor knows about where and how it runs (spec/dory-runtime.md §3.4).
public final class ExecutionContext: Sendable {
    public let podName: String
    public let podNamespace: String
    public let podUID: String?
    public let processorId: String
    public let appName: String
    /// Lower-case UUID v4, new at every process start.
    public let bootId: String
    /// Restarts before this boot (§7; `RESTART_COUNT` overrides). Final before any hook runs.
    public var restartCount: Int { journalDerived.withLock { $0.restartCount } }
    /// `restartCount + 1`: 1 on a first start.
    public var attemptNumber: Int { restartCount + 1 }
    public let isMigrating: Bool
    public let previousPodName: String?
    /// This boot's recovery decision (§8). Final before any hook runs.
    public var recovery: RecoveryDecision { journalDerived.withLock { $0.recovery } }
    private let journalDerived: Mutex<(restartCount: Int, recovery: RecoveryDecision)>
    /// Logger labelled `doryd.processor.<processorId>`.
    public let logger: Logger

    private let environment: [String: String]
    private let shutdownFlag = Atomic<Bool>(false)
    private let migrationFlag = Atomic<Bool>(false)
    /// Wakes run loops sleeping between iterations when shutdown is requested.
    let shutdownSignal = ShutdownSignal()
    let hooks: ContextHooks

    init(
        identity: PodIdentity, processorId: String, bootId: String, restartCount: Int = 0,
        recovery: RecoveryDecision = .undecided, environment: [String: String], hooks: ContextHooks = .detached
    ) {
        journalDerived = Mutex((restartCount, recovery))
        podName = identity.podName
        podNamespace = identity.namespace
        podUID = identity.podUID
        self.processorId = processorId
        appName = ExecutionContext.nonEmpty(environment["APP_NAME"]) ?? processorId
        self.bootId = bootId
        isMigrating = identity.isMigrating
        previousPodName = identity.previousPodName
        self.environment = environment
        self.hooks = hooks
        logger = Logger(label: "doryd.processor.\(processorId)")
    }

    /// Fills the journal-derived members (spec §2.1 step i), before any hook runs.
    func settle(restartCount: Int, recovery: RecoveryDecision) {
        journalDerived.withLock { $0 = (restartCount, recovery) }
    }

    public var isShutdownRequested: Bool { shutdownFlag.load(ordering: .acquiring) }
    public var isMigrationImminent: Bool { migrationFlag.load(ordering: .acquiring) }

    /// Sets the shutdown flag: run loops end, `run()` is expected to return.
    public func requestShutdown() {
        shutdownFlag.store(true, ordering: .releasing)
        shutdownSignal.fire()
    }

    /// Sets `isMigrationImminent`; the run loop logs it once and keeps going.
    public func signalMigration() { migrationFlag.store(true, ordering: .releasing) }

    /// Variables of the environment at start whose names begin with neither `DORY_` nor `KUBERNETES_`.
    public func config() -> [String: String] {
        environment.filter { !$0.key.hasPrefix("DORY_") && !$0.key.hasPrefix("KUBERNETES_") }
    }

    /// Raw lookup of any variable of the environment at start.
    public func env(_ name: String, default fallback: String? = nil) -> String? {
        environment[name] ?? fallback
    }

    /// Writes a snapshot with reason `api` and returns its durable generation.
    public func snapshotNow() async throws -> UInt64 { try await hooks.snapshotNow() }

    /// A named liveness check (`custom:<name>`): the closure throws to fail. Evaluated by the check timer.
    public func registerLivenessCheck(_ name: String, _ check: @escaping @Sendable () async throws -> Void) {
        hooks.registerCheck(.liveness, name, check)
    }

    /// A named readiness check (`custom:<name>`): the closure throws to fail.
    public func registerReadinessCheck(_ name: String, _ check: @escaping @Sendable () async throws -> Void) {
        hooks.registerCheck(.readiness, name, check)
    }

    /// `0, 1, 2, …` with `interval` between iterations, ending when shutdown is requested (spec §3.2).
    public func runLoop(interval: Duration) -> RunLoopSequence {
        precondition(interval >= .zero, "runLoop interval must not be negative")
        return RunLoopSequence(context: self, interval: interval)
    }

    func markMigrationLogged() -> Bool {
        migrationLogged.exchange(true, ordering: .acquiringAndReleasing) == false
    }
    private let migrationLogged = Atomic<Bool>(false)

    static func nonEmpty(_ value: String?) -> String? {
        guard let value, !value.isEmpty else { return nil }
        return value
    }
}

/// Callbacks from the context into the runtime that hosts it.
struct ContextHooks: Sendable {
    var snapshotNow: @Sendable () async throws -> UInt64
    var registerCheck: @Sendable (CheckKind, String, @escaping @Sendable () async throws -> Void) -> Void

    static let detached = ContextHooks(
        snapshotNow: { throw RuntimeNotAttached() },
        registerCheck: { _, _, _ in }
    )
}

struct RuntimeNotAttached: Error, CustomStringConvertible {
    var description: String { "the context is not attached to a running doryd" }
}

extension ExecutionContext {
    /// The context of the processor this process hosts (one per process), set when doryd constructs it.
    static let hosted = Mutex<ExecutionContext?>(nil)
}

extension Processor {
    /// `runLoop(interval:)` forwarded from the context doryd built for this process's processor (spec §3.2).
    public func runLoop(interval: Duration) -> RunLoopSequence {
        guard let context = ExecutionContext.hosted.withLock({ $0 }) else {
            preconditionFailure("runLoop(interval:) needs a processor hosted by doryd (use context.runLoop in tests)")
        }
        return context.runLoop(interval: interval)
    }
}

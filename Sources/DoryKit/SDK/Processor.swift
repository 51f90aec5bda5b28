import DoryState

/// The isolation of every processor: one process hosts one processor, so this global actor serialises the
/// processor's hooks and doryd's state captures and restores (spec §3.1).
@globalActor public actor ProcessorActor {
    public static let shared = ProcessorActor()
}

/// A stateful processor hosted in process by doryd (spec/dory-runtime.md §3).
///
/// A processor is a class (not an actor) isolated to `@ProcessorActor`, so processor classes may subclass each other.
/// Only `init(context:)` and `run()` are required; every other hook has a default in the extension below.
@ProcessorActor
public protocol Processor: AnyObject, Sendable {
    init(context: ExecutionContext)
    /// The processor's work. Returning (or throwing) starts the shutdown sequence.
    func run() async throws
    /// Called once in starting, bounded by `startup_timeout_sec`.
    func startup() async throws
    /// Called once in stopping, only if `startup()` was entered.
    func shutdown() async throws
    /// The state to snapshot. Default: every `@Stateful` property of the concrete type.
    func getState() async throws -> JSONObject
    /// Applies a state. Default: decode every known key (all or nothing), ignore unknown keys.
    func restoreState(_ state: JSONObject) async throws
    /// The restore at boot threw or overran. `true` (default): go on with the defaults.
    func onStateRestoreFailed(_ error: any Error) async -> Bool
    /// Decision `golden_backoff`. `false` exits 6.
    func onRapidRestartDetected(crashCount: Int) async -> Bool
    /// A liveness check went from passing to failing. `true`: recoverable (shown as `recovering`).
    func onHealthCheckFailed(_ error: any Error) async -> Bool
    /// Called in starting when the recovery decision asks for it.
    func resetCaches() async
}

extension Processor {
    public func startup() async throws {}
    public func shutdown() async throws {}
    public func getState() async throws -> JSONObject { try StatefulReflection.capture(self) }
    public func restoreState(_ state: JSONObject) async throws {
        let unknown = try StatefulReflection.restore(self, from: state)
        if !unknown.isEmpty { StatefulReflection.logUnknownKeys(unknown) }
    }
    public func onStateRestoreFailed(_ error: any Error) async -> Bool { true }
    public func onRapidRestartDetected(crashCount: Int) async -> Bool { true }
    public func onHealthCheckFailed(_ error: any Error) async -> Bool { false }
    public func resetCaches() async {}
}

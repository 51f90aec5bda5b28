import DoryState

/// What the Supervisor drives (DESIGN.md §1): start, stop with a deadline, capture and restore state.
/// Three implementations (a Swift processor, a supervised command, the event pipeline); adding one never touches
/// the Supervisor. Every hook is bounded by the Supervisor, which stops waiting at its deadline.
public protocol Workload: Sendable {
    /// Builds the workload with its context (spec §2.1 step e). A declaration error is thrown here (exit 2).
    func prepare(context: ExecutionContext) async throws
    func resetCaches() async
    func startup() async throws
    func restoreState(_ state: JSONObject) async throws
    func onStateRestoreFailed(_ error: any Error) async -> Bool
    func onRapidRestartDetected(crashCount: Int) async -> Bool
    func onHealthCheckFailed(_ error: any Error) async -> Bool
    func run() async throws
    func shutdown() async throws
    func captureState() async throws -> JSONObject
    /// Type-checks a transferred state without applying it: key → reason (`POST /state` 400 `invalid_state`).
    func validateTransfer(_ state: JSONObject) async -> [String: String]
    /// The state keys the workload declares (for `ignored_keys` of an applied transfer).
    func declaredKeys() async -> [String]

    // Extension points (WorkloadHooks.swift); the defaults keep the processor's behaviour.

    /// How the Supervisor's mechanics apply to this workload.
    var traits: WorkloadTraits { get }
    /// Called once, before `prepare`, with the runtime's facts and actions.
    func attach(host: WorkloadHost)
    /// With `traits.restoresBeforeStartup`: the restore source at the start of starting (a staged transfer, else
    /// the restored generation, else nil).
    func receiveRestoreSource(state: JSONObject?, generation: UInt64?) async
    /// The stop began (T0): called synchronously under the Supervisor's lock, so work started after it sees it.
    func stopBegan()
    /// A second stop signal in stopping (escalation): skip every wait.
    func escalate()
    /// Every handled signal, before the runtime acts on it.
    func receivedSignal(_ signal: Int32) -> WorkloadSignalDisposition
    /// The Supervisor's heartbeat (about once a second).
    func supervisorTick()
    /// Built-in checks added to a probe, after the runtime's own (readiness: after `shutdown`).
    func probeChecks(_ kind: CheckKind) -> [WorkloadCheck]
    /// Routes served on the control socket besides `/prestop` and `/healthz` (asked once, in step j).
    func controlSocketRoutes() -> WorkloadRoutes?
    /// Routes served on the TCP port next to the runtime's (the event workload's `/v1/events`). Default none.
    func tcpRoutes() -> WorkloadRoutes?
    /// A refusal of `POST /state` now, or nil to apply the runtime's rules.
    func transferRefusal() -> TransferRefusal?
    /// Whether `GET /state` has a state to give; nil (default): once the processor is state-bound. Run mode: once
    /// the slot holds a state, restored or pushed.
    func hasStateForTransfer() -> Bool?
    /// A snapshot of a captured state became durable in `generation` (any reason).
    func stateDurable(generation: UInt64)
    /// The exit code and journal `clean` flag at the end of a boot that reached starting; nil for the runtime's.
    func endOfBoot(_ facts: BootEndFacts) async -> WorkloadEnd?
    /// The end-record members (`child_status`, `source`) when the runtime decides the exit code itself and
    /// `endOfBoot` is not asked or has no answer (a stop before any child, a hard stop, an early failure). Default
    /// nil: the members are left out.
    func childEndWhenDorydDecides() -> ChildEnd?
    /// Where the healthy-run timer counts from, asked again each time it would fire. Default `.running`.
    func healthyRunStart() -> HealthyRunStart
    /// Extra Prometheus text appended to `/metrics`.
    func metricsText() -> String
}

/// Hosts a `Processor` type in process.
final class ProcessorWorkload<P: Processor>: Workload, @unchecked Sendable {
    // Set once in `prepare` (before any other hook runs), then only read: guarded by that ordering.
    private var processor: P?
    private var entries: [StatefulReflection.Entry] = []

    init(_ type: P.Type) {}

    private var instance: P {
        guard let processor else { preconditionFailure("processor used before prepare") }
        return processor
    }

    func prepare(context: ExecutionContext) async throws {
        ExecutionContext.hosted.withLock { $0 = context }
        let built = await OnProcessorActor.make { @ProcessorActor in P(context: context) }
        entries = try await OnProcessorActor.run { @ProcessorActor in try StatefulReflection.entries(of: built) }
        processor = built
    }

    func resetCaches() async { await instance.resetCaches() }
    func startup() async throws { try await instance.startup() }
    func restoreState(_ state: JSONObject) async throws { try await instance.restoreState(state) }
    func onStateRestoreFailed(_ error: any Error) async -> Bool { await instance.onStateRestoreFailed(error) }
    func onRapidRestartDetected(crashCount: Int) async -> Bool { await instance.onRapidRestartDetected(crashCount: crashCount) }
    func onHealthCheckFailed(_ error: any Error) async -> Bool { await instance.onHealthCheckFailed(error) }
    func run() async throws { try await instance.run() }
    func shutdown() async throws { try await instance.shutdown() }
    func captureState() async throws -> JSONObject { try await instance.getState() }
    func validateTransfer(_ state: JSONObject) async -> [String: String] {
        StatefulReflection.validate(entries, state)
    }
    func declaredKeys() async -> [String] { entries.map(\.key) }
}

/// Hosts the function-style API: explicit state values and a closure (spec §3.7).
final class ClosureWorkload: Workload, @unchecked Sendable {
    private let states: [any AnyStateValue]
    private let body: @Sendable (ExecutionContext) async throws -> Void
    // Set once in `prepare`, then only read.
    private var context: ExecutionContext?
    private var entries: [StatefulReflection.Entry] = []

    init(states: [any AnyStateValue], body: @escaping @Sendable (ExecutionContext) async throws -> Void) {
        self.states = states
        self.body = body
    }

    func prepare(context: ExecutionContext) async throws {
        var seen = Set<String>()
        var list: [StatefulReflection.Entry] = []
        for state in states {
            guard seen.insert(state.name).inserted else {
                throw StateDeclarationError(key: state.name, first: "StateValue(\"\(state.name)\")", second: "StateValue(\"\(state.name)\")")
            }
            guard let slot = state.stateSlot else { continue }
            list.append(StatefulReflection.Entry(key: state.name, name: state.name, slot: slot))
        }
        entries = list
        self.context = context
        ExecutionContext.hosted.withLock { $0 = context }
    }

    func resetCaches() async {}
    func startup() async throws {}
    func restoreState(_ state: JSONObject) async throws {
        let entries = self.entries
        let unknown = try await OnProcessorActor.run { @ProcessorActor in try StatefulReflection.restore(entries, from: state) }
        if !unknown.isEmpty { StatefulReflection.logUnknownKeys(unknown) }
    }
    func onStateRestoreFailed(_ error: any Error) async -> Bool { true }
    func onRapidRestartDetected(crashCount: Int) async -> Bool { true }
    func onHealthCheckFailed(_ error: any Error) async -> Bool { false }
    func run() async throws {
        guard let context else { preconditionFailure("closure workload used before prepare") }
        try await body(context)
    }
    func shutdown() async throws {}
    func captureState() async throws -> JSONObject {
        let entries = self.entries
        return try await OnProcessorActor.run { @ProcessorActor in try StatefulReflection.capture(entries) }
    }
    func validateTransfer(_ state: JSONObject) async -> [String: String] { StatefulReflection.validate(entries, state) }
    func declaredKeys() async -> [String] { entries.map(\.key) }
}

/// Runs a closure isolated to the processor actor (so captures interleave with `run()` only at suspension points).
enum OnProcessorActor {
    static func run<T: Sendable>(_ body: @escaping @ProcessorActor @Sendable () throws -> T) async throws -> T {
        try await body()
    }
    static func make<T: Sendable>(_ body: @escaping @ProcessorActor @Sendable () -> T) async -> T {
        await body()
    }
}

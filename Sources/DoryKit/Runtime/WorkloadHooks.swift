import DoryHTTP
import DoryState
import Synchronization

/// Small, optional extension points of `Workload` (DESIGN.md §1): a workload that is not a Swift processor (a
/// supervised command, say) adjusts the Supervisor's mechanics through these traits and hooks, never through
/// branches in the Supervisor. Every default keeps the processor's behaviour.
public struct WorkloadTraits: Sendable, Equatable {
    /// The workload takes its restore source before `startup()` (`receiveRestoreSource`) and restores itself: the
    /// runtime calls neither `restoreState` nor `resetCaches`, and writes no `startup` snapshot (restoring is
    /// instantaneous).
    public var restoresBeforeStartup = false
    /// `startup()` enforces `startup_timeout_sec` itself (per child, with in-pod restarts): the Supervisor bounds it
    /// only by the stop deadline.
    public var ownsStartupDeadline = false
    /// The workload says when the state is bound (`WorkloadHost.markStateBound()`), not the end of restoring; until
    /// then saves confirm the newest valid generation instead of writing, and SIGUSR1/interval write nothing.
    public var bindsStateItself = false
    /// How long `shutdown()` may run past T0+B: a workload that kills at T0+B itself needs time to reap.
    public var shutdownOverrunSec: Double = 0

    public init() {}
}

/// What the Supervisor does with a received signal after the workload saw it (`Workload.receivedSignal`).
public enum WorkloadSignalDisposition: Sendable, Equatable {
    /// The runtime's own handling (stop, snapshot, log).
    case runtime
    /// The workload handled it: only counted in `dory_signals_received_total`.
    case handled
}

/// A built-in check a workload adds to a probe, computed at probe time from atomics.
public struct WorkloadCheck: Sendable, Equatable {
    public var name: String
    public var passed: Bool
    /// The text after `ok:` / `failed:` on `?verbose` lines.
    public var detail: String?

    public init(name: String, passed: Bool, detail: String?) {
        self.name = name
        self.passed = passed
        self.detail = detail
    }
}

/// Extra routes a workload serves next to the runtime's: on the control socket (run mode's child API) or on the
/// TCP port (the event workload's `/v1/events`).
public struct WorkloadRoutes: Sendable {
    /// Whether a path belongs to `handler`.
    public let handles: @Sendable (Substring) -> Bool
    public let handler: any HTTPHandler
    /// The route template of a path for `dory_http_requests_total` (`/v1/channels/{name}/messages`); nil: the
    /// handler's responses are not counted by the runtime.
    public let routeTemplate: (@Sendable (Substring) -> String?)?

    public init(handles: @escaping @Sendable (Substring) -> Bool, handler: any HTTPHandler,
                routeTemplate: (@Sendable (Substring) -> String?)? = nil) {
        self.handles = handles
        self.handler = handler
        self.routeTemplate = routeTemplate
    }
}

/// A refusal of `POST /state` by the workload (run mode: 409 `child_running` once a child exists).
public struct TransferRefusal: Sendable, Equatable {
    public var status: Int
    public var code: String
    public var message: String

    public init(status: Int, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }
}

/// Thrown from `startup()` or `run()` when the workload itself ended the boot and already logged why (a spawn
/// failure, a spent restart budget): the Supervisor logs nothing more, runs the stop sequence and asks
/// `Workload.endOfBoot` for the exit code.
public struct WorkloadEnded: Error, Sendable, CustomStringConvertible {
    public let reason: String
    public init(reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// The facts at the end of a boot that reached starting, for `Workload.endOfBoot`.
public struct BootEndFacts: Sendable, Equatable {
    /// The code the runtime decided on its own (nil: none, i.e. 0).
    public var runtimeCode: Int32?
    /// Whether a stop signal to doryd began the stop.
    public var stopSignalled: Bool
    /// The final save: nil when nothing needed saving, true when durable, false when it failed or timed out.
    public var finalSaveDurable: Bool?
}

/// The exit code and journal `clean` flag a workload decides (`Workload.endOfBoot`).
public struct WorkloadEnd: Sendable, Equatable {
    public var code: Int32
    public var clean: Bool
    /// Run mode: `child_status` and `source`, written both in the end record and on the last log line
    /// (`doryd exiting`); nil writes neither.
    public var child: ChildEnd?

    public init(code: Int32, clean: Bool, child: ChildEnd? = nil) {
        self.code = code
        self.clean = clean
        self.child = child
    }
}

/// Where the healthy-run timer (runtime §7, `healthy_after_sec`) counts from (`Workload.healthyRunStart`).
public enum HealthyRunStart: Sendable, Equatable {
    /// From entering running (the processor's behaviour).
    case running
    /// From this instant when it is later than entering running (run mode: the current child's spawn, so the timer
    /// restarts with every child, supervise.md §1.2, §8.3).
    case since(ContinuousClock.Instant)
    /// Not counting now (run mode: no child up, between in-pod restarts).
    case paused
}

/// The outcome of a save the workload requested through `WorkloadHost.save`.
public enum WorkloadSaveOutcome: Sendable, Equatable {
    case durable(generation: UInt64, reused: Bool)
    /// `step` (`open`, `write`, `fsync`, …) and its message.
    case failed(step: String, message: String)
    case timedOut
}

/// The runtime as a workload sees it (`Workload.attach(host:)`): facts and a few actions, all thread-safe.
public final class WorkloadHost: Sendable {
    public let settings: RuntimeSettings
    let status: RuntimeStatus
    let notifier: Notifier
    private weak let supervisor: Supervisor?
    private let stopDeadline = Mutex<ContinuousClock.Instant?>(nil)

    init(supervisor: Supervisor) {
        self.supervisor = supervisor
        settings = supervisor.settings
        status = supervisor.status
        notifier = supervisor.notifier
    }

    /// The runtime phase now.
    public var phase: Phase { status.phase }
    /// The recovery decision of this boot (`.undecided` before step i).
    public var decision: RecoveryDecision { supervisor?.decisionSnapshot ?? .undecided }
    /// T0 + `shutdown_timeout_sec` once the stop began, else nil.
    public var shutdownDeadline: ContinuousClock.Instant? { stopDeadline.withLock { $0 } }
    func setShutdownDeadline(_ instant: ContinuousClock.Instant) { stopDeadline.withLock { $0 = instant } }
    /// Whether the state is bound (see `WorkloadTraits.bindsStateItself`).
    public var stateBound: Bool { status.stateBound }
    /// Binds the state: from now on saves write the captured state.
    public func markStateBound() { status.markStateBound() }
    /// Sends `STATUS=<text>` to doryd's own notify socket (when it runs under systemd).
    public func notifyStatus(_ text: String) { notifier.status(text) }

    /// The control socket as a client reaches it: an absolute path, or `@name` for an abstract socket (spec §4.7).
    public var controlSocketAddress: String {
        switch ControlSocketAddress.resolve(settings: settings) {
        case .path(let path): path
        case .abstract(let name, _): "@" + name
        }
    }

    /// `<state_dir>/<processor_id>` made absolute.
    public var absoluteProcessorDirectory: String { ControlSocketAddress.absolute(settings.processorDirectory) }

    /// `state_dir` made absolute.
    public var absoluteStateDirectory: String {
        var dir = ControlSocketAddress.absolute(settings.config.stateDir)
        while dir.count > 1, dir.hasSuffix("/") { dir.removeLast() }
        return dir
    }

    /// Writes `state` as a generation with reason `api` through the snapshot coordinator (coalescing, reuse rule),
    /// bounded by `final_save_timeout_sec`.
    public func save(_ state: JSONObject) async -> WorkloadSaveOutcome {
        guard let supervisor, let coordinator = await supervisor.coordinator else {
            return .failed(step: "save", message: "the snapshot store is not ready")
        }
        let s = settings.config.finalSaveTimeoutSec
        let task = BoundedTask { await coordinator.request(.api, state: state, captureTimeoutSec: s) }
        task.expire(at: .now + .milliseconds(Int64(s * 1000)))
        switch await task.result() {
        case .value(.saved(let generation, let reused, _, _, _)): return .durable(generation: generation, reused: reused)
        case .value(.skipped(.some(let generation))): return .durable(generation: generation, reused: true)
        case .value(.skipped(.none)): return .failed(step: "save", message: "skipped")
        case .value(.failed(let step, let message)): return .failed(step: step, message: message)
        case .value(.timedOut), .timedOut: return .timedOut
        case .failure(let error): return .failed(step: "save", message: "\(error)")
        }
    }
}

/// Defaults for the extension points: the processor's behaviour.
extension Workload {
    public var traits: WorkloadTraits { WorkloadTraits() }
    public func attach(host: WorkloadHost) {}
    public func receiveRestoreSource(state: JSONObject?, generation: UInt64?) async {}
    public func stopBegan() {}
    public func escalate() {}
    public func receivedSignal(_ signal: Int32) -> WorkloadSignalDisposition { .runtime }
    public func supervisorTick() {}
    public func probeChecks(_ kind: CheckKind) -> [WorkloadCheck] { [] }
    public func controlSocketRoutes() -> WorkloadRoutes? { nil }
    public func tcpRoutes() -> WorkloadRoutes? { nil }
    public func transferRefusal() -> TransferRefusal? { nil }
    public func hasStateForTransfer() -> Bool? { nil }
    public func stateDurable(generation: UInt64) {}
    public func endOfBoot(_ facts: BootEndFacts) async -> WorkloadEnd? { nil }
    public func childEndWhenDorydDecides() -> ChildEnd? { nil }
    public func healthyRunStart() -> HealthyRunStart { .running }
    public func metricsText() -> String { "" }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DoryKit
import DoryState
import Logging
import Synchronization

/// A failure to open the event workload's files at start-up (the runtime exits `startup_failed`).
public struct EventWorkloadError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Where the HTTP intake stands (§2.2 row 4), from the workload's side.
public enum EventIntakeState: Sendable, Equatable {
    /// `startup()` has not opened the queue yet: 503 `not_ready`.
    case notStarted
    /// Events are accepted.
    case open
    /// The stopping phase began: 503 `shutting_down`.
    case stopping
    /// The queue stopped after a failed truncation: 503 `queue_unavailable`.
    case queueStopped
}

/// The event workload (DESIGN.md §1, event-pipeline.md): the durable queue, its single worker running `runApp`, the
/// schedules, the tag map and channels as the workload state. The Supervisor drives it through ``Workload``; the HTTP
/// side is ``EventRoutes``.
///
/// Lifecycle: ``startup()`` opens channels and the queue (recovery, compaction) and starts the schedules;
/// ``restoreState(_:)`` applies a generation (between two invocations when the worker runs); ``run()`` is the worker
/// until the context asks for shutdown (or ``beginStopping()``); ``shutdown()`` waits for the worker, writes the last
/// `done` records and answers waiting callers.
public final class EventWorkload: Workload {
    /// The opened parts, set once by `startup()`.
    struct Parts: Sendable {
        let queue: EventQueue
        let state: EventState
        let runtime: EventRuntime
        let writer: SnapshotTagCommitWriter
        let app: any Application
        let schedules: ScheduleRunner
    }

    private enum WorkerPhase { case notStarted, running, finished }

    public let settings: EventSettings
    public let metrics: EventMetrics
    private let appType: any Application.Type
    private let persist: EventStatePersist
    private let logStream: LogStream
    private let fileSystem: any FileSystem
    private let clock: @Sendable () -> Int64
    private let flushCapturedOutput: (@Sendable () -> Void)?
    /// Scales `rate` intervals (tests only).
    let rateScale: Double
    let waiters = SummaryWaiters()
    let logger: Logger

    /// Set by ``hosted(settings:application:flushCapturedOutput:)`` before the runtime starts, then only read.
    nonisolated(unsafe) var hostBox: HostBox?
    nonisolated(unsafe) var controlToken: String?

    private let parts = Mutex<Parts?>(nil)
    private let context = Mutex<ExecutionContext?>(nil)
    private let stopping = Atomic<Bool>(false)
    private let worker = Mutex<(phase: WorkerPhase, waiters: [CheckedContinuation<Void, Never>])>((.notStarted, []))

    /// - Parameters:
    ///   - settings: the parsed configuration (``EventSettings/init(config:processorId:version:)``).
    ///   - application: the application type; its one instance is made with `init()` in `startup()`.
    ///   - persist: writes one new generation (reason `api`) of the given state; used by tag commits (§7.1).
    ///   - logStream: doryd's log stream (pipeline lines, warnings).
    ///   - metrics: the §11 counters (render them with ``metricsText()``).
    ///   - flushCapturedOutput: flushes captured standard output at S16 (§10.3), when the host captures it.
    public convenience init(settings: EventSettings, application: any Application.Type = TemperatureAlertApp.self,
                persist: @escaping EventStatePersist, logStream: LogStream = DoryLogging.shared,
                metrics: EventMetrics = EventMetrics(), fileSystem: any FileSystem = SystemFileSystem(),
                clock: @escaping @Sendable () -> Int64 = { WallClock.nowMillis() },
                flushCapturedOutput: (@Sendable () -> Void)? = nil)
    {
        self.init(settings: settings, application: application, persist: persist, logStream: logStream,
                  metrics: metrics, fileSystem: fileSystem, clock: clock, flushCapturedOutput: flushCapturedOutput,
                  rateScale: 1)
    }

    init(settings: EventSettings, application: any Application.Type, persist: @escaping EventStatePersist,
         logStream: LogStream, metrics: EventMetrics, fileSystem: any FileSystem,
         clock: @escaping @Sendable () -> Int64, flushCapturedOutput: (@Sendable () -> Void)?, rateScale: Double)
    {
        self.settings = settings
        self.appType = application
        self.persist = persist
        self.logStream = logStream
        self.metrics = metrics
        self.fileSystem = fileSystem
        self.clock = clock
        self.flushCapturedOutput = flushCapturedOutput
        self.rateScale = rateScale
        logger = Logger(label: "doryd.events") { label in DoryLogHandler(label: label, stream: logStream) }
    }

    // MARK: What the host reads

    /// The opened parts; nil before `startup()`.
    var opened: Parts? { parts.withLock { $0 } }

    /// The queue, once `startup()` opened it.
    public var queue: EventQueue? { opened?.queue }
    /// The tag map and channels, once `startup()` opened them.
    public var state: EventState? { opened?.state }
    /// The runtime `runApp` uses, once started.
    public var runtime: EventRuntime? { opened?.runtime }

    /// The intake's state for §2.2 row 4 (the runtime's phase is checked by the caller of the routes).
    public var intakeState: EventIntakeState {
        guard let parts = opened else { return .notStarted }
        if parts.queue.isStopped { return .queueStopped }
        return stopping.load(ordering: .acquiring) ? .stopping : .open
    }

    /// `custom:event_queue` readiness: false once the queue stopped after a write failure (§2.4).
    public var isQueueHealthy: Bool { !(opened?.queue.isStopped ?? false) }

    /// The §11 families, to append to `/metrics`.
    public func metricsText() -> String {
        let queue = opened?.queue
        let depth = queue?.pendingCount ?? 0
        var age = 0.0
        if let oldest = queue?.oldestEnqueuedAt { age = max(0, Double(clock() - oldest) / 1000) }
        return metrics.render(queueDepth: depth, oldestAgeSeconds: age)
    }

    // MARK: Workload

    public func prepare(context: ExecutionContext) async throws {
        self.context.withLock { $0 = context }
        context.registerReadinessCheck("event_queue") { [weak self] in
            if let self, !self.isQueueHealthy { throw EventWorkloadError("event queue stopped") }
        }
    }

    public func resetCaches() async {}

    /// Step 1 of the hosting checklist: config warnings, channels, state, runtime, the queue (recovery), schedules.
    public func startup() async throws {
        if opened != nil { return }
        for warning in settings.events.warnings { logger.warning("\(warning)") }
        do throws(FileSystemError) {
            try fileSystem.makeDirectories(settings.channelsDirectory)
        } catch {
            throw EventWorkloadError("events directory \(settings.channelsDirectory): \(error)")
        }
        let channels: ChannelStore
        do throws(ChannelStorageError) {
            channels = try ChannelStore(backend: FileChannelBackend(root: settings.channelsDirectory,
                                                                    fileSystem: fileSystem),
                                        maxMessageBytes: settings.eventMaxBytes,
                                        channelMaxBytes: settings.channelMaxBytes)
        } catch {
            throw EventWorkloadError("channels \(settings.channelsDirectory): \(error.message)")
        }
        let state = EventState(channels: channels)
        let writer = SnapshotTagCommitWriter(state: state, persist: persist)
        let events = settings.events
        let runtime = EventRuntime(base: events.deployment, state: state, tagWriter: writer,
                                   functionName: events.functionName, functionVersion: events.functionVersion,
                                   timeoutSeconds: settings.eventTimeoutSec, logStream: logStream, metrics: metrics,
                                   clock: clock, flushCapturedOutput: flushCapturedOutput)
        let logger = self.logger
        let queue: EventQueue
        do throws(EventQueueError) {
            queue = try EventQueue(directory: settings.eventsDirectory, maxPending: settings.eventQueueMax,
                                   fileSystem: fileSystem, metrics: metrics, clock: clock,
                                   warnings: { EventWorkload.logQueueWarning($0, logger) })
        } catch {
            throw EventWorkloadError(error.message)
        }
        let recovery = queue.recovery
        if recovery.pending > 0 {
            logger.info("event queue recovered", metadata: [
                "pending": .stringConvertible(recovery.pending), "replays": .stringConvertible(recovery.replays),
            ])
        }
        let schedules = ScheduleRunner(schedules: events.schedules, queue: queue,
                                       organisationId: events.deployment.organisationId, metrics: metrics,
                                       logger: logger, clock: clock, rateScale: rateScale)
        let app = appType.init()
        parts.withLock { $0 = Parts(queue: queue, state: state, runtime: runtime, writer: writer, app: app,
                                    schedules: schedules) }
        if !stopping.load(ordering: .acquiring) { schedules.start() }
    }

    /// Applies a workload state (§7.1 "Restore"), between two invocations: waits for a running one to finish.
    /// A caller that gave up meanwhile (a `POST /state` past its capture timeout cancels this task, runtime §4.5)
    /// applies nothing: the transfer answered 504 and must never land later (§13 C133).
    public func restoreState(_ state: JSONObject) async throws {
        guard let parts = opened else { throw EventWorkloadError("event workload not started") }
        await parts.runtime.gate.acquire()
        defer { parts.runtime.gate.release() }
        try Task.checkCancellation()
        try parts.state.restore(state)
    }

    public func onStateRestoreFailed(_ error: any Error) async -> Bool { true }
    public func onRapidRestartDetected(crashCount: Int) async -> Bool { true }
    public func onHealthCheckFailed(_ error: any Error) async -> Bool { false }

    /// The worker (§2.4): one event at a time in queue order, until shutdown is requested (the running invocation
    /// may finish; a cancelled one is abandoned and runs again at the next start).
    public func run() async throws {
        guard let parts = opened else { throw EventWorkloadError("event workload not started") }
        let started = worker.withLock { w -> Bool in
            guard w.phase == .notStarted else { return false }
            w.phase = .running
            return true
        }
        guard started else { return }
        defer { finishWorker() }
        let watcher = watchShutdownRequest()
        defer { watcher?.cancel() }
        while !stopping.load(ordering: .acquiring), !Task.isCancelled {
            let next = await withTaskCancellationHandler {
                await parts.queue.next()
            } onCancel: {
                self.beginStopping()
            }
            guard let queued = next else { break }
            if stopping.load(ordering: .acquiring) || Task.isCancelled {
                parts.queue.release(queued.invocationId)
                break
            }
            await process(queued, parts: parts)
        }
    }

    /// Stops the intake and the schedules and lets the worker start no new event (the stopping phase, §2.4). The
    /// running invocation goes on until `run()` is cancelled. Idempotent; `run()` calls it when the context's
    /// shutdown is requested.
    public func beginStopping() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        if let parts = opened {
            parts.schedules.stop()
            parts.queue.close()
        }
    }

    /// Waits for the worker to end (bounded by the runtime's deadline, which cancels this task), writes the `done`
    /// records still waiting for their round, and answers `?wait=true` callers that are still waiting (202).
    public func shutdown() async throws {
        beginStopping()
        await waitForWorker()
        if let parts = opened { await parts.queue.flush() }
        waiters.giveUpAll()
    }

    public func captureState() async throws -> JSONObject {
        guard let parts = opened else { throw EventWorkloadError("event workload not started") }
        return parts.writer.captureForSnapshot()
    }

    public func validateTransfer(_ state: JSONObject) async -> [String: String] {
        do throws(EventStateError) {
            _ = try EventState.validate(state)
            return [:]
        } catch {
            return [error.member: error.reason]
        }
    }

    public func declaredKeys() async -> [String] { ["tag_values", "aggregates", "channels"] }

    // MARK: The worker's steps

    /// Replay checks, `start`, `runApp`, `done` for one event (§2.4, hosting checklist step 4).
    func process(_ queued: QueuedEvent, parts: Parts) async {
        let id = queued.invocationId
        if queued.attempts > 0 {
            let logger = self.logger
            if let summary = Replay.deliveredSummary(invocationId: id, event: queued.event, runtime: parts.runtime,
                                                     unreadable: { logger.warning("\($0)") })
            {
                metrics.replay("summary_found")
                parts.queue.markDone(id, status: summary.status)
                waiters.complete(summary)
                return
            }
            if queued.attempts >= settings.eventMaxAttempts {
                let summary = Replay.finishExhausted(queued, runtime: parts.runtime)
                parts.queue.markDone(id, status: summary.status)
                waiters.complete(summary)
                return
            }
            metrics.replay("rerun")
        }
        guard await parts.queue.markStarted(id) else {
            parts.queue.release(id)
            return
        }
        let request = InvocationRequest(invocationId: id, requestId: queued.requestId,
                                        subscriptionId: queued.subscriptionId)
        guard let summary = await runApp(parts.app, event: .object(queued.event), context: request,
                                         runtime: parts.runtime)
        else {
            // Abandoned at shutdown: it keeps its place and runs again at the next start.
            parts.queue.release(id)
            return
        }
        parts.queue.markDone(id, status: summary.status)
        waiters.complete(summary)
    }

    // MARK: Helpers

    /// Ends `run()` once the context asks for shutdown (the runtime's stop sequence, §5.2).
    private func watchShutdownRequest() -> Task<Void, Never>? {
        guard let context = context.withLock({ $0 }) else { return nil }
        return Task { [weak self] in
            for await _ in context.runLoop(interval: .seconds(86_400)) {
                if Task.isCancelled { return }
            }
            if !Task.isCancelled { self?.beginStopping() }
        }
    }

    private func finishWorker() {
        let waiting = worker.withLock { w -> [CheckedContinuation<Void, Never>] in
            w.phase = .finished
            let list = w.waiters
            w.waiters = []
            return list
        }
        for c in waiting { c.resume() }
    }

    /// Returns when the worker has ended (or never started); gives up when this task is cancelled.
    private func waitForWorker() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = worker.withLock { w -> Bool in
                if w.phase != .running { return true }
                w.waiters.append(c)
                return false
            }
            if done { c.resume() }
        }
    }


    /// The queue's notes as log lines: `event queue stopped` is CRITICAL, a failed write ERROR, the rest WARNING.
    static func logQueueWarning(_ text: String, _ logger: Logger) {
        if text == "event queue stopped" {
            logger.critical("event queue stopped")
        } else if text.hasPrefix("queue write failed: ") {
            logger.error("queue write failed", metadata: [
                "error": .string(String(text.dropFirst("queue write failed: ".count))),
            ])
        } else {
            logger.warning("\(text)")
        }
    }
}

// MARK: - Hosted by doryd (`doryd events`)

extension EventWorkload {
    /// The event workload as `doryd events` runs it: settings from the runtime's configuration (an invalid
    /// `events:` section exits 2 naming the key), tag commits saved through the runtime's snapshot coordinator, and
    /// `POST /v1/events` plus the channel reads served on the TCP port behind `control_token`.
    /// - Parameters:
    ///   - settings: the runtime's resolved settings.
    ///   - application: the application type (the built-in example by default).
    ///   - flushCapturedOutput: flushes captured output at S16 (§10.3), when the host captures it.
    public static func hosted(
        settings runtime: RuntimeSettings, application: any Application.Type = TemperatureAlertApp.self,
        flushCapturedOutput: (@Sendable () -> Void)? = nil
    ) throws(ConfigError) -> EventWorkload {
        let settings: EventSettings
        do throws(EventsConfigError) {
            settings = try EventSettings(config: runtime.config, processorId: runtime.processorId, version: runtime.version)
        } catch {
            let file = runtime.config.configFile.map { " (in \($0))" } ?? ""
            throw ConfigError(setting: "events", source: nil, description: error.description + file)
        }
        let hostBox = HostBox()
        let workload = EventWorkload(settings: settings, application: application, persist: { state in
            guard let host = hostBox.host else { throw EventHostError("the runtime is not attached") }
            switch await host.save(state) {
            case .durable(let generation, _): return generation
            case .failed(let step, let message): throw EventHostError("\(step): \(message)")
            case .timedOut: throw EventHostError("the save did not complete in time")
            }
        }, flushCapturedOutput: flushCapturedOutput)
        workload.hostBox = hostBox
        workload.controlToken = runtime.config.controlToken
        return workload
    }

    public func attach(host: WorkloadHost) { hostBox?.set(host) }

    public func tcpRoutes() -> WorkloadRoutes? {
        guard let hostBox else { return nil }
        let routes = EventRoutes(workload: self, controlToken: controlToken, phase: { hostBox.host?.phase ?? .initializing })
        return WorkloadRoutes(
            handles: { EventRoutes.route(for: $0) != nil }, handler: routes,
            routeTemplate: { EventRoutes.route(for: $0)?.rawValue })
    }
}

/// The runtime host, known once `attach(host:)` ran.
final class HostBox: Sendable {
    private let value = Mutex<WorkloadHost?>(nil)
    var host: WorkloadHost? { value.withLock { $0 } }
    func set(_ host: WorkloadHost) { value.withLock { $0 = host } }
}

struct EventHostError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

@preconcurrency import Dispatch
import DoryState
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The one serial owner of lifecycle state (DESIGN.md §1): it runs the phase machine of spec §2 for one workload,
/// turns signals, `/prestop`, timers and workload exits into transitions, and decides the exit code.
actor Supervisor {
    let settings: RuntimeSettings
    let status: RuntimeStatus
    let metrics: Metrics
    let notifier = Notifier()
    let workload: any Workload
    private let logger = Logger(label: "doryd.lifecycle")
    private var config: DoryConfig { settings.config }

    // Built during initializing.
    private(set) var context: ExecutionContext?
    private(set) var decision: RecoveryDecision = .undecided
    private var storage: StateDirectory?
    private(set) var coordinator: SnapshotCoordinator?
    private var restoredGeneration: (generation: UInt64, state: JSONObject)?

    // Stop handling.
    private var t0: ContinuousClock.Instant?
    private var stopSignalsInStopping = 0
    private let stopEvent = ShutdownSignal()
    private var hardStop: (any DispatchSourceTimer)?
    private var exitCode: Int32?
    private var errors: [String] = []
    private var startupEntered = false
    private var startupTask: BoundedTask<Void>?
    private var runTask: BoundedTask<Void>?
    private var shutdownTask: BoundedTask<Void>?
    private var finalSaveTask: BoundedTask<SnapshotOutcome>?
    private var finalSave: SnapshotOutcome?
    private var finalSaveWaiters: [CheckedContinuation<SnapshotOutcome, Never>] = []
    private var backgroundTasks: [Task<Void, Never>] = []

    // /prestop and /state.
    private var prestopInFlight: Task<PrestopResult, Never>?
    private var prestopRecorded: PrestopResult?
    private var stagedTransfer: (generation: UInt64, state: JSONObject)?
    private var stateCapture: BoundedTask<JSONObject>?
    private var restoreDone: [CheckedContinuation<Void, Never>] = []

    // Workload extension points.
    private var traits: WorkloadTraits { workload.traits }
    private(set) var host: WorkloadHost?
    private var stopSignalled = false
    /// nil: nothing needed saving; true: durable; false: failed or timed out.
    private var finalSaveDurable: Bool?

    /// The decision, readable by probes without entering the actor.
    private let publishedDecision = Mutex<RecoveryDecision>(.undecided)
    nonisolated var decisionSnapshot: RecoveryDecision { publishedDecision.withLock { $0 } }
    nonisolated var appName: String { ExecutionContext.nonEmpty(settings.environment["APP_NAME"]) ?? settings.processorId }

    /// From 75 % of `state_max_bytes` a transfer is logged at WARN (§4.5).
    nonisolated func warnLargeState(size: Int, limit: Int) {
        Logger(label: "doryd.state").warning("state transfer near the size limit", metadata: [
            "event": "transfer.large", "size_bytes": .stringConvertible(size), "max_bytes": .stringConvertible(limit),
        ])
    }

    init(settings: RuntimeSettings, workload: any Workload, status: RuntimeStatus, metrics: Metrics) {
        self.settings = settings
        self.workload = workload
        self.status = status
        self.metrics = metrics
    }

    // MARK: - Boot

    /// Runs the whole lifecycle and returns the exit code. The caller flushes the log and exits.
    func run(bind: @Sendable (Supervisor) async throws -> Void) async -> Int32 {
        notifier.status("initializing")
        // (d) context (journal-derived members are filled once the journal is read).
        let identity = settings.identity
        if identity.podNameUnknown {
            logger.warning("pod name unknown; set DORY_POD_NAME from the downward API", metadata: ["event": "context.pod_unknown"])
        }
        let context = ExecutionContext(
            identity: identity, processorId: settings.processorId, bootId: settings.bootId,
            environment: settings.environment, hooks: makeContextHooks())
        self.context = context
        let host = WorkloadHost(supervisor: self)
        self.host = host
        workload.attach(host: host)
        // (e) construct the workload and collect its declarations: an error exits 2 before any file is touched.
        do {
            try await workload.prepare(context: context)
        } catch {
            logger.critical("invalid state declaration", metadata: ["event": "config.invalid", "error": .errorValue(type: "declaration", message: "\(error)")])
            status.setPhase(.failed)
            return ExitCode.invalidConfiguration
        }
        // (f)–(h): state directory, lock, journal, scan.
        let storage: StateDirectory
        do {
            storage = StateDirectory(settings: settings)
            try storage.prepare()
        } catch {
            return failEarly(ExitCode.stateError, "state directory unusable", error)
        }
        self.storage = storage
        let history: JournalSummary
        do {
            history = try storage.appendBootRecord(bootId: settings.bootId, version: settings.version)
        } catch {
            return failEarly(ExitCode.stateError, "journal append failed", error)
        }
        for note in storage.notes { logger.warning("\(note.message)", metadata: note.metadata) }
        storage.notes.removeAll()
        let scan: StateDirectory.Scan
        do {
            scan = try storage.scan()
        } catch {
            return failEarly(ExitCode.stateError, "snapshot scan failed", error)
        }
        for note in scan.quarantined {
            if note.countsAsQuarantined { metrics.quarantined(reason: note.reason) }
            logger.warning("\(note.message)", metadata: [
                "event": .string(note.event), "file": .string(note.file), "reason": .string(note.reason),
                "size": .stringConvertible(note.size), "detail": .string(note.detail),
            ])
        }
        // (i) decision.
        let restartCount = settings.restartCountOverride ?? history.restartCount
        let crashes = settings.restartCountOverride ?? history.crashesInWindow
        decision = RecoveryDecision.decide(
            crashesInWindow: crashes, restartCount: restartCount, scan: scan.outcome, isMigrating: identity.isMigrating,
            threshold: config.rapidRestartThreshold, backoffBaseSec: config.backoffBaseSec, backoffMaxSec: config.backoffMaxSec)
        context.settle(restartCount: restartCount, recovery: decision)
        publishedDecision.withLock { $0 = decision }
        let writer = StoreWriter(storage: storage, settings: settings, decision: decision)
        let coordinator = SnapshotCoordinator(
            writer: writer, metrics: metrics, onCapturedDurable: { [workload] generation in workload.stateDurable(generation: generation) }
        ) { [workload] in try await workload.captureState() }
        self.coordinator = coordinator
        if case .valid(let generation, let state, let savedAt, let raw, let compressed) = scan.newest {
            await coordinator.noteExisting(generation: generation, state: state)
            metrics.snapshotDurable(generation: generation, rawBytes: raw, compressedBytes: compressed, savedAtMillis: savedAt)
            if decision.restores { restoredGeneration = (generation, state) }
        }
        logDecision(scan: scan)
        if decision.strategy == .goldenBackoff {
            let accepted = await Deadline.run(seconds: config.startupTimeoutSec) { [workload, decision] in
                await workload.onRapidRestartDetected(crashCount: decision.crashesInWindow)
            }
            guard case .value(true) = accepted else {
                logger.error("rapid restart refused by the processor", metadata: ["event": "recovery.refused"])
                return finish(ExitCode.rapidRestartRefused, phase: .failed)
            }
        }
        if decision.isGolden {
            do {
                if let archived = try storage.archiveAll() {
                    logger.warning("snapshots archived", metadata: ["event": "recovery.archived", "path": .string(archived)])
                }
            } catch {
                return failEarly(ExitCode.stateError, "archive failed", error)
            }
        }
        // (j) bind the probe server and the control socket, readiness false.
        do {
            try await bind(self)
        } catch {
            logger.critical("listener could not bind", metadata: ["event": "http.bind_failed", "error": .errorValue(type: "bind", message: "\(error)")])
            return finish(ExitCode.bindFailed, phase: .failed)
        }
        startHeartbeat()
        if t0 != nil { return await stopBeforeStart() }

        // backoff
        if decision.strategy == .goldenBackoff, decision.backoffSec > 0 {
            transition(to: .backoff)
            // STATUS= shows the time left, updated every second; a stop signal ends the wait.
            let end = ContinuousClock.now + .milliseconds(Int64(decision.backoffSec * 1000))
            while t0 == nil, ContinuousClock.now < end {
                let left = end - ContinuousClock.now
                let leftSec = max(1, Int((Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18).rounded(.up)))
                notifier.status("backoff \(leftSec)s after \(decision.crashesInWindow) crashes (golden_backoff)")
                await stopEvent.sleep(for: min(.seconds(1), left))
            }
            if t0 != nil { return await stopBeforeStart() }
        }

        // starting
        transition(to: .starting)
        notifier.status("starting")
        startupEntered = true
        let restoresFirst = traits.restoresBeforeStartup
        if restoresFirst {
            let source = stagedTransfer ?? restoredGeneration
            await workload.receiveRestoreSource(state: source?.state, generation: source?.generation)
        }
        let resets = decision.resetsCaches && !restoresFirst
        let startup = BoundedTask { [workload] in
            if resets { await workload.resetCaches() }
            try await workload.startup()
        }
        startupTask = startup
        if !traits.ownsStartupDeadline {
            startup.expire(at: .now + .milliseconds(Int64(config.startupTimeoutSec * 1000)))
        }
        if let t0 { startup.expire(at: t0 + cutoffB_r) }
        let startupResult = await startup.result()
        startupTask = nil
        if t0 != nil {
            return await stoppingSequence()
        }
        switch startupResult {
        case .value: break
        case .failure(let error as WorkloadEnded):
            logger.info("workload ended during startup", metadata: ["event": "lifecycle.workload_ended", "reason": .string(error.reason)])
            beginStop(signal: nil)
            return await stoppingSequence()
        case .failure(let error):
            logger.error("startup failed", metadata: ["event": "lifecycle.startup_failed", "error": .errorValue(type: "startup", message: "\(error)")])
            return await failAndStop(ExitCode.startupFailed, "startup: \(error)")
        case .timedOut:
            logger.error("startup timed out", metadata: ["event": "lifecycle.startup_failed", "error": .errorValue(type: "timeout", message: "startup exceeded \(config.startupTimeoutSec)s")])
            return await failAndStop(ExitCode.startupFailed, "startup: timed out")
        }

        // restoring
        transition(to: .restoring)
        if !restoresFirst, let code = await restorePhase(storage: storage) { return code }
        if !traits.bindsStateItself { status.markStateBound() }
        resumeRestoreWaiters()
        if t0 != nil { return await stoppingSequence() }

        // running
        transition(to: .running)
        status.setReady(true)
        notifier.ready(status: readyStatusText())
        logger.info("ready", metadata: ["event": "lifecycle.ready", "phase": "running"])
        let run = BoundedTask { [workload] in try await workload.run() }
        runTask = run
        startIntervalTimer()
        startHealthyTimer()
        let runResult = await run.result()
        if t0 == nil {
            // run() ended on its own: that is T0 (§3.3).
            switch runResult {
            case .failure(let error as WorkloadEnded):
                logger.info("workload ended", metadata: ["event": "lifecycle.workload_ended", "reason": .string(error.reason)])
            case .failure(let error):
                logger.error("run() threw", metadata: ["event": "lifecycle.run_failed", "error": .errorValue(type: "run", message: "\(error)")])
                recordFailure(ExitCode.runFailed, "run: \(error)")
            default:
                logger.info("run() returned", metadata: ["event": "lifecycle.run_returned"])
            }
            beginStop(signal: nil)
        } else if case .failure(let error) = runResult, !(error is CancellationError), !(error is WorkloadEnded) {
            logger.error("run() threw", metadata: ["event": "lifecycle.run_failed", "error": .errorValue(type: "run", message: "\(error)")])
            recordFailure(ExitCode.runFailed, "run: \(error)")
        }
        return await stoppingSequence()
    }

    // MARK: - Restoring

    private func restorePhase(storage: StateDirectory) async -> Int32? {
        var source: (generation: UInt64, state: JSONObject)? = restoredGeneration
        if let staged = stagedTransfer {
            if source?.generation != staged.generation {
                logger.warning("staged transfer overrides the recovery decision", metadata: ["event": "transfer.overrides_decision", "generation": .stringConvertible(staged.generation)])
            }
            source = staged
        }
        guard let source else {
            notifier.status("restoring: default state")
            await writeStartupSnapshot(restored: nil)
            return nil
        }
        notifier.status("restoring generation \(source.generation)")
        let restore = await Deadline.run(seconds: config.startupTimeoutSec) { [workload] in try await workload.restoreState(source.state) }
        var accepted = true
        if case .value = restore {} else {
            let error: any Error = if case .failure(let e) = restore { e } else { RestoreTimeout(seconds: config.startupTimeoutSec) }
            logger.error("state restore failed", metadata: ["event": "state.restore_failed", "generation": .stringConvertible(source.generation), "error": .errorValue(type: "restore", message: "\(error)")])
            let goOn = await Deadline.run(seconds: config.startupTimeoutSec) { [workload] in await workload.onStateRestoreFailed(error) }
            guard case .value(true) = goOn else {
                recordFailure(ExitCode.stateError, "restore refused: \(error)")
                resumeRestoreWaiters()
                beginStop(signal: nil)
                return await stoppingSequence()
            }
            accepted = false
            do {
                if let path = try storage.archive(generation: source.generation) {
                    logger.warning("rejected generation archived", metadata: ["event": "state.archived", "generation": .stringConvertible(source.generation), "path": .string(path)])
                }
            } catch {
                logger.error("archiving the rejected generation failed", metadata: ["error": .errorValue(type: "archive", message: "\(error)")])
            }
        }
        await writeStartupSnapshot(restored: accepted ? source : nil)
        return nil
    }

    private func writeStartupSnapshot(restored: (generation: UInt64, state: JSONObject)?) async {
        guard let coordinator else { return }
        let outcome = await coordinator.request(.startup, captureTimeoutSec: config.stateCaptureTimeoutSec)
        if case .failed(let step, let message) = outcome {
            logger.error("startup snapshot failed", metadata: ["step": .string(step), "error": .errorValue(type: "save_failed", message: message)])
        }
    }

    private func resumeRestoreWaiters() {
        let waiters = restoreDone
        restoreDone.removeAll()
        for waiter in waiters { waiter.resume() }
    }

    struct RestoreTimeout: Error, CustomStringConvertible {
        let seconds: Double
        var description: String { "restoreState exceeded \(seconds)s" }
    }

    // MARK: - Stopping

    /// B − r after T0: when doryd stops waiting for `run()` / `startup()`.
    private var cutoffB_r: Duration {
        let b = config.shutdownTimeoutSec
        return .milliseconds(Int64((b - min(5, b / 2)) * 1000))
    }

    /// A stop signal (SIGTERM/SIGINT) from the signal router.
    func stopSignal(_ name: String) {
        metrics.signal(name)
        if t0 == nil {
            logger.info("stop signal received", metadata: ["event": "signal.stop", "signal": .string(name), "phase": .string(status.phase.description)])
            beginStop(signal: name)
            return
        }
        guard status.phase == .stopping else {
            logger.info("stop signal repeated before stopping; ignored", metadata: ["signal": .string(name)])
            return
        }
        stopSignalsInStopping += 1
        if stopSignalsInStopping == 1 {
            logger.warning("second stop signal: skipping remaining waits", metadata: ["event": "signal.escalate", "signal": .string(name)])
            runTask?.expireNow()
            startupTask?.expireNow()
            workload.escalate()
            if traits.shutdownOverrunSec > 0 {
                shutdownTask?.expire(at: .now + .milliseconds(Int64(traits.shutdownOverrunSec * 1000)))
            } else {
                shutdownTask?.expireNow()
            }
            finalSaveTask?.expire(at: .now + .milliseconds(Int64(min(config.finalSaveTimeoutSec, 2) * 1000)))
            escalated = true
        } else {
            let code: Int32 = if case .saved = finalSave { exitCode ?? 0 } else if status.stateBound { ExitCode.finalSaveFailed } else { exitCode ?? 0 }
            logger.warning("third stop signal: exiting now", metadata: ["event": "signal.exit_now", "exit_code": .stringConvertible(code)])
            terminate(code)
        }
    }
    private var escalated = false

    /// Sets T0 and the flags; arms the hard stop; bounds the hooks in flight.
    private func beginStop(signal: String?) {
        guard t0 == nil else { return }
        let now = ContinuousClock.now
        t0 = now
        stopSignalled = signal != nil
        host?.setShutdownDeadline(now + .milliseconds(Int64(config.shutdownTimeoutSec * 1000)))
        workload.stopBegan()
        status.markShutdown()
        status.setReady(false)
        // §5.2 steps 1–2: from running or draining the phase is stopping at once, while `run()` is still awaited, so
        // requests served meanwhile see it (POST /state 409, /v1/events 503) and a second signal escalates (§5.3).
        // Earlier phases keep theirs until their own step ends (§2.3).
        if status.phase == .running || status.phase == .draining { enterStopping() }
        context?.requestShutdown()
        context?.signalMigration()
        stopEvent.fire()
        startupTask?.expire(at: now + cutoffB_r)
        runTask?.expire(at: now + cutoffB_r)
        armHardStop(from: now)
    }

    private func armHardStop(from t0: ContinuousClock.Instant) {
        let total = config.shutdownTimeoutSec + config.finalSaveTimeoutSec + 1
        let timer: any DispatchSourceTimer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "doryd.hardstop"))
        timer.schedule(deadline: .now() + .milliseconds(Int(total * 1000)))
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            Task { await self.hardStopFired() }
            // If the actor itself is stuck, exit from here after a grace second.
            DispatchQueue.global().asyncAfter(deadline: .now() + 1) { HardExit.now(ExitCode.finalSaveFailed) }
        }
        timer.resume()
        hardStop = timer
    }

    private func hardStopFired() {
        let saved: Bool = if case .saved = finalSave { true } else { false }
        let code: Int32 = (status.stateBound && !saved) ? ExitCode.finalSaveFailed : (exitCode ?? 0)
        logger.error("hard stop: shutdown deadline passed", metadata: ["event": "lifecycle.hard_stop", "exit_code": .stringConvertible(code)])
        terminate(code)
    }

    /// Writes the end record, reports, flushes and exits at once.
    private func terminate(_ code: Int32) -> Never {
        storage?.appendEndRecord(bootId: settings.bootId, exitCode: code, clean: code == 0, errors: errors,
                                 child: workload.childEndWhenDorydDecides())
        notifier.status(code == 0 ? "stopped" : "failed: exit \(code)")
        HardExit.now(code)
    }

    /// From initializing or backoff: stop at once, no hook, no snapshot (§2.3).
    private func stopBeforeStart() async -> Int32 {
        transition(to: .stopping)
        notifier.stopping()
        return finish(exitCode ?? ExitCode.ok, phase: .stopped)
    }

    /// Phase stopping and `STOPPING=1`, once.
    private func enterStopping() {
        guard status.phase != .stopping else { return }
        transition(to: .stopping)
        notifier.stopping()
    }

    private func failAndStop(_ code: Int32, _ message: String) async -> Int32 {
        recordFailure(code, message)
        beginStop(signal: nil)
        return await stoppingSequence()
    }

    /// The shutdown sequence of §5.2 (T0 is set).
    private func stoppingSequence() async -> Int32 {
        guard let t0 else { preconditionFailure("stopping without T0") }
        let b = Duration.milliseconds(Int64(config.shutdownTimeoutSec * 1000))
        let r = Duration.milliseconds(Int64(min(5, config.shutdownTimeoutSec / 2) * 1000))
        status.setReady(false)
        enterStopping()
        for task in backgroundTasks { task.cancel() }
        await coordinator?.dropPendingCoalescable()
        context?.requestShutdown()
        context?.signalMigration()
        // 4. wait for run()
        if let runTask {
            notifier.status("stopping: waiting for run()")
            if case .timedOut = await runTask.result() {
                logger.warning("run() did not return in time; cancelled", metadata: ["event": "lifecycle.run_cancelled"])
            }
        }
        // 5. shutdown()
        if startupEntered {
            let overrun = Duration.milliseconds(Int64(traits.shutdownOverrunSec * 1000))
            let deadline = max(t0 + b, ContinuousClock.now + r) + overrun
            let task = BoundedTask { [workload] in try await workload.shutdown() }
            shutdownTask = task
            task.expire(at: deadline)
            if escalated { task.expire(at: .now + overrun) }
            switch await task.result() {
            case .value: break
            case .failure(let error):
                logger.error("shutdown() threw", metadata: ["event": "lifecycle.shutdown_failed", "error": .errorValue(type: "shutdown", message: "\(error)")])
                errors.append("shutdown: \(error)")
            case .timedOut:
                logger.warning("shutdown() overran its budget; cancelled", metadata: ["event": "lifecycle.shutdown_timeout"])
                errors.append("shutdown: timed out")
            }
            shutdownTask = nil
        }
        // 6. the final save
        if status.stateBound, let coordinator {
            notifier.status("stopping: final save")
            let s = config.finalSaveTimeoutSec
            let bound = escalated ? min(s, 2) : s
            let save = BoundedTask { await coordinator.request(.shutdown, captureTimeoutSec: bound) }
            finalSaveTask = save
            save.expire(at: .now + .milliseconds(Int64(bound * 1000)))
            let outcome: SnapshotOutcome
            switch await save.result() {
            case .value(let o): outcome = o
            case .failure: outcome = .failed(step: "save", message: "cancelled")
            case .timedOut: outcome = .timedOut
            }
            finalSave = outcome
            finalSaveDurable = outcome.generation != nil
            let waiters = finalSaveWaiters
            finalSaveWaiters.removeAll()
            for waiter in waiters { waiter.resume(returning: outcome) }
            switch outcome {
            case .saved(let generation, _, _, _, _), .skipped(.some(let generation)):
                notifier.status("stopped: saved generation \(generation)")
            default:
                logger.error("final save failed", metadata: ["event": "lifecycle.final_save_failed", "error": .errorValue(type: "save_failed", message: "\(outcome)")])
                recordFailure(ExitCode.finalSaveFailed, "final save: \(outcome)")
            }
        } else if traits.bindsStateItself, startupEntered, let coordinator {
            // Not state-bound: the newest valid generation is the state of record; confirm it.
            let outcome = await coordinator.confirmNewest()
            finalSave = outcome
            if case .failed = outcome {
                finalSaveDurable = false
                logger.error("final save failed", metadata: ["event": "lifecycle.final_save_failed", "error": .errorValue(type: "save_failed", message: "\(outcome)")])
                errors.append("final save: \(outcome)")
            }
            let waiters = finalSaveWaiters
            finalSaveWaiters.removeAll()
            for waiter in waiters { waiter.resume(returning: outcome) }
        }
        if startupEntered, let end = await workload.endOfBoot(
            BootEndFacts(runtimeCode: exitCode, stopSignalled: stopSignalled, finalSaveDurable: finalSaveDurable))
        {
            return finish(end.code, phase: end.code == 0 ? .stopped : .failed, clean: end.clean,
                          child: end.child)
        }
        let code = exitCode ?? ExitCode.ok
        return finish(code, phase: code == 0 ? .stopped : .failed)
    }

    private func recordFailure(_ code: Int32, _ message: String) {
        if exitCode == nil { exitCode = code }
        errors.append(message)
    }

    /// Terminal: journal end record, final status. The caller flushes the log and exits.
    /// `child`: run mode's `child_status` and `source`; nil asks the workload (``Workload/childEndWhenDorydDecides()``).
    private func finish(_ code: Int32, phase: Phase, clean: Bool? = nil, child: ChildEnd? = nil) -> Int32 {
        hardStop?.cancel()
        let child = child ?? workload.childEndWhenDorydDecides()
        if status.phase == .stopping || phase == .failed { status.setPhase(phase) }
        storage?.appendEndRecord(bootId: settings.bootId, exitCode: code, clean: clean ?? (code == 0), errors: errors, child: child)
        if code == 0 {
            if finalSave == nil { notifier.status("stopped") }
        } else {
            notifier.status("failed: exit \(code)")
        }
        var exitMetadata: Logger.Metadata = ["event": "lifecycle.exit", "exit_code": .stringConvertible(code)]
        if let child {
            exitMetadata["source"] = .string(child.source.rawValue)
            exitMetadata["child_status"] = child.childStatus.map { .int($0) } ?? .json(.null)
        }
        logger.info("doryd exiting", metadata: exitMetadata)
        return code
    }

    private func failEarly(_ code: Int32, _ message: String, _ error: any Error) -> Int32 {
        logger.critical("\(message)", metadata: ["event": "lifecycle.failed", "error": .errorValue(type: "state", message: "\(error)")])
        status.setPhase(.failed)
        storage?.appendEndRecord(bootId: settings.bootId, exitCode: code, clean: false, errors: ["\(message): \(error)"],
                                 child: workload.childEndWhenDorydDecides())
        return code
    }

    // MARK: - Transitions and reporting

    private func transition(to next: Phase) {
        let current = status.phase
        guard current != next else { return }
        guard current.allows(next) else {
            logger.error("invalid lifecycle transition refused", metadata: ["event": "lifecycle.invalid_transition", "from": .string(current.description), "to": .string(next.description)])
            return
        }
        status.setPhase(next)
        logger.info("phase changed", metadata: ["event": "lifecycle.phase", "phase": .string(next.description)])
        if next != .stopping { notifier.status(next.description) }
    }

    private func readyStatusText() -> String {
        var text = "ready: \(decision.strategy.rawValue)/\(decision.reason)"
        if let g = restoredGeneration?.generation { text += ", generation \(g)" }
        return text
    }

    private func logDecision(scan: StateDirectory.Scan) {
        var metadata: Logger.Metadata = [
            "event": "recovery.decision", "strategy": .string(decision.strategy.rawValue), "reason": .string(decision.reason),
            "restart_count": .stringConvertible(decision.restartCount), "crashes_in_window": .stringConvertible(decision.crashesInWindow),
            "backoff": .stringConvertible(decision.backoffSec),
        ]
        if let g = restoredGeneration?.generation { metadata["generation"] = "\(g)" }
        if decision.isWarning {
            logger.warning("recovery decision", metadata: metadata)
        } else {
            logger.info("recovery decision", metadata: metadata)
        }
        notifier.status("initializing: \(decision.strategy.rawValue)/\(decision.reason)")
    }

    /// The `recovery` line of `/healthz?verbose`.
    nonisolated func recoveryLine(_ d: RecoveryDecision) -> String {
        "strategy=\(d.strategy.rawValue) reason=\(d.reason) crashes=\(d.crashesInWindow) restart_count=\(d.restartCount) backoff=\(Self.seconds(d.backoffSec))"
    }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value))s" : "\(value)s"
    }

    // MARK: - Timers

    private func startHeartbeat() {
        let period = notifier.heartbeatPeriodMs
        let task = Task { [weak self] in
            while !Task.isCancelled {
                guard let self else { return }
                await self.beat()
                try? await Task.sleep(for: .milliseconds(period))
            }
        }
        heartbeatTask = task
        startCheckTimer()
    }
    private var heartbeatTask: Task<Void, Never>?

    private func beat() {
        status.beat()
        workload.supervisorTick()
        // A failing workload liveness check withholds WATCHDOG=1, so systemd acts as the kubelet would.
        if workload.probeChecks(.liveness).allSatisfy(\.passed) { notifier.watchdog() }
    }

    private func startIntervalTimer() {
        let interval = config.snapshotIntervalSec
        guard interval > 0, let coordinator else { return }
        let timeout = config.stateCaptureTimeoutSec
        let status = self.status
        let period = Duration.milliseconds(Int64(interval * 1000))
        backgroundTasks.append(Task {
            // Due one interval after the last completed snapshot, whatever its reason.
            while !Task.isCancelled {
                let due = await coordinator.lastCompletedAt + period
                if ContinuousClock.now < due {
                    try? await Task.sleep(until: due, clock: .continuous)
                    continue
                }
                guard !Task.isCancelled, status.phase == .running || status.phase == .draining else { return }
                guard status.stateBound else {
                    // Nothing to write until the state is bound; look again one period later.
                    try? await Task.sleep(for: period)
                    continue
                }
                _ = await coordinator.request(.interval, captureTimeoutSec: timeout)
            }
        })
    }

    /// The healthy record after `healthy_after_sec` in running, counted from where the workload says
    /// (`Workload.healthyRunStart`: run mode restarts it with every child).
    private func startHealthyTimer() {
        let after = Duration.milliseconds(Int64(config.healthyAfterSec * 1000))
        let runningSince = ContinuousClock.now
        let workload = self.workload
        backgroundTasks.append(Task { [weak self] in
            while !Task.isCancelled {
                let due: ContinuousClock.Instant? = switch workload.healthyRunStart() {
                case .running: runningSince + after
                case .since(let start): max(runningSince, start) + after
                case .paused: nil
                }
                if let due, ContinuousClock.now >= due { break }
                try? await Task.sleep(until: due ?? .now + .milliseconds(250), clock: .continuous)
            }
            guard !Task.isCancelled, let self else { return }
            await self.markHealthy()
        })
    }

    private func markHealthy() {
        guard status.phase == .running || status.phase == .draining else { return }
        storage?.appendHealthyRecord(bootId: settings.bootId)
        status.markHealthy()
        logger.info("healthy run recorded", metadata: ["event": "journal.healthy"])
    }

    /// Evaluates custom checks once a second, each bounded by `check_timeout_ms` (spec §4.3).
    private func startCheckTimer() {
        let checks = status.checks
        let status = self.status
        let metrics = self.metrics
        let timeout = Double(config.checkTimeoutMs) / 1000
        let workload = self.workload
        checkTimer = Task {
            // A round every second, and one as soon as readiness turns true, so a registered readiness check does
            // not hold /ready at 503 for up to a second after the processor is ready.
            var lastRound = ContinuousClock.now - .seconds(2)
            var wasReady = false
            while !Task.isCancelled {
                let readyNow = status.phase == .running && status.isReadyFlag
                defer { wasReady = readyNow }
                guard ContinuousClock.now - lastRound >= .seconds(1) || (readyNow && !wasReady) else {
                    try? await Task.sleep(for: .milliseconds(100))
                    continue
                }
                lastRound = ContinuousClock.now
                var kinds: Set<CheckKindKey> = []
                if status.phase != .stopping { kinds.insert(CheckKindKey(.liveness)) }
                let phase = status.phase
                if phase == .running, status.isReadyFlag, !status.prestopArrived, !status.shutdownRequested {
                    kinds.insert(CheckKindKey(.readiness))
                }
                for due in checks.beginRound(kinds: kinds) {
                    Task {
                        let result = await Deadline.run(seconds: timeout, due.check)
                        let failure: String? = switch result {
                        case .value: nil
                        case .failure(let error): "\(error)"
                        case .timedOut: "timed out after \(Int(timeout * 1000))ms"
                        }
                        if failure != nil {
                            metrics.checkFailure(probe: due.kind == .liveness ? "liveness" : "readiness", check: "custom:\(due.name)")
                        }
                        if checks.finish(kind: due.kind, name: due.name, error: failure) {
                            let recoverable = await Deadline.run(seconds: timeout) {
                                await workload.onHealthCheckFailed(CheckFailure(name: due.name, message: failure ?? ""))
                            }
                            if case .value(true) = recoverable { checks.setRecovering(name: due.name, true) }
                        }
                    }
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }
    private var checkTimer: Task<Void, Never>?

    struct CheckFailure: Error, CustomStringConvertible {
        let name: String
        let message: String
        var description: String { "\(name): \(message)" }
    }

    // MARK: - Context hooks

    private nonisolated func makeContextHooks() -> ContextHooks {
        ContextHooks(
            snapshotNow: { [weak self] in
                guard let self else { throw RuntimeNotAttached() }
                return try await self.snapshotNow()
            },
            registerCheck: { [status] kind, name, check in status.checks.register(kind, name, check) }
        )
    }

    private func snapshotNow() async throws -> UInt64 {
        guard let coordinator, status.stateBound else { throw SnapshotNowError(message: "state is not restored yet") }
        let outcome = await coordinator.request(.api, captureTimeoutSec: config.stateCaptureTimeoutSec)
        guard let generation = outcome.generation else { throw SnapshotNowError(message: "\(outcome)") }
        return generation
    }

    struct SnapshotNowError: Error, CustomStringConvertible {
        let message: String
        var description: String { "snapshot failed: \(message)" }
    }

    // MARK: - SIGUSR1, /prestop, /state

    /// SIGUSR1: a `sigusr1` snapshot in running and draining; otherwise counted, logged, ignored (§5.4).
    func snapshotSignal() {
        metrics.signal("SIGUSR1")
        let phase = status.phase
        guard phase == .running || phase == .draining, status.stateBound, let coordinator else {
            logger.info("SIGUSR1 ignored in this phase", metadata: ["event": "signal.ignored", "signal": "SIGUSR1", "phase": .string(phase.description)])
            return
        }
        let timeout = config.stateCaptureTimeoutSec
        Task { _ = await coordinator.request(.sigusr1, captureTimeoutSec: timeout) }
    }

    func otherSignal(_ name: String) {
        metrics.signal(name)
        logger.info("signal received", metadata: ["event": "signal.ignored", "signal": .string(name)])
    }

    /// `/prestop` (§4.4) from the TCP port or the control socket.
    func prestop() async -> PrestopResult {
        if let recorded = prestopRecorded { return recorded }
        if let inFlight = prestopInFlight { return await inFlight.value }
        let task = Task { await self.performPrestop() }
        prestopInFlight = task
        let result = await task.value
        prestopInFlight = nil
        if case .saved = result.outcome { prestopRecorded = result }
        return result
    }

    private func performPrestop() async -> PrestopResult {
        let start = ContinuousClock.now
        status.markPrestop()
        status.setReady(false)
        if status.phase == .running { transition(to: .draining) }
        notifier.status("draining")
        context?.signalMigration()
        let drain = config.prestopDrainSec
        if drain > 0, t0 == nil { await stopEvent.sleep(for: .milliseconds(Int64(drain * 1000))) }
        if t0 != nil, status.stateBound {
            // The shutdown sequence has begun: report its final save.
            let outcome = await awaitFinalSave()
            return PrestopResult(outcome: outcome, drainSec: drain, durationMs: SnapshotCoordinator.ms(since: start))
        }
        guard let coordinator else {
            return PrestopResult(outcome: .skipped(generation: nil), drainSec: drain, durationMs: 0)
        }
        let outcome: SnapshotOutcome
        if status.stateBound {
            let s = config.finalSaveTimeoutSec
            let save = BoundedTask { await coordinator.request(.prestop, captureTimeoutSec: s) }
            save.expire(at: .now + .milliseconds(Int64(s * 1000)))
            switch await save.result() {
            case .value(let o): outcome = o
            case .failure: outcome = .failed(step: "save", message: "cancelled")
            case .timedOut: outcome = .timedOut
            }
        } else {
            outcome = await coordinator.confirmNewest()
        }
        return PrestopResult(outcome: outcome, drainSec: drain, durationMs: SnapshotCoordinator.ms(since: start))
    }

    private func awaitFinalSave() async -> SnapshotOutcome {
        if let finalSave { return finalSave }
        return await withCheckedContinuation { finalSaveWaiters.append($0) }
    }

    /// `GET /state`: one capture at a time, shared by concurrent callers, bounded by the capture timeout.
    func captureForTransfer() async -> Bounded<JSONObject> {
        if let inFlight = stateCapture { return await inFlight.result() }
        let task = BoundedTask { [workload] in try await workload.captureState() }
        task.expire(at: .now + .milliseconds(Int64(config.stateCaptureTimeoutSec * 1000)))
        stateCapture = task
        let result = await task.result()
        stateCapture = nil
        return result
    }

    /// `POST /state` after validation: staged before restore, applied while running (§4.5).
    func receiveTransfer(_ data: JSONObject) async -> TransferResult {
        if let refusal = workload.transferRefusal() { return .refused(refusal) }
        switch status.phase {
        case .draining, .stopping, .stopped, .failed:
            return .shuttingDown
        case .initializing, .backoff, .starting:
            return await stage(data)
        case .restoring:
            if !status.stateBound { await withCheckedContinuation { restoreDone.append($0) } }
            return await receiveTransfer(data)
        case .running:
            if t0 != nil { return .shuttingDown }
            let fields = await workload.validateTransfer(data)
            if !fields.isEmpty { return .invalid(fields) }
            let start = ContinuousClock.now
            let applied = await Deadline.run(seconds: config.stateCaptureTimeoutSec) { [workload] in try await workload.restoreState(data) }
            switch applied {
            case .timedOut:
                logger.error("transfer restore timed out; outcome unknown", metadata: ["event": "transfer.timeout"])
                return .timedOut
            case .failure(let error):
                if let restoreError = error as? StateRestoreError { return .invalid(restoreError.fields) }
                return .rejected("\(error)")
            case .value:
                guard let coordinator else { return .persistFailed("no snapshot store") }
                let outcome = await coordinator.request(.transfer, state: data, captureTimeoutSec: config.stateCaptureTimeoutSec)
                guard case .saved(let generation, _, let raw, _, _) = outcome else { return .persistFailed("\(outcome)") }
                let known = Set(await workload.declaredKeys())
                let ignored = data.keys.filter { !known.contains($0) }.sorted()
                return .applied(generation: generation, sizeBytes: raw, durationMs: SnapshotCoordinator.ms(since: start), ignoredKeys: ignored)
            }
        }
    }

    private func stage(_ data: JSONObject) async -> TransferResult {
        guard let coordinator else { return .persistFailed("snapshot store not ready") }
        let outcome = await coordinator.request(.transfer, state: data, captureTimeoutSec: config.stateCaptureTimeoutSec)
        guard case .saved(let generation, _, let raw, _, _) = outcome else { return .persistFailed("\(outcome)") }
        stagedTransfer = (generation, data)
        return .staged(generation: generation, sizeBytes: raw)
    }
}

/// What `/prestop` answers.
struct PrestopResult: Sendable {
    let outcome: SnapshotOutcome
    let drainSec: Double
    let durationMs: Int
}

/// What `POST /state` answers.
enum TransferResult: Sendable {
    case staged(generation: UInt64, sizeBytes: Int)
    case applied(generation: UInt64, sizeBytes: Int, durationMs: Int, ignoredKeys: [String])
    case invalid([String: String])
    case rejected(String)
    case timedOut
    case persistFailed(String)
    case shuttingDown
    /// The workload refused it (`Workload.transferRefusal`).
    case refused(TransferRefusal)
}

/// Exits the process now: runs the registered cleanups (listeners, so the control socket file is removed), flushes
/// the log, and calls `_exit`.
enum HardExit {
    private static let cleanups = Mutex<[@Sendable () -> Void]>([])

    static func onExit(_ cleanup: @escaping @Sendable () -> Void) {
        cleanups.withLock { $0.append(cleanup) }
    }

    static func now(_ code: Int32) -> Never {
        for cleanup in cleanups.withLock({ $0 }) { cleanup() }
        DoryLogging.flush()
        _exit(code)
    }
}

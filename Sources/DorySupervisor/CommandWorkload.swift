import DoryKit
import DoryState
import Glibc
import Logging
import Synchronization

/// `doryd run -- CMD ARGS…` as a `Workload` (spec/supervise.md §1.1): *start* = spawn and wait for readiness
/// (with in-pod restarts), *run* = supervise the child until it ends for good, *stop* = the stop sequence of §5.1
/// steps 2–4, *capture* = a copy of the slot, *restore* = fill the slot. It plugs into the Supervisor only through
/// the workload extension points (traits, signal hook, probe checks, control-socket routes, end-of-boot hook).
public final class CommandWorkload: Workload, ChildAPIHost {
    public let options: RunOptions
    public let command: [String]
    public let controller: ChildController
    public let slot = StateSlot()
    public let liveness: ChildLiveness
    let events = ChildEvents()
    private let inherited: [String]
    private let waiter = ChildWaiter()
    private let logger = Logger(label: "doryd.child")

    /// How the boot ended, when the child (not doryd) ended it.
    enum Ending: Sendable, Equatable {
        case spawnFailed(code: Int32)
        case onItsOwn(mapped: Int32, status: Int32)
        case notReady
        case budgetSpent(mapped: Int32, status: Int32)
        case notifySocketFailed
    }

    /// Everything that changes, under one lock: the stop flag guards every spawn (§1.2 starting).
    private struct Gate {
        var host: WorkloadHost?
        var api: ChildAPI?
        var stopBegun = false
        /// The signal the stop sequence sends (from the received SIGTERM/SIGINT, or the default).
        var stopSignal: Int32
        var childSpawned = false
        var childRestarts = 0
        var strategy = "fresh"
        var reason = "first_start"
        var resetCaches = false
        var policy: RestartPolicy
        var ending: Ending?
        var bridge: NotifyBridge?
        /// `dory_notify_messages_total` of the notify sockets already closed (one per child), so the counter never
        /// goes back when a child's socket closes.
        var closedBridgeCounts: [String: Int] = [:]
        var currentPID: pid_t = 0
        var spawnedAt = ContinuousClock.now
        var exits: [String: Int] = [:]
        var lastStatus: Int32?
        /// The slot's sequence at the last capture (for `stateDurable`).
        var capturedSequence: UInt64 = 0
        var lastRelayedStatus = ContinuousClock.now - .seconds(2)
        var pendingStatus: String?
        /// The child's `STATUS=` text last relayed (or scheduled), so a text kept before running is relayed once.
        var relayedText: String?
    }
    private let gate: Mutex<Gate>
    private let origin = ContinuousClock.now

    /// - Parameters:
    ///   - inheritedEnvironment: doryd's environment at start (`KEY=VALUE`), see `ChildEnvironment.current()`.
    public init(options: RunOptions, command: [String], inheritedEnvironment: [String]) {
        self.options = options
        self.command = command
        inherited = inheritedEnvironment
        controller = ChildController(events: events)
        liveness = ChildLiveness(mode: options.readyMode, heartbeatTimeoutMillis: options.heartbeatTimeoutMillis, events: events)
        gate = Mutex(Gate(stopSignal: options.stopSignal ?? SIGTERM, policy: RestartPolicy(options: options)))
    }

    private var host: WorkloadHost? { gate.withLock { $0.host } }

    // MARK: Traits and wiring

    public var traits: WorkloadTraits {
        var traits = WorkloadTraits()
        traits.restoresBeforeStartup = true
        traits.ownsStartupDeadline = true
        traits.bindsStateItself = true
        traits.shutdownOverrunSec = 1.5
        return traits
    }

    public func attach(host: WorkloadHost) {
        let api = ChildAPI(
            host: self, slot: slot, liveness: liveness, stateMaxBytes: host.settings.config.stateMaxBytes, events: events
        ) { [weak host] contents in
            guard let host else { return .failed(step: "save", message: "the runtime is gone") }
            switch await host.save(contents.state ?? [:]) {
            case .durable(let generation, let reused): return .durable(generation: generation, reused: reused)
            case .failed(let step, let message): return .failed(step: step, message: message)
            case .timedOut: return .timedOut
            }
        }
        gate.withLock {
            $0.host = host
            $0.api = api
        }
        let stream = events.stream
        Task { [weak self] in
            for await event in stream {
                guard let self else { return }
                await self.handle(event)
            }
        }
    }

    public func controlSocketRoutes() -> WorkloadRoutes? {
        guard let api = gate.withLock({ $0.api }) else { return nil }
        return WorkloadRoutes(handles: { ChildAPI.handles(path: $0) }, handler: api)
    }

    /// Step (e): nothing to construct; sets the subreaper before (j) (§2.4).
    public func prepare(context: ExecutionContext) async throws {
        if let error = ChildController.becomeSubreaper() {
            logger.warning("cannot become a subreaper; orphans leave doryd's tree", metadata: [
                "event": "child.subreaper_unavailable", "errno": "\(error)", "error": "\(String(cString: strerror(error)))",
            ])
        }
    }

    public func receiveRestoreSource(state: JSONObject?, generation: UInt64?) async {
        slot.fill(state: state, generation: generation)
        guard let decision = host?.decision else { return }
        gate.withLock {
            $0.strategy = decision.strategy.rawValue
            $0.reason = decision.reason
            $0.resetCaches = decision.resetsCaches
        }
    }

    // MARK: Events

    private func handle(_ event: ChildEvent) async {
        switch event {
        case .ready(let pid, let mode):
            let since = gate.withLock { $0.currentPID == pid ? ChildController.millis($0.spawnedAt.duration(to: .now)) : nil }
            if let since { logger.info("child ready", metadata: ["pid": "\(pid)", "mode": "\(mode.rawValue)", "ms": "\(since)"]) }
            await waiter.noteReady(pid)
        case .exited(let pid, let status, _):
            if controller.aliveChild == nil { liveness.childEnded() }
            gate.withLock {
                $0.exits[status.how, default: 0] += 1
                $0.lastStatus = status.code
            }
            await waiter.noteExited(pid, status)
        case .statePut:
            host?.markStateBound()
        case .notifyStatus(let text):
            relayStatus(text)
        default:
            break
        }
    }

    /// `STATUS=` from the child becomes doryd's own in running and draining, at most once a second (the latest wins).
    private func relayStatus(_ text: String) {
        guard let host, host.phase == .running || host.phase == .draining else { return }
        let due = gate.withLock { g -> Duration? in
            g.relayedText = text
            let wait = g.lastRelayedStatus + .seconds(1) - ContinuousClock.now
            if wait <= .zero {
                g.lastRelayedStatus = .now
                g.pendingStatus = nil
                return nil
            }
            let scheduled = g.pendingStatus != nil
            g.pendingStatus = text
            return scheduled ? .zero : wait
        }
        guard let due else {
            host.notifyStatus(text)
            return
        }
        guard due > .zero else { return }  // a relay is already scheduled; it sends the latest text
        Task { [weak self] in
            try? await Task.sleep(for: due)
            guard let self, let text = self.gate.withLock({ g -> String? in
                defer { g.pendingStatus = nil; g.lastRelayedStatus = .now }
                return g.pendingStatus
            }) else { return }
            self.host?.notifyStatus(text)
        }
    }

    // MARK: Spawning (§2)

    /// Spawns the next child unless the stop began. Throws `WorkloadEnded` when it cannot (the boot ends).
    private func spawnChild() throws -> pid_t? {
        guard let host else { throw WorkloadEnded(reason: "not attached") }
        let (n, strategy, reason) = gate.withLock { ($0.childRestarts, $0.strategy, $0.reason) }
        var bridge: NotifyBridge?
        if options.readyMode == .notify {
            do {
                bridge = try NotifyBridge(
                    path: host.absoluteProcessorDirectory + "/notify-\(n).sock",
                    abstractName: "dory-notify-\(host.settings.bootId)-\(n)")
            } catch {
                logger.error("notify socket cannot bind", metadata: ["event": "child.notify_bind_failed", "error": "\(error)"])
                gate.withLock { $0.ending = .notifySocketFailed }
                throw WorkloadEnded(reason: "notify socket: \(error)")
            }
        }
        let values = ChildEnvironmentValues(
            controlSocket: host.controlSocketAddress, recoveryStrategy: strategy, recoveryReason: reason,
            attempt: host.decision.restartCount + 1, childRestarts: n, processorID: host.settings.processorId,
            stateDir: host.absoluteStateDirectory, notifySocket: bridge?.address,
            watchdogMicroseconds: options.heartbeatTimeoutMillis > 0 ? options.heartbeatTimeoutMillis * 1000 : nil)
        let request = SpawnRequest(
            command: command, environment: ChildEnvironment.build(inherited: inherited, values: values), workdir: options.workdir)
        if let bridge {
            let controller = self.controller
            bridge.start(liveness: liveness, events: events) { pid, uid in controller.isNotifySenderAccepted(pid: pid, uid: uid) }
        }
        let result = gate.withLock { g -> Result<SpawnedChild?, SpawnFailure> in
            if g.stopBegun { return .success(nil) }
            do throws(SpawnFailure) {
                let child = try controller.spawn(request)
                g.childSpawned = true
                g.currentPID = child.pid
                g.spawnedAt = child.spawnedAt
                g.bridge = bridge
                return .success(child)
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(let child?):
            liveness.childStarted(pid: child.pid)
            return child.pid
        case .success(nil):
            bridge?.close()
            return nil
        case .failure(let failure):
            bridge?.close()
            var metadata: Logger.Metadata = [
                "path": "\(failure.path)", "errno": "\(failure.errno)",
                "error": ["type": "spawn", "message": "\(failure.message)"],
            ]
            if let resolved = failure.resolved { metadata["resolved"] = "\(resolved)" }
            logger.error("cannot execute command", metadata: metadata)
            gate.withLock {
                $0.exits[SpawnFailure.how, default: 0] += 1
                $0.ending = .spawnFailed(code: failure.exitCode)
            }
            throw WorkloadEnded(reason: failure.description)
        }
    }

    private func closeBridge() {
        guard let bridge = gate.withLock({ g -> NotifyBridge? in
            defer { g.bridge = nil }
            return g.bridge
        }) else { return }
        bridge.close()
        let counts = bridge.counters.withLock { $0 }
        gate.withLock { g in g.closedBridgeCounts.merge(counts, uniquingKeysWith: +) }
    }

    // MARK: Lifecycle

    public func startup() async throws {
        guard try spawnChild() != nil else { return }
        try await superviseUntilReady()
    }

    public func run() async throws {
        while true {
            let pid = gate.withLock { $0.currentPID }
            switch await waiter.wait(for: pid, wantReady: false, deadline: nil) {
            case .stop, .ready, .timedOut:
                return
            case .ended(let status):
                guard try await childEnded(mapped: options.successExitCodes.mapped(status.code), status: status.code) else { return }
                try await superviseUntilReady()
            }
        }
    }

    /// Waits until the current child is ready, restarting failed children under the policy. Returns early when the
    /// stop began; throws `WorkloadEnded` when the boot ends.
    private func superviseUntilReady() async throws {
        let timeout = Duration.milliseconds(Int64((host?.settings.config.startupTimeoutSec ?? 30) * 1000))
        while true {
            let (pid, spawnedAt) = gate.withLock { ($0.currentPID, $0.spawnedAt) }
            switch await waiter.wait(for: pid, wantReady: true, deadline: spawnedAt + timeout) {
            case .ready, .stop:
                return
            case .timedOut:
                let b = Duration.milliseconds(Int64((host?.settings.config.shutdownTimeoutSec ?? 10) * 1000))
                let signal = gate.withLock { $0.stopSignal }
                _ = await controller.stop(signal: signal, childOnly: options.signalChildOnly, deadline: .now + b)
                liveness.childEnded()
                closeBridge()
                logger.error("child not ready in time", metadata: [
                    "event": "child.not_ready", "pid": "\(pid)", "startup_timeout_sec": "\(host?.settings.config.startupTimeoutSec ?? 0)",
                ])
                if gate.withLock({ $0.stopBegun }) { return }
                guard try await childEnded(mapped: 3, status: nil) else { return }
            case .ended(let status):
                guard try await childEnded(mapped: options.successExitCodes.mapped(status.code), status: status.code) else { return }
            }
        }
    }

    /// A child ended on its own (or missed its readiness deadline: mapped 3, no status). Restarts it when the policy
    /// says so (returns true with a new child spawned), returns false when the stop began, throws when the boot ends.
    private func childEnded(mapped: Int32, status: Int32?) async throws -> Bool {
        liveness.childEnded()
        if gate.withLock({ $0.stopBegun }) { return false }
        let draining = host?.phase == .draining
        let now = Double(ChildController.millis(origin.duration(to: .now))) / 1000
        let decision = gate.withLock { $0.policy.decide(draining ? .duringStop : .onItsOwn(mappedStatus: mapped), now: now) }
        switch decision {
        case .end:
            let ending: Ending = status == nil ? .notReady : .onItsOwn(mapped: mapped, status: status ?? mapped)
            gate.withLock { $0.ending = ending }
            throw WorkloadEnded(reason: "the child ended")
        case .budgetSpent:
            logger.error("restart budget spent", metadata: [
                "event": "child.restart_budget_spent", "budget": "\(options.restartBudget)", "window_sec": "\(options.restartWindowSeconds)",
            ])
            gate.withLock { $0.ending = status == nil ? .notReady : .budgetSpent(mapped: mapped, status: status ?? mapped) }
            throw WorkloadEnded(reason: "restart budget spent")
        case .restart(let delay, let number, let left):
            logger.warning("child restart", metadata: [
                "event": "child.restart", "status": "\(status ?? 3)", "restart": "\(number)", "delay_sec": "\(delay)", "budget_left": "\(left)",
            ])
            let delayMillis = Int64(delay * 1000)
            liveness.restartPending(inMillis: delayMillis, number: number, of: options.restartBudget)
            // Two generations of the program never overlap: stop what the ended child left behind first.
            let b = Duration.milliseconds(Int64((host?.settings.config.shutdownTimeoutSec ?? 10) * 1000))
            let signal = gate.withLock { $0.stopSignal }
            _ = await controller.stop(signal: signal, childOnly: false, deadline: .now + b)
            closeBridge()
            // Again: the delay counts from here, after the leftovers are gone (the first call covered that wait).
            liveness.restartPending(inMillis: delayMillis, number: number, of: options.restartBudget)
            if case .stop = await waiter.wait(for: 0, wantReady: false, deadline: .now + .milliseconds(delayMillis)) {
                liveness.restartCancelled()
                return false
            }
            gate.withLock {
                $0.childRestarts += 1
                $0.strategy = slot.read().state == nil ? "fresh" : "restore"
                $0.reason = "child_restart"
                $0.resetCaches = false
            }
            return try spawnChild() != nil
        }
    }

    public func stopBegan() {
        gate.withLock { $0.stopBegun = true }
        let waiter = self.waiter
        Task { await waiter.noteStop() }
    }

    public func escalate() { controller.killNow() }

    /// §5.1 steps 2–4: the stop signal to the group (and descendants outside it), wait until T0+B, SIGKILL the rest.
    public func shutdown() async throws {
        let (spawned, signal) = gate.withLock { ($0.childSpawned, $0.stopSignal) }
        if spawned {
            let deadline = host?.shutdownDeadline ?? .now + .seconds(10)
            let report = await controller.stop(signal: signal, childOnly: options.signalChildOnly, deadline: deadline)
            if let status = report.childStatus { gate.withLock { $0.lastStatus = status.code } }
        }
        liveness.childEnded()
        closeBridge()
        slot.beginFinalSave()
    }

    // MARK: Signals (§3)

    public func receivedSignal(_ signal: Int32) -> WorkloadSignalDisposition {
        let stopping = gate.withLock { $0.stopBegun }
        switch SignalAction.forReceived(signal, options: options, stopping: stopping) {
        case .beginStop(let send):
            gate.withLock { if !$0.stopBegun { $0.stopSignal = send } }
            return .runtime
        case .escalate, .ignore:
            return .runtime
        case .forward(let forwarded):
            let outcome = controller.forward(forwarded, childOnly: options.signalChildOnly)
            logger.debug("signal forwarded", metadata: ["signal": "\(SignalNames.name(forwarded))", "outcome": "\(outcome)"])
            return .handled
        case .snapshot(let forwardFirst):
            if forwardFirst { controller.forward(SIGUSR1, childOnly: options.signalChildOnly) }
            return .runtime
        case .reap:
            controller.reap()
            controller.noteSIGCHLD()
            return .handled
        }
    }

    public func supervisorTick() {
        controller.reap()
        controller.noteSIGCHLD()
        // A STATUS= the child sent before running (`STATUS=warming`, then `READY=1`) is relayed once running began.
        if let text = liveness.status, gate.withLock({ $0.relayedText != text }) { relayStatus(text) }
    }

    // MARK: State

    public func captureState() async throws -> JSONObject {
        let contents = slot.read()
        gate.withLock { $0.capturedSequence = contents.sequence }
        return contents.state ?? [:]
    }

    public func stateDurable(generation: UInt64) {
        slot.markDurable(generation: generation, sequence: gate.withLock { $0.capturedSequence })
    }

    /// `GET /state`: `data` is the slot, 503 `not_restored` while it is null (supervise.md §1.3).
    public func hasStateForTransfer() -> Bool? { slot.read().state != nil }

    public func transferRefusal() -> TransferRefusal? {
        guard gate.withLock({ $0.childSpawned }) else { return nil }
        return TransferRefusal(status: 409, code: "child_running", message: "a child is running; doryd cannot apply a state inside it")
    }

    public func restoreState(_ state: JSONObject) async throws { slot.fill(state: state, generation: nil) }
    public func resetCaches() async {}
    public func onStateRestoreFailed(_ error: any Error) async -> Bool { true }
    public func onRapidRestartDetected(crashCount: Int) async -> Bool { true }
    public func onHealthCheckFailed(_ error: any Error) async -> Bool { false }
    public func validateTransfer(_ state: JSONObject) async -> [String: String] { [:] }
    public func declaredKeys() async -> [String] { [] }

    // MARK: Exit status (§4)

    public func endOfBoot(_ facts: BootEndFacts) async -> WorkloadEnd? {
        let (ending, last) = gate.withLock { ($0.ending, $0.lastStatus) }
        let saveFailed = facts.finalSaveDurable == false
        func end(_ code: Int32, clean: Bool, source: EndSource) -> WorkloadEnd {
            WorkloadEnd(code: code, clean: clean, child: ChildEnd(childStatus: last.map(Int.init), source: source))
        }
        switch ending {
        case .spawnFailed(let code):
            return end(code, clean: false, source: .doryd)
        case .notifySocketFailed:
            return end(ExitCode.bindFailed, clean: false, source: .doryd)
        case .notReady:
            return end(ExitCode.startupFailed, clean: false, source: .doryd)
        case .onItsOwn(let mapped, _), .budgetSpent(let mapped, _):
            return end(mapped == 0 && saveFailed ? ExitCode.finalSaveFailed : mapped, clean: false, source: mapped == 0 && saveFailed ? .doryd : .child)
        case nil:
            guard let last else { return nil }  // no child ever ended: the runtime's code
            let mapped = options.successExitCodes.mapped(last)
            if mapped == 0 && saveFailed { return end(ExitCode.finalSaveFailed, clean: false, source: .doryd) }
            if let runtime = facts.runtimeCode, runtime != 0, runtime != ExitCode.finalSaveFailed {
                return end(runtime, clean: false, source: .doryd)
            }
            return end(mapped, clean: facts.stopSignalled && !saveFailed, source: .child)
        }
    }

    /// doryd's own code (no child ended, or the runtime decided): `source` doryd with the last child's status, if any.
    public func childEndWhenDorydDecides() -> ChildEnd? {
        ChildEnd(childStatus: gate.withLock { $0.lastStatus }.map(Int.init), source: .doryd)
    }

    /// The healthy-run timer restarts with every child (§1.2, §8.3): it counts from the current child's spawn and
    /// pauses while no child is up.
    public func healthyRunStart() -> HealthyRunStart {
        guard controller.aliveChild != nil else { return .paused }
        return .since(gate.withLock { $0.spawnedAt })
    }

    // MARK: ChildAPIHost

    public var phase: Phase { host?.phase ?? .initializing }
    public var childSpawned: Bool { gate.withLock { $0.childSpawned } }

    public func recoveryInfo() -> ChildRecoveryInfo {
        let restartCount = host?.decision.restartCount ?? 0
        return gate.withLock {
            ChildRecoveryInfo(strategy: $0.strategy, reason: $0.reason, attempt: restartCount + 1, restartCount: restartCount, childRestarts: $0.childRestarts)
        }
    }

    public func contextValues() -> JSONObject {
        guard let host else { return [:] }
        let settings = host.settings
        let info = recoveryInfo()
        let resetCaches = gate.withLock { $0.resetCaches }
        return [
            "pod_name": .string(settings.identity.podName), "namespace": .string(settings.identity.namespace),
            "pod_uid": settings.identity.podUID.map { .string($0) } ?? .null, "processor_id": .string(settings.processorId),
            "app_name": .string(settings.environment["APP_NAME"].flatMap { $0.isEmpty ? nil : $0 } ?? settings.processorId),
            "boot_id": .string(settings.bootId), "attempt": .int(Int64(info.attempt)), "restart_count": .int(Int64(info.restartCount)),
            "child_restarts": .int(Int64(info.childRestarts)), "strategy": .string(info.strategy), "reason": .string(info.reason),
            "reset_caches": .bool(resetCaches), "state_dir": .string(host.absoluteStateDirectory), "version": .string(settings.version),
        ]
    }

    // MARK: Probes and metrics (§7.4, §10)

    public func probeChecks(_ kind: CheckKind) -> [WorkloadCheck] {
        switch kind {
        case .readiness:
            let check = liveness.readinessCheck(startupTimeoutSeconds: host?.settings.config.startupTimeoutSec ?? 30)
            return [WorkloadCheck(name: "child", passed: check.passed, detail: check.detail)]
        case .liveness:
            let phase = host?.phase
            let info = liveness.livenessInfo()
            let heartbeat = liveness.heartbeatCheck(evaluated: phase == .running || phase == .draining)
            return [
                WorkloadCheck(name: "child", passed: true, detail: info.detail),
                WorkloadCheck(name: "child_heartbeat", passed: heartbeat.passed, detail: heartbeat.detail),
            ]
        }
    }

    public func metricsText() -> String {
        let counters = controller.counters
        let (restarts, exits, last, bridge) = gate.withLock { ($0.childRestarts, $0.exits, $0.lastStatus, $0.bridge) }
        let puts = gate.withLock { $0.api }?.counters.statePuts ?? [:]
        var text = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(String, String)]) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples { text += "\(name)\(labels) \(value)\n" }
        }
        family("dory_child_up", "gauge", "1 while a spawned child has not been reaped.", [("", controller.aliveChild == nil ? "0" : "1")])
        family("dory_child_restarts_total", "counter", "In-pod restarts.", [("", "\(restarts)")])
        family("dory_child_exits_total", "counter", "Ends of children by how they ended.",
               exits.sorted { $0.key < $1.key }.map { ("{how=\"\($0.key)\"}", "\($0.value)") })
        if let last { family("dory_child_last_status", "gauge", "The last child's status before mapping.", [("", "\(last)")]) }
        if let age = liveness.heartbeatAgeSeconds {
            family("dory_child_heartbeat_age_seconds", "gauge", "Seconds since the last heartbeat.", [("", "\(age)")])
        }
        family("dory_signals_forwarded_total", "counter", "Signals sent to the child or its descendants.",
               counters.signalsForwarded.sorted { $0.key < $1.key }.map { ("{signal=\"\($0.key)\"}", "\($0.value)") })
        family("dory_reaped_total", "counter", "Statuses collected by waitpid.",
               [("{kind=\"child\"}", "\(counters.reapedChild)"), ("{kind=\"orphan\"}", "\(counters.reapedOrphan)")])
        family("dory_descendants_killed_total", "counter", "Processes SIGKILLed at the deadline or on escalation.",
               [("", "\(counters.descendantsKilled)")])
        family("dory_state_puts_total", "counter", "PUT /v1/state requests past routing.", puts.sorted { $0.key < $1.key }.map { entry in
            let parts = entry.key.split(separator: "/")
            return ("{mode=\"\(parts.first ?? "")\",result=\"\(parts.last ?? "")\"}", "\(entry.value)")
        })
        let closedCounts = gate.withLock { $0.closedBridgeCounts }
        let notify = (bridge?.counters.withLock { $0 } ?? ["accepted": 0, "rejected": 0, "dropped": 0])
            .merging(closedCounts, uniquingKeysWith: +)
        family("dory_notify_messages_total", "counter", "Datagrams read on the notify socket.",
               notify.sorted { $0.key < $1.key }.map { ("{result=\"\($0.key)\"}", "\($0.value)") })
        return text
    }
}

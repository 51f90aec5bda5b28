import DoryKit
import DoryState
import Logging
import Synchronization

/// Runs one already unwrapped processor event through the pipeline S1–S16 (§4.2) and returns its summary, which
/// it has delivered to the summary targets (§5.2). Never throws. Returns nil only when the invocation was abandoned
/// because the calling task was cancelled (shutdown, §2.4): then nothing is committed, no summary is written, and
/// the event must run again. Calls on one runtime are serialised.
public func runApp<A: Application>(_ app: A, event: JSONValue, context: InvocationRequest,
                                   runtime: EventRuntime) async -> InvocationSummary?
{
    await runtime.gate.acquire()
    defer { runtime.gate.release() }
    return await Pipeline(app: app, runtime: runtime).run(event: event, request: context)
}

/// The outcome being built (§4.3).
enum Outcome: Sendable, Equatable {
    case success
    case skipped(SkipReason)
    case error(EventErrorInfo)

    var isSuccess: Bool { self == .success }
}

/// What the app phase (S6–S13) reports back.
struct AppPhaseResult: Sendable {
    var outcome: Outcome
    /// The invocation was cancelled from outside (shutdown), not by the time limit.
    var abandoned = false
}

/// Shared between the app phase and its timer.
final class DeadlineFlag: Sendable {
    let fired = Atomic<Bool>(false)
}

struct Pipeline<A: Application>: Sendable {
    let app: A
    let runtime: EventRuntime

    static var eventsLogLabel: String { "doryd.events" }

    func run(event: JSONValue, request: InvocationRequest) async -> InvocationSummary? {
        // S1
        let startedAt = runtime.clock()
        let t0 = MonotonicClock.nanos()
        var eventObject: JSONObject = [:]
        if case .object(let o) = event { eventObject = o }
        var op: String?
        if case .string(let s)? = eventObject["op"] { op = s }
        var d: JSONObject?
        if case .object(let o)? = eventObject["d"] { d = o }
        let ctx = InvocationContext(request: request, op: op, scheduleId: d?["schedule_id"],
                                    ingestionId: d?["ingestion_id"], startedAt: startedAt, runtime: runtime)
        OutputCapture.invocationBegan(ctx)
        defer { OutputCapture.invocationEnded(ctx) }
        var log = ctx.eventsLogger
        log.info("invocation started", metadata: [
            "op": op.map(Logger.MetadataValue.string) ?? .json(.null),
            "subscription_id": request.subscriptionId.map(Logger.MetadataValue.string) ?? .json(.null),
        ])
        let baselineThreshold = runtime.logStream.threshold
        var levelsChanged = false

        let phase: AppPhaseResult = await InvocationContext.$current.withValue(ctx) {
            await self.stepsBeforeCommit(ctx: ctx, op: op, d: d, levelsChanged: &levelsChanged)
        }
        var outcome = phase.outcome
        log = ctx.eventsLogger

        // S14, S15
        let setupEntered = ctx.state.withLock { $0.setupEntered }
        if setupEntered {
            await InvocationContext.$current.withValue(ctx) {
                await self.commitTags(ctx: ctx, discard: phase.abandoned || outcome == .skipped(.postSetupFilter),
                                      outcome: &outcome, log: log)
                await self.runClose(ctx: ctx, log: log)
            }
        }

        // S16. Captured output is flushed while this invocation's levels still apply, so its `print` and `stderr`
        // records obey its `log_overrides` whether the reader thread or this flush forwards them (§10.2, §10.3).
        runtime.flushCapturedOutput?()
        if levelsChanged {
            runtime.logStream.setThreshold(baselineThreshold)
            runtime.logStream.setLevelOverrides([:])
        }
        if phase.abandoned {
            ctx.state.withLock { $0.ended = true }
            return nil
        }
        let durationMs = Int64((MonotonicClock.nanos() &- t0) / 1_000_000)
        let deployment = ctx.deployment
        var summary = InvocationSummary(
            appKey: deployment.appKey, appId: deployment.appId, agentId: deployment.agentId.decimal, eventType: op,
            subscriptionId: request.subscriptionId, scheduleId: ctx.scheduleId, ingestionId: ctx.ingestionId,
            startedAt: startedAt, durationMs: max(durationMs, 0), status: .success, skipReason: nil, error: nil,
            requestId: ctx.requestId, functionName: runtime.functionName, functionVersion: runtime.functionVersion,
            invocationId: request.invocationId)
        switch outcome {
        case .success: break
        case .skipped(let reason):
            summary.status = .skipped
            summary.skipReason = reason
        case .error(let info):
            summary.status = .error
            summary.error = info
        }
        let encoded = summary.encoded()
        if log.logLevel <= .info {
            log.info("invocation finished", metadata: ["summary": .rawJSON(encoded)])
        }
        deliver(summary: encoded, ctx: ctx, deployment: deployment, log: log)
        runtime.metrics.invocationFinished(op: op, status: summary.status, skipReason: summary.skipReason,
                                           durationMs: summary.durationMs)
        ctx.state.withLock { $0.ended = true }
        return summary
    }

    // MARK: S2–S13

    private func skip(_ reason: SkipReason, log: Logger) -> AppPhaseResult {
        log.info("event skipped", metadata: ["skip_reason": .string(reason.rawValue)])
        return AppPhaseResult(outcome: .skipped(reason))
    }

    private func fail(_ type: String, _ message: String) -> AppPhaseResult {
        AppPhaseResult(outcome: .error(EventErrorInfo(type: type, message: message)))
    }

    private func stepsBeforeCommit(ctx: InvocationContext, op: String?, d: JSONObject?,
                                   levelsChanged: inout Bool) async -> AppPhaseResult
    {
        let log = ctx.eventsLogger
        // S2
        guard let op else { return fail("InvalidEvent", "op: missing or not a string") }
        // S3
        guard let eventOp = EventOp(rawValue: op) else { return skip(.unknownOp, log: log) }
        // S4
        if eventOp != .onDeployment, !app.implementedHandlers.contains(eventOp) { return skip(.noHandler, log: log) }
        // S5
        guard let d else { return fail("InvalidEvent", "d: missing or not an object") }
        var parsed: ProcessorEvent
        do {
            parsed = try ProcessorEvent.parse(op: eventOp, d: d)
            if case .ingestionEndpoint(var ingestion) = parsed {
                ingestion.payload = try app.parseIngestionPayload(payload: ingestion.rawPayload,
                                                                   contentType: ingestion.contentType)
                parsed = .ingestionEndpoint(ingestion)
            }
        } catch {
            return AppPhaseResult(outcome: .error(EventErrorInfo(describing: error)))
        }
        let event = parsed
        ctx.state.withLock { $0.invokingChannel = event.invokingChannel }

        // S6–S13 under the time limit (§4.4): the app phase runs in its own task (inheriting the task-local
        // context) so the deadline can cancel it without cancelling the caller; a cancelled caller (shutdown)
        // cancels it too. The task starts immediately on this thread: a handler that never suspends runs to its
        // end without a hop to another pool thread (the hop cost about a third of a trivial invocation).
        let limit = runtime.timeoutSeconds
        let flag = limit > 0 ? DeadlineFlag() : nil
        let phase = Task.immediate { () -> (AppPhaseResult, Bool) in
            var changed = false
            let r = await self.appSteps(ctx: ctx, event: event, d: d, deadline: flag, levelsChanged: &changed)
            return (r, changed)
        }
        var token: UInt64?
        if let flag {
            token = runtime.watchdog.arm(seconds: limit) {
                flag.fired.store(true, ordering: .releasing)
                phase.cancel()
            }
        }
        let (result, changed) = await withTaskCancellationHandler {
            await phase.value
        } onCancel: {
            phase.cancel()
        }
        if let token { runtime.watchdog.disarm(token) }
        levelsChanged = changed
        return result
    }

    /// S6–S13. `deadline` is set when a time limit applies; after each app step a fired deadline turns the outcome
    /// into `Timeout` and no further app step starts.
    private func appSteps(ctx: InvocationContext, event: ProcessorEvent, d: JSONObject, deadline: DeadlineFlag?,
                          levelsChanged: inout Bool) async -> AppPhaseResult
    {
        var log = ctx.eventsLogger
        let timeoutMessage = "exceeded \(formatSeconds(runtime.timeoutSeconds)) s"

        /// Runs one app step; nil = go on.
        func appStep(_ name: String, failureLine: String?, _ body: () async throws -> Void) async -> AppPhaseResult? {
            if deadline?.fired.load(ordering: .acquiring) == true { return fail("Timeout", timeoutMessage) }
            if Task.isCancelled, deadline == nil || deadline?.fired.load(ordering: .acquiring) == false {
                return AppPhaseResult(outcome: .success, abandoned: true)
            }
            var thrown: (any Error)?
            do { try await body() } catch { thrown = error }
            if deadline?.fired.load(ordering: .acquiring) == true { return fail("Timeout", timeoutMessage) }
            if Task.isCancelled { return AppPhaseResult(outcome: .success, abandoned: true) }
            if let thrown {
                let info = EventErrorInfo(describing: thrown)
                if let failureLine {
                    log.error("\(failureLine)", metadata: ["error": .errorValue(type: info.type, message: info.message)])
                }
                return AppPhaseResult(outcome: .error(info))
            }
            return nil
        }

        // S6
        var accepted = true
        if let r = await appStep("preHookFilter", failureLine: nil, { accepted = try await app.preHookFilter(event) }) {
            return r
        }
        if !accepted {
            log.info("pre-hook filter rejected event")
            return skip(.preHookFilter, log: log)
        }
        // S7
        var warnings: [String] = []
        let resolved: Deployment
        do throws(EventsConfigError) {
            resolved = try runtime.base.applying(upgrade: d["upgrade"], warnings: &warnings)
        } catch {
            return fail("ConfigError", error.description)
        }
        ctx.resolve(resolved)
        log = ctx.eventsLogger
        for w in warnings { log.warning("\(w)") }
        // S8
        let pc = resolved.processorConfig
        if pc.logLevel != nil || !pc.logOverrides.isEmpty {
            if let level = pc.logLevel { runtime.logStream.setThreshold(level) }
            runtime.logStream.setLevelOverrides(pc.logOverrides)
            levelsChanged = true
        }
        // S9
        if isSelfLoop(event: event, ownKey: resolved.appKey) {
            log.info("self-loop event skipped")
            return skip(.tagValuesSelfLoop, log: log)
        }
        // S10
        let committed = runtime.state.tagValues
        ctx.state.withLock { s in
            s.buffer = TagBuffer(base: committed)
            s.buffer.isOpen = true
            s.setupEntered = true
        }
        // S11
        if let r = await appStep("setup", failureLine: "app setup failed", { try await app.setup() }) { return r }
        // S12
        if let r = await appStep("postSetupFilter", failureLine: nil, {
            accepted = try await app.postSetupFilter(event)
        }) {
            return r
        }
        if !accepted {
            log.info("post-setup filter rejected event")
            return skip(.postSetupFilter, log: log)
        }
        // S13
        if let r = await appStep("handler", failureLine: "handler failed", { try await callHandler(event) }) {
            return r
        }
        return AppPhaseResult(outcome: .success)
    }

    private func callHandler(_ event: ProcessorEvent) async throws {
        switch event {
        case .messageCreate(let e): try await app.onMessageCreate(e)
        case .aggregateUpdate(let e): try await app.onAggregateUpdate(e)
        case .alarmTrigger(let e): try await app.onAlarmTrigger(e)
        case .deployment(let e): try await app.onDeployment(e)
        case .schedule(let e): try await app.onSchedule(e)
        case .ingestionEndpoint(let e): try await app.onIngestionEndpoint(e)
        case .manualInvoke(let e): try await app.onManualInvoke(e)
        }
    }

    /// §8.4: a `tag_values` event whose data has the own app key at the top level (by channel name, any agent).
    private func isSelfLoop(event: ProcessorEvent, ownKey: String) -> Bool {
        let name: String
        let data: JSONValue
        switch event {
        case .messageCreate(let e): (name, data) = (e.channel.name, e.message.data)
        case .aggregateUpdate(let e): (name, data) = (e.channel.name, e.requestData.data)
        case .alarmTrigger(let e): (name, data) = (e.channel.name, e.requestData.data)
        default: return false
        }
        guard name == "tag_values", case .object(let o) = data else { return false }
        return o[ownKey] != nil
    }

    // MARK: S14 tag commit (§7.4)

    private func commitTags(ctx: InvocationContext, discard: Bool, outcome: inout Outcome, log: Logger) async {
        let buffer = ctx.state.withLock { s -> TagBuffer in
            s.buffer.isSealed = true
            return s.buffer
        }
        if discard {
            runtime.metrics.tagCommit("discarded")
            return
        }
        let deployment = ctx.deployment
        let state = runtime.state
        let plan = TagCommitPlan.make(buffer: buffer, committed: state.tagValues, ownApp: deployment.appKey)
        var failure: String?
        if let newMap = plan.newMap {
            do {
                try await runtime.tagWriter.writeTagCommit(newMap) { state.setTagValues(newMap) }
            } catch {
                failure = "tags not saved: \(error)"
                runtime.metrics.tagCommit("failed")
            }
        }
        if failure == nil, let message = plan.message {
            do throws(ChannelWriteError) {
                try state.channels.append(to: ChannelAddress(agentId: deployment.agentId, name: "tag_values"),
                                          authorId: deployment.agentId, timestamp: runtime.clock(),
                                          invocationId: ctx.invocationId, data: .object(message))
            } catch {
                failure = plan.newMap == nil ? "history message failed: \(error.message)"
                    : "tags saved; history message failed: \(error.message)"
                runtime.metrics.tagCommit("failed")
            }
        }
        if let failure {
            let info = EventErrorInfo(type: "TagCommitError", message: failure)
            log.error("tag commit failed", metadata: ["error": .errorValue(type: info.type, message: info.message)])
            if outcome.isSuccess { outcome = .error(info) }
            return
        }
        runtime.metrics.tagCommit(plan.newMap != nil ? "written" : plan.message != nil ? "message_only" : "noop")
    }

    // MARK: S15 close (§4.4: its own 10 s deadline)

    /// Runs `close()` inline. Its 10 s deadline (§4.4) is watched: exceeding it is logged at ERROR once; the call
    /// itself is not cut off (it runs in the caller's task, which at shutdown is already cancelled).
    private func runClose(ctx: InvocationContext, log: Logger) async {
        let limit = runtime.closeTimeoutSeconds
        let token = runtime.watchdog.arm(seconds: limit) {
            log.error("app close failed", metadata: [
                "error": .errorValue(type: "Timeout", message: "close() exceeded \(formatSeconds(limit)) s"),
            ])
        }
        do {
            try await app.close()
        } catch {
            let info = EventErrorInfo(describing: error)
            log.error("app close failed", metadata: ["error": .errorValue(type: info.type, message: info.message)])
        }
        runtime.watchdog.disarm(token)
    }

    // MARK: S16 delivery (§5.2)

    private func deliver(summary: [UInt8], ctx: InvocationContext, deployment: Deployment, log: Logger) {
        for target in deployment.processorConfig.invTargets {
            let name = target.channelName(appId: deployment.appId)
            let agent = target.agentId ?? deployment.agentId
            let address = ChannelAddress(agentId: agent, name: name)
            do {
                try ctx.checkWrite(to: address, data: nil, allow: false)
                try runtime.state.channels.append(to: address, authorId: deployment.agentId, timestamp: runtime.clock(),
                                                  invocationId: ctx.invocationId, encodedData: summary)
            } catch {
                let info = EventErrorInfo(describing: error)
                log.warning("summary delivery failed", metadata: [
                    "agent_id": .string(agent.decimal), "channel": .string(name),
                    "error": .errorValue(type: info.type, message: info.message),
                ])
                runtime.metrics.summaryDeliveryFailed(channel: name)
            }
        }
    }
}

func formatSeconds(_ s: Double) -> String {
    s == s.rounded() ? String(Int64(s)) : String(s)
}

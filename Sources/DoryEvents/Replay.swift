import DoryKit
import DoryState
import Logging

/// The queue worker's steps around `runApp` for a replay (§2.4): the delivered-summary check and the attempt limit.
public enum Replay {
    /// The summary targets an event's summary may have been delivered to: the YAML list, plus the list resolved
    /// with the event's `d.upgrade` when it resolves (S7).
    public static func summaryChannels(for event: JSONObject, runtime: EventRuntime) -> [ChannelAddress] {
        var deployments = [runtime.base]
        if case .object(let d)? = event["d"], let upgrade = d["upgrade"] {
            var warnings: [String] = []
            if let resolved = try? runtime.base.applying(upgrade: upgrade, warnings: &warnings) {
                deployments.append(resolved)
            }
        }
        var out: [ChannelAddress] = []
        for dep in deployments {
            for target in dep.processorConfig.invTargets {
                let address = ChannelAddress(agentId: target.agentId ?? dep.agentId,
                                             name: target.channelName(appId: dep.appId))
                if !out.contains(address) { out.append(address) }
            }
        }
        return out
    }

    /// The summary already delivered for `invocationId`, if any target holds one: a message whose
    /// `invocation_id` equals it and whose `data` is a summary with that id. A channel that cannot be read counts as
    /// holding none (`unreadable` gets a WARNING text).
    public static func deliveredSummary(invocationId: String, event: JSONObject, runtime: EventRuntime,
                                        unreadable: (String) -> Void = { _ in }) -> InvocationSummary?
    {
        for channel in summaryChannels(for: event, runtime: runtime) {
            let messages: [JSONValue]
            do {
                messages = try runtime.state.channels.allMessages(of: channel)
            } catch {
                unreadable("summary channel \(channel.key) unreadable: \(error)")
                continue
            }
            for message in messages.reversed() {
                guard case .object(let m) = message, m["invocation_id"] == .string(invocationId),
                      let data = m["data"], let summary = InvocationSummary(json: data),
                      summary.invocationId == invocationId
                else { continue }
                return summary
            }
        }
        return nil
    }

    /// The summary of a poison event that reached `event_max_attempts` (§2.4): status `error`, `AttemptsExhausted`,
    /// built without running S2–S15, delivered to the YAML targets and counted like any summary.
    public static func finishExhausted(_ queued: QueuedEvent, runtime: EventRuntime) -> InvocationSummary {
        var op: String?
        if case .string(let s)? = queued.event["op"] { op = s }
        var d: JSONObject?
        if case .object(let o)? = queued.event["d"] { d = o }
        let base = runtime.base
        let summary = InvocationSummary(
            appKey: base.appKey, appId: base.appId, agentId: base.agentId.decimal, eventType: op,
            subscriptionId: queued.subscriptionId, scheduleId: d?["schedule_id"], ingestionId: d?["ingestion_id"],
            startedAt: runtime.clock(), durationMs: 0, status: .error, skipReason: nil,
            error: EventErrorInfo(type: "AttemptsExhausted",
                                  message: "event started \(queued.attempts) times without completing"),
            requestId: queued.requestId ?? queued.invocationId, functionName: runtime.functionName,
            functionVersion: runtime.functionVersion, invocationId: queued.invocationId)
        let encoded = summary.encoded()
        let log = DoryEventsLog.logger(runtime: runtime, summary: summary)
        log.info("invocation finished", metadata: ["summary": .json(summary.json)])
        for target in base.processorConfig.invTargets {
            let name = target.channelName(appId: base.appId)
            let agent = target.agentId ?? base.agentId
            do {
                try runtime.state.channels.append(to: ChannelAddress(agentId: agent, name: name), authorId: base.agentId,
                                                  timestamp: runtime.clock(), invocationId: queued.invocationId,
                                                  encodedData: encoded)
            } catch {
                log.warning("summary delivery failed", metadata: [
                    "agent_id": .string(agent.decimal), "channel": .string(name),
                    "error": .errorValue(type: "ChannelWriteError", message: error.message),
                ])
                runtime.metrics.summaryDeliveryFailed(channel: name)
            }
        }
        runtime.metrics.invocationFinished(op: op, status: .error, skipReason: nil, durationMs: 0)
        runtime.metrics.replay("exhausted")
        return summary
    }
}

enum DoryEventsLog {
    static func logger(runtime: EventRuntime, summary: InvocationSummary) -> Logger {
        let metadata: Logger.Metadata = [
            "requestId": .string(summary.requestId ?? summary.invocationId),
            "invocation_id": .string(summary.invocationId), "app_id": .string(summary.appId ?? ""),
        ]
        let stream = runtime.logStream
        return Logger(label: "doryd.events") { label in
            DoryLogHandler(label: label, stream: stream, contextMetadata: metadata)
        }
    }
}

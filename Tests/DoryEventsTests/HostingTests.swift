import DoryHTTP
@testable import DoryKit
import DoryState
import Synchronization
import Testing
@testable import DoryEvents

private let hot = #"{"op": "on_message_create", "d": {"channel": {"agent_id": "1", "name": "sensor"}, "data": {"temp": 50}}}"#
private func message(_ temp: Int) -> String {
    #"{"op": "on_message_create", "d": {"channel": {"agent_id": "1", "name": "sensor"}, "data": {"temp": \#(temp)}}}"#
}

private func sns(_ events: [String]) -> String {
    let records = events.map { e -> String in
        let escaped = e.replacingOccurrences("\"", "\\\"")
        return #"{"EventSource": "aws:sns", "EventSubscriptionArn": "arn:sub", "Sns": {"Message": "\#(escaped)"}}"#
    }
    return #"{"Records": [\#(records.joined(separator: ","))]}"#
}

extension String {
    func replacingOccurrences(_ a: Character, _ b: String) -> String {
        var out = ""
        for ch in self { if ch == a { out += b } else { out.append(ch) } }
        return out
    }
}

@Suite(.serialized) struct HostingTests {
    /// §2.2 rows 1–10 over real HTTP, with the worker not running (so accepted events stay queued).
    @Test func intakeAnswersEveryCheck() async throws {
        let dir = try tempDir()
        let workload = makeWorkload(dir.path, queueMax: 3, maxBytes: 1024)
        let phase = Mutex<Phase>(.starting)
        let server = try RouteServer(EventRoutes(workload: workload, controlToken: controlToken,
                                                 phase: { phase.withLock { $0 } }))

        // Not started, phase starting → 503 not_ready (after method and token).
        var r = try await server.request("/v1/events", method: "GET")
        #expect(r.status == 405)
        #expect(r.headers["Allow"] == "POST")
        r = try await server.request("/v1/events", body: hot, token: nil)
        #expect(r.status == 401)
        #expect(r.object["error"] == "missing_authorization")
        #expect(r.headers["WWW-Authenticate"] == "Bearer")
        r = try await server.request("/v1/events", body: hot, token: "wrong-token-wrong")
        #expect(r.status == 401)
        #expect(r.object["error"] == "invalid_token")
        r = try await server.request("/v1/events", body: hot, token: nil, headers: ["Authorization": "Basic abc"])
        #expect(r.object["error"] == "invalid_authorization_format")
        r = try await server.request("/v1/events", body: hot)
        #expect(r.status == 503)
        #expect(r.object["error"] == "not_ready")
        #expect(r.headers["Retry-After"] == "1")

        try await workload.startup()
        phase.withLock { $0 = .running }
        r = try await server.request("/v1/events", body: String(repeating: " ", count: 1025) + hot)
        #expect(r.status == 413)
        #expect(r.object["error"] == "event_too_large")
        #expect(r.object["max_bytes"] == .int(1024))
        #expect(r.object["size_bytes"] == .int(Int64(1025 + hot.utf8.count)))
        r = try await server.request("/v1/events", body: hot, headers: ["Content-Type": "text/plain"])
        #expect(r.status == 415)
        #expect(r.object["error"] == "unsupported_media_type")
        r = try await server.request("/v1/events", body: "{nope")
        #expect(r.status == 400)
        #expect(r.object["error"] == "invalid_json")
        r = try await server.request("/v1/events", body: "[1]")
        #expect(r.object["error"] == "not_an_object")
        r = try await server.request("/v1/events", body: #"{"Records": "x"}"#)
        #expect(r.object["error"] == "invalid_envelope")
        #expect(r.object["message"] == "Records must be an array")
        r = try await server.request("/v1/events", body: #"{"Records": [{"eventSource": "aws:sqs"}]}"#)
        #expect(r.object["message"] == "unsupported event source")
        #expect(r.object["record"] == .int(0))

        // Accepted: pass-through (parameters on the media type allowed) and SNS.
        r = try await server.request("/v1/events", body: hot, headers: ["Content-Type": "application/JSON; charset=utf-8"])
        #expect(r.status == 202)
        guard case .string(let id)? = r.object["invocation_id"] else {
            Issue.record("no invocation_id: \(r.text)")
            return
        }
        #expect(id.count == 36)
        r = try await server.request("/v1/events", body: sns([message(1), message(2)]))
        #expect(r.status == 202)
        guard case .array(let ids)? = r.object["invocation_ids"] else {
            Issue.record("no invocation_ids: \(r.text)")
            return
        }
        #expect(ids.count == 2)
        let pending = workload.queue!.pending
        #expect(pending.map(\.invocationId) == [id] + ids.compactMap { if case .string(let s) = $0 { s } else { nil } })
        #expect(pending[1].subscriptionId == "arn:sub")

        // Three pending = event_queue_max → 429.
        r = try await server.request("/v1/events", body: hot)
        #expect(r.status == 429)
        #expect(r.object["error"] == "queue_full")
        #expect(r.headers["Retry-After"] == "1")

        // Stopping → 503 shutting_down.
        phase.withLock { $0 = .stopping }
        r = try await server.request("/v1/events", body: hot)
        #expect(r.status == 503)
        #expect(r.object["error"] == "shutting_down")
        #expect(r.headers["Retry-After"] == "5")

        let m = workload.metrics
        #expect(m.value("accepted_total", "http") == 3)
        #expect(m.value("rejected_total", "unauthorized") == 3)
        #expect(m.value("rejected_total", "bad_request") == 4)
        #expect(m.value("rejected_total", "too_large") == 1)
        #expect(m.value("rejected_total", "unsupported_media_type") == 1)
        #expect(m.value("rejected_total", "queue_full") == 1)
        #expect(m.value("rejected_total", "not_ready") == 1)
        #expect(m.value("rejected_total", "shutting_down") == 1)
        #expect(workload.metricsText().contains("dory_event_queue_depth 3\n"))
        try await workload.shutdown()
    }

    @Test func noControlTokenDisablesTheRoutes() async throws {
        let dir = try tempDir()
        let workload = makeWorkload(dir.path)
        try await workload.startup()
        let server = try RouteServer(EventRoutes(workload: workload, controlToken: nil))
        var r = try await server.request("/v1/events", body: hot)
        #expect(r.status == 403)
        #expect(r.object["error"] == "events_disabled")
        #expect(r.object["message"] == "set DORY_CONTROL_TOKEN to enable /v1/events")
        r = try await server.request("/v1/channels/sensor/messages", method: "GET")
        #expect(r.status == 403)
        #expect(workload.metrics.value("rejected_total", "disabled") == 1)
        try await workload.shutdown()
    }

    /// `?wait=true`: 200 with the summary (pass-through) or the array of summaries (SNS); `X-Request-Id` carried.
    @Test func waitAnswersWithTheSummary() async throws {
        let dir = try tempDir()
        let running = try await RunningWorkload(makeWorkload(dir.path))
        let server = try RouteServer(EventRoutes(workload: running.workload, controlToken: controlToken))
        var r = try await server.request("/v1/events?wait=true", body: hot, headers: ["X-Request-Id": "req-1"])
        #expect(r.status == 200)
        #expect(r.object["status"] == "success")
        #expect(r.object["event_type"] == "on_message_create")
        #expect(r.object["requestId"] == "req-1")
        #expect(r.object["app_id"] == "42")
        r = try await server.request("/v1/events?wait=1&timeout=10", body: sns([message(10), #"{"d": {}}"#]))
        #expect(r.status == 200)
        guard case .array(let list)? = r.json else {
            Issue.record("not an array: \(r.text)")
            return
        }
        #expect(list.map { $0["status"] } == [.string("success"), .string("error")])
        #expect(list.map { $0["subscription_id"] } == [.string("arn:sub"), .string("arn:sub")])
        // The example's tag commit went through the injected snapshot writer.
        #expect(running.workload.state?.tagValues["my_app"]?["alert"] == .bool(false))
        try await running.stop()
    }

    /// The worker runs queued events one at a time in queue order; each summary lands in `dv-proc-inv-42`, tag
    /// commits become generations, and `captureState` carries the committed map.
    @Test func workerProcessesInOrder() async throws {
        let dir = try tempDir()
        let generations = GenerationLog()
        let workload = makeWorkload(dir.path, generations: generations)
        try await workload.startup()
        let temps = [50, 10, 60, 20, 70]
        var ids: [String] = []
        for t in temps {
            guard case .accepted(let got) = await workload.queue!.enqueue([
                NewQueuedEvent(source: .http, event: json(message(t)).objectValue!),
            ]) else {
                Issue.record("not accepted")
                return
            }
            ids += got
        }
        let task = Task { try? await workload.run() }
        #expect(await eventually { deliveredSummaries(workload).count == temps.count })
        let summaries = deliveredSummaries(workload)
        #expect(summaries.map { $0["invocation_id"] } == ids.map(JSONValue.string))
        #expect(summaries.allSatisfy { $0["status"] == "success" })
        // alert flips on every event: five commits, each its own generation.
        #expect(generations.all.count == 5)
        let last = try await workload.captureState()
        #expect(last["tag_values"] == json(#"{"my_app": {"alert": true}}"#))
        #expect(await eventually { workload.queue!.pendingCount == 0 })
        workload.beginStopping()
        try await workload.shutdown()
        await task.value
    }

    /// Close and reopen over the same directory: an acknowledged but unprocessed event runs after the reopen; a
    /// processed one does not run twice; a started one reruns; one out of attempts finishes as AttemptsExhausted.
    @Test func restartReplaysOnlyWhatIsNotDone() async throws {
        let dir = try tempDir()
        // Boot 1: process one event, then accept one more while stopping the worker first.
        let first = try await RunningWorkload(makeWorkload(dir.path))
        let server = try RouteServer(EventRoutes(workload: first.workload, controlToken: controlToken))
        let r1 = try await server.request("/v1/events?wait=true", body: message(50))
        #expect(r1.object["status"] == "success")
        try await first.stop()
        // Accepted after the worker stopped: durable, not processed.
        try await acceptWithoutProcessing(dir.path)
        // Boot 2: the new event is processed, the first is not processed again.
        let logs = LogCapture()
        let second = try await RunningWorkload(makeWorkload(dir.path, logs: logs))
        #expect(await eventually { deliveredSummaries(second.workload).count == 2 })
        let summaries = deliveredSummaries(second.workload)
        #expect(summaries[0]["invocation_id"] == r1.object["invocation_id"])
        #expect(summaries[1]["event_type"] == "on_manual_invoke")
        #expect(await eventually { second.workload.queue!.pendingCount == 0 })
        try await second.stop()
        #expect(logs.messages("invocation finished").count == 1)

        // Boot 3: nothing pending; nothing runs.
        let third = try await RunningWorkload(makeWorkload(dir.path))
        #expect(third.workload.queue!.pendingCount == 0)
        try await third.stop()
        #expect(deliveredSummaries(third.workload).count == 2)
    }

    /// An event whose `start` is durable but whose `done` is not: a rerun, and past `event_max_attempts` an
    /// `AttemptsExhausted` summary without running.
    @Test func startedEventsRerunThenExhaust() async throws {
        let dir = try tempDir()
        let setup = try await RunningWorkload(makeWorkload(dir.path))
        try await setup.stop()
        // Simulate crashes: enqueue and mark started directly in the queue file (no done).
        let queue = try EventQueue(directory: dir.path + "/proc/events")
        guard case .accepted(let ids) = await queue.enqueue([
            NewQueuedEvent(source: .http, event: json(message(50)).objectValue!),
            NewQueuedEvent(source: .http, event: json(message(60)).objectValue!),
        ]) else {
            Issue.record("not accepted")
            return
        }
        #expect(await queue.markStarted(ids[0]))
        for _ in 0..<2 { #expect(await queue.markStarted(ids[1])) }
        queue.close()

        let workload = makeWorkload(dir.path, maxAttempts: 2)
        let running = try await RunningWorkload(workload)
        #expect(await eventually { deliveredSummaries(workload).count == 2 })
        let summaries = deliveredSummaries(workload)
        #expect(summaries[0]["invocation_id"] == .string(ids[0]))
        #expect(summaries[0]["status"] == "success")
        #expect(summaries[1]["invocation_id"] == .string(ids[1]))
        #expect(summaries[1]["status"] == "error")
        #expect(summaries[1]["error"]?["type"] == "AttemptsExhausted")
        #expect(workload.metrics.value("replays_total", "rerun") == 1)
        #expect(workload.metrics.value("replays_total", "exhausted") == 1)
        try await running.stop()
    }

    /// A `rate` schedule fires into the queue and the worker runs `on_schedule` (the example sets `last_poll`). Part of
    /// §13 C112 (timing: `ScheduleFireTests.c112_…`).
    @Test func rateScheduleFires() async throws {
        let dir = try tempDir()
        // "every 1s" scaled to 20 ms.
        let workload = makeWorkload(dir.path, schedules: #"[{"id": "poll", "rate": "every 1s"}]"#, rateScale: 0.02)
        let running = try await RunningWorkload(workload)
        #expect(await eventually { deliveredSummaries(workload).contains { $0["event_type"] == "on_schedule" } })
        let summary = deliveredSummaries(workload).first { $0["event_type"] == "on_schedule" }!
        #expect(summary["schedule_id"] == "poll")
        #expect(summary["status"] == "success")
        #expect(summary["requestId"] == summary["invocation_id"])
        #expect(workload.state?.tagValues["my_app"]?["last_poll"] != nil)
        #expect(workload.metrics.value("schedule_fires_total", "poll|queued") >= 1)
        #expect(workload.metrics.value("accepted_total", "schedule") >= 1)
        try await running.stop()
        // Stopped: no further fire is queued.
        let fired = workload.metrics.value("schedule_fires_total", "poll|queued")
        let pendingAfterStop = workload.queue!.pendingCount
        #expect(workload.metrics.value("schedule_fires_total", "poll|queued") == fired)
        #expect(workload.queue!.pendingCount == pendingAfterStop)
    }

    /// Coalescing (§2.5): while a fire waits unstarted, later fires of the same schedule are dropped. §13 C114 (exactly
    /// +1 per fire: `ScheduleFireTests.c114_…`).
    @Test func unstartedFiresCoalesce() async throws {
        let dir = try tempDir()
        let workload = makeWorkload(dir.path, schedules: #"[{"id": "poll", "rate": "every 1s"}]"#, rateScale: 0.005)
        try await workload.startup()  // no worker: the first fire stays queued
        #expect(await eventually { workload.metrics.value("schedule_fires_total", "poll|coalesced") >= 2 })
        #expect(workload.metrics.value("schedule_fires_total", "poll|queued") == 1)
        #expect(workload.queue!.pendingCount == 1)
        #expect(workload.metricsText().contains(#"dory_event_schedule_fires_total{schedule_id="poll",outcome="dropped"} 0"#))
        try await workload.shutdown()
    }

    /// Under the runtime: `run()` ends when the context's shutdown is requested; `custom:event_queue` is registered.
    @Test func runEndsWhenTheContextRequestsShutdown() async throws {
        let dir = try tempDir()
        let checks = Mutex<[String]>([])
        let context = ExecutionContext(
            identity: PodIdentity(environment: [:]), processorId: "proc", bootId: "boot", environment: [:],
            hooks: ContextHooks(snapshotNow: { 0 }, registerCheck: { kind, name, _ in
                if kind == .readiness { checks.withLock { $0.append(name) } }
            }))
        let workload = makeWorkload(dir.path)
        try await workload.prepare(context: context)
        #expect(checks.withLock { $0 } == ["event_queue"])
        let running = try await RunningWorkload(workload)
        let server = try RouteServer(EventRoutes(workload: workload, controlToken: controlToken))
        #expect(try await server.request("/v1/events?wait=true", body: hot).status == 200)
        context.requestShutdown()
        await running.task.value
        #expect(workload.intakeState == .stopping)
        #expect(try await server.request("/v1/events", body: hot).object["error"] == "shutting_down")
        try await workload.shutdown()
    }

    /// `GET /v1/channels/{name}/messages|aggregate` (§8.6); parts of §13 C85 and C97 (in full through the binary:
    /// `EventsTests.Host.c85_c97_c143_…`).
    @Test func channelReadRoutes() async throws {
        let dir = try tempDir()
        let running = try await RunningWorkload(makeWorkload(dir.path))
        let server = try RouteServer(EventRoutes(workload: running.workload, controlToken: controlToken))
        for t in [50, 60] { _ = try await server.request("/v1/events?wait=true", body: message(t)) }
        var r = try await server.request("/v1/channels/notifications/messages", method: "GET")
        #expect(r.status == 200)
        #expect(r.object["channel"] == json(#"{"agent_id": "1", "name": "notifications"}"#))
        guard case .array(let all)? = r.object["messages"] else {
            Issue.record("no messages: \(r.text)")
            return
        }
        #expect(all.count == 2)
        r = try await server.request("/v1/channels/dv-proc-inv-42/messages?limit=1", method: "GET")
        guard case .array(let one)? = r.object["messages"], one.count == 1 else {
            Issue.record("expected one message: \(r.text)")
            return
        }
        #expect(one[0]["id"] == "2")
        r = try await server.request("/v1/channels/never/messages?agent_id=7", method: "GET")
        #expect(r.object["messages"] == .array([]))
        #expect(r.object["channel"] == json(#"{"agent_id": "7", "name": "never"}"#))
        r = try await server.request("/v1/channels/-bad/messages", method: "GET")
        #expect(r.status == 400)
        #expect(r.object["error"] == "invalid_channel_name")
        r = try await server.request("/v1/channels/sensor/messages?limit=0", method: "GET")
        #expect(r.object["error"] == "invalid_limit")
        r = try await server.request("/v1/channels/tag_values/aggregate", method: "GET")
        #expect(r.status == 200)
        #expect(r.object["data"] == json(#"{"my_app": {"alert": true}}"#))
        r = try await server.request("/v1/channels/state/aggregate", method: "GET")
        #expect(r.object["data"] == .object([:]))
        #expect(r.object["last_updated"] == .null)
        r = try await server.request("/v1/channels/state/aggregate", method: "HEAD")
        #expect(r.status == 200)
        r = try await server.request("/v1/channels/state/aggregate", method: "POST")
        #expect(r.status == 405)
        r = try await server.request("/v1/channels/state/aggregate", method: "GET", token: nil)
        #expect(r.status == 401)
        try await running.stop()
    }

    /// `POST /state` path: validation names the member; a restore applies between invocations and captures see it.
    @Test func stateTransferValidatesAndRestores() async throws {
        let dir = try tempDir()
        let running = try await RunningWorkload(makeWorkload(dir.path))
        let w = running.workload
        #expect(await w.validateTransfer(json(#"{"tag_values": []}"#).objectValue!)["tag_values"] != nil)
        #expect(await w.validateTransfer(json(#"{"tag_values": {"a": {"k": 1}}}"#).objectValue!).isEmpty)
        #expect(await w.declaredKeys() == ["tag_values", "aggregates", "channels"])
        try await w.restoreState(json(#"{"tag_values": {"my_app": {"temp": 1}}, "channels": {"1/dv-proc-inv-42": "10"}}"#).objectValue!)
        let captured = try await w.captureState()
        #expect(captured["tag_values"] == json(#"{"my_app": {"temp": 1}}"#))
        let server = try RouteServer(EventRoutes(workload: w, controlToken: controlToken))
        _ = try await server.request("/v1/events?wait=true", body: message(1))
        let ids = try w.state!.channels.allMessages(of: ChannelAddress(agentId: IDValue(1), name: "dv-proc-inv-42"))
        #expect(ids.last?["id"] == "11")
        try await running.stop()
    }

    /// A `?wait=true` caller still waiting when the workload shuts down gets 202 with its id.
    @Test func waitersGetAcceptedAtShutdown() async throws {
        let dir = try tempDir()
        let workload = makeWorkload(dir.path)
        try await workload.startup()  // no worker: the event stays queued
        let server = try RouteServer(EventRoutes(workload: workload, controlToken: controlToken))
        let pending = Task { try await server.request("/v1/events?wait=true", body: hot) }
        #expect(await eventually { workload.queue!.pendingCount == 1 })
        workload.beginStopping()
        try await workload.shutdown()
        let r = try await pending.value
        #expect(r.status == 202)
        #expect(r.object["invocation_id"] != nil)
    }

    /// `doryd invoke`: one compact summary line per record, exit 0/1/2; tag commits go through `persist`.
    @Test func invokeRunsEachRecord() async throws {
        let dir = try tempDir()
        let generations = GenerationLog()
        let logs = LogCapture()
        let stream = LogStream(output: .capture({ logs.add($0) }), threshold: .info)
        let invoke = EventInvoke(settings: hostSettings(dir.path), initialState: json(#"{"tag_values": {"my_app": {"alert": false}}}"#).objectValue!,
                                 persist: generations.persist, logStream: stream)
        let file = dir.path + "/body.json"
        try SystemFileSystem().writeWhole(file, sns([message(50), message(10)]))
        let (out, code) = await invoke.run(file: file)
        #expect(code == 0)
        let lines = out.split(separator: "\n").map { json(String($0)) }
        #expect(lines.count == 2)
        #expect(lines.map { $0["status"] } == [.string("success"), .string("success")])
        #expect(lines[0]["subscription_id"] == "arn:sub")
        #expect(lines[0]["invocation_id"] != lines[1]["invocation_id"])
        #expect(lines[0]["requestId"] == lines[0]["invocation_id"])
        #expect(!out.contains("\n\n") && !out.hasSuffix("\n"))
        // alert false → true → false: two commits, each a generation with the full state.
        #expect(generations.all.count == 2)
        #expect(generations.all[0]["tag_values"] == json(#"{"my_app": {"alert": true}}"#))
        // Summaries delivered to the daemon's channels.
        let summaries = try FileChannelBackend(root: dir.path + "/proc/events/channels")
            .lines(of: ChannelAddress(agentId: IDValue(1), name: "dv-proc-inv-42"))
        #expect(summaries.count == 2)

        let error = await invoke.run(body: Array(#"{"d": {}}"#.utf8))
        #expect(error.exitCode == 1)
        #expect(error.summaries.count == 1)
        let rejected = await invoke.run(body: Array(#"{"Records": []}"#.utf8))
        #expect(rejected.exitCode == 2)
        #expect(rejected.summaries.isEmpty)
        #expect(rejected.error?.contains("empty Records") == true)
        let missing = await invoke.runDetailed(file: dir.path + "/missing.json")
        #expect(missing.exitCode == 2)
        #expect(missing.error?.contains("missing.json") == true)
    }
}

/// A started workload (no worker) that accepts one manual-invoke event over HTTP and is closed again: the event is
/// durable but not processed.
private func acceptWithoutProcessing(_ dir: String) async throws {
    let workload = makeWorkload(dir)
    try await workload.startup()
    let server = try RouteServer(EventRoutes(workload: workload, controlToken: controlToken))
    let r = try await server.request("/v1/events", body: #"{"op": "on_manual_invoke", "d": {"payload": {"n": 1}}}"#)
    #expect(r.status == 202)
    try await workload.shutdown()
}

extension SystemFileSystem {
    func writeWhole(_ path: String, _ text: String) throws {
        try AtomicFile.write(Array(text.utf8), to: path, fileSystem: self)
    }
}

import DoryHTTP
import DoryState
import Glibc
import Testing

/// §13 cases about the event workload as the runtime hosts it: `?wait` time-outs, the queue and invocation metrics,
/// the channel read routes, the HTTP route labels, schedules in the real binary, and the intake across the draining and
/// stopping phases (spec/event-pipeline.md §2.2, §2.5, §8.6, §11; dory-runtime.md §2, §4.4, §4.5, §5.2).
extension EventsTests {
    @Suite struct Host {
        typealias Output = EventsTests.Output

        /// The runtime's error shape: string members `error` and `message` (runtime §4.1, §2.2 here).
        static func expectErrorShape(_ response: HTTPClient.Response, _ code: String? = nil,
                                     sourceLocation: SourceLocation = #_sourceLocation)
        {
            let body = JSON.object(response.body)
            #expect(body?["error"]?.string != nil && body?["message"]?.string != nil,
                    "not an error body: \(response.status) \(response.text)", sourceLocation: sourceLocation)
            if let code {
                #expect(body?["error"]?.string == code, "\(response.status) \(response.text)", sourceLocation: sourceLocation)
            }
        }

        static func gauge(_ daemon: Daemon, _ name: String) -> Double? { try? daemon.metrics().value(name) }

        /// C122, C124, C17 with the Full fixture (its handlers sleep as the payload says).
        @Test func c122_c124_c17_invocationMetricsQueueGaugesAndWaitTimeout() throws {
            try withSandbox { sandbox in
                sandbox.write("a.yaml", Output.yaml())
                let daemon = try Output.launchFull(sandbox)
                try daemon.waitReady()

                // C122: after one on_manual_invoke success, its counter is 1 and its duration histogram counted once.
                _ = try Output.invoke(daemon, Output.manual(#"{"run": true}"#))
                let m = try daemon.metrics()
                #expect(m.value("dory_event_invocations_total", ["op": "on_manual_invoke", "status": "success"]) == 1)
                #expect(m.value("dory_event_invocations_total", ["op": "on_manual_invoke", "status": "error"]) == 0)
                #expect(m.value("dory_event_invocation_duration_seconds_count", ["op": "on_manual_invoke"]) == 1)
                #expect(m.value("dory_event_invocation_duration_seconds_bucket", ["op": "on_manual_invoke", "le": "+Inf"]) == 1)
                #expect(m.value("dory_event_invocation_duration_seconds_count", ["op": "on_schedule"]) == 0)

                // C124: empty queue → depth 0, oldest age 0.
                #expect(Poll.until(timeout: .seconds(5)) { Self.gauge(daemon, "dory_event_queue_depth") == 0 })
                #expect(Self.gauge(daemon, "dory_event_queue_oldest_age_seconds") == 0)
                // A blocks the worker (running), B waits (queued): depth counts both.
                let a = try daemon.postEvent(Output.manual(#"{"sleep_ms": 4000}"#))
                let aId = try #require(JSON.object(a.body)?["invocation_id"]?.string, "\(a.text)")
                _ = try #require(daemon.waitForLog {
                    $0["msg"]?.string == "fixture handler" && $0["invocation_id"]?.string == aId
                }, "A never started:\n\(daemon.logTail)")
                #expect(Self.gauge(daemon, "dory_event_queue_depth") == 1, "the running event is pending")
                let b = try daemon.postEvent(Output.manual("{}"))
                let bId = try #require(JSON.object(b.body)?["invocation_id"]?.string, "\(b.text)")
                #expect(Self.gauge(daemon, "dory_event_queue_depth") == 2)
                // The oldest age grows while A blocks.
                let firstAge = try #require(Self.gauge(daemon, "dory_event_queue_oldest_age_seconds"))
                #expect(firstAge >= 0)
                let grew = Poll.until(timeout: .seconds(3)) {
                    (Self.gauge(daemon, "dory_event_queue_oldest_age_seconds") ?? 0) >= firstAge + 0.5
                }
                let aFinished = daemon.records.contains { Output.finished($0, aId) }
                #expect(grew && !aFinished, "age did not grow while A blocked (first \(firstAge))")
                // Both done → 0 and 0 again.
                #expect(daemon.waitForSummaries([aId, bId]) != nil, "\(daemon.logTail)")
                #expect(Poll.until(timeout: .seconds(5)) {
                    Self.gauge(daemon, "dory_event_queue_depth") == 0
                        && Self.gauge(daemon, "dory_event_queue_oldest_age_seconds") == 0
                }, "queue gauges not back to 0")

                // C17: `?wait=true&timeout=1` while the handler sleeps 3 s → 202 with the id after about 1 s; the
                // summary is delivered later.
                let start = Poll.now()
                let waited = try daemon.postEvent(Output.manual(#"{"sleep_ms": 3000}"#), query: "?wait=true&timeout=1",
                                                  timeout: .seconds(20))
                let elapsed = Poll.seconds(since: start)
                #expect(waited.status == 202, "\(waited.status) \(waited.text)")
                let body = JSON.object(waited.body)
                let id = try #require(body?["invocation_id"]?.string, "\(waited.text)")
                #expect(body?.count == 1, "a 202 body is just the id: \(waited.text)")
                #expect(elapsed >= 0.9 && elapsed < 2.9, "answered after \(elapsed) s")
                #expect(!daemon.records.contains { Output.finished($0, id) }, "finished before the 202")
                let all = try #require(daemon.waitForSummaries([id]), "no summary for \(id):\n\(daemon.logTail)")
                let summary = all.first { $0["invocation_id"]?.string == id }
                #expect(summary?["status"]?.string == "success" && (summary?["duration_ms"]?.int ?? 0) >= 2900, "\(summary ?? [:])")
                #expect(try daemon.stop().code == 0)
            }
        }

        /// C142: during draining (after /prestop) POST /v1/events → 202 and the event runs, while POST /state → 409;
        /// during stopping (SIGTERM while a handler sleeps 3 s) POST /v1/events → 503 `shutting_down` with
        /// `Retry-After: 5` while POST /state → 409 `shutting_down` without `Retry-After`. Every error answer has string
        /// `error` and `message`.
        @Test func c142_intakeAcceptsWhileDrainingAndAsksForRetryWhileStopping() throws {
            try withSandbox { sandbox in
                sandbox.write("a.yaml", Output.yaml())
                // B = 10 s, r = 5 s: run() may go on for 5 s after SIGTERM, longer than the 3 s handler below.
                let daemon = try Output.launchFull(sandbox, environment: ["DORY_SHUTDOWN_TIMEOUT_SEC": "10"])
                try daemon.waitReady()
                let transfer = #"{"data": {"tag_values": {"my_app": {"x": 1}}}}"#

                // Draining.
                let prestop = try daemon.get("/prestop", headers: Daemon.controlBearer, timeout: .seconds(20))
                #expect(prestop.status == 200, "\(prestop.text)")
                #expect(daemon.waitForStatus("/ready", 503))
                let phase = JSON.object(try daemon.get("/ready").body)?["phase"]?.string
                #expect(phase == "draining", "phase \(phase ?? "nil")")
                let drained = try daemon.postEvent(Output.manual("{}"))
                #expect(drained.status == 202, "\(drained.status) \(drained.text)")
                let drainedId = try #require(JSON.object(drained.body)?["invocation_id"]?.string)
                #expect(daemon.waitForSummaries([drainedId]) != nil, "the event accepted while draining never ran")
                let drainingState = try daemon.postState(transfer)
                #expect(drainingState.status == 409, "\(drainingState.status) \(drainingState.text)")
                Self.expectErrorShape(drainingState, "shutting_down")

                // Stopping: a handler keeps run() going for about 3 s after SIGTERM.
                let slow = try daemon.postEvent(Output.manual(#"{"sleep_ms": 3000}"#))
                let slowId = try #require(JSON.object(slow.body)?["invocation_id"]?.string, "\(slow.text)")
                _ = try #require(daemon.waitForLog {
                    $0["msg"]?.string == "fixture handler" && $0["invocation_id"]?.string == slowId
                }, "the slow handler never started:\n\(daemon.logTail)")
                daemon.signal(SIGTERM)
                #expect(Poll.until(timeout: .seconds(5)) {
                    (try? daemon.get("/ready", timeout: .seconds(2))).flatMap { JSON.object($0.body)?["phase"]?.string } == "stopping"
                }, "never saw the stopping phase:\n\(daemon.logTail)")
                let refused = try daemon.postEvent(Output.manual("{}"))
                #expect(refused.status == 503, "\(refused.status) \(refused.text)")
                #expect(refused.headers["Retry-After"] == "5")
                Self.expectErrorShape(refused, "shutting_down")
                let stoppingState = try daemon.postState(transfer)
                #expect(stoppingState.status == 409, "\(stoppingState.status) \(stoppingState.text)")
                #expect(stoppingState.headers["Retry-After"] == nil)
                Self.expectErrorShape(stoppingState, "shutting_down")
                // Both refusals happened while the handler still ran: the stop waited for it.
                #expect(!daemon.records.contains { Output.finished($0, slowId) }, "the slow invocation already ended")
                let exit = try daemon.waitForExit(timeout: .seconds(30))
                #expect(exit.code == 0)
                #expect(daemon.records.contains { Output.finished($0, slowId) }, "the running invocation was not finished")
                #expect(try daemon.newestSnapshot().state["tag_values"]?["my_app"]?["x"] == nil,
                        "a refused transfer was applied")
            }
        }

        /// C27 and C112 through the binary with the smallest `rate` the grammar allows (`every 1s`): while HTTP event A's
        /// handler sleeps 3 s a fire S is queued, then HTTP event B → processed A, S, B, and no two invocations overlap
        /// (each `invocation started` is followed by its own `invocation finished` before the next starts). Every
        /// on_schedule summary has `schedule_id` "poll" and `subscription_id` null; the first fire comes no earlier
        /// than one interval after the workload started. (Interval timing in detail: `ScheduleFireTests`.)
        @Test func c27_c112_scheduleFireBetweenTwoHttpEventsRunsInQueueOrder() throws {
            try withSandbox { sandbox in
                sandbox.write("a.yaml", Output.yaml() + "  schedules:\n    - id: poll\n      rate: every 1s\n")
                let daemon = try Output.launchFull(sandbox)
                try daemon.waitReady()

                // The first fire has run; A starts right after it, so the next fires come while A sleeps.
                #expect(Poll.until(timeout: .seconds(10)) { daemon.records.contains(where: Self.started) }, "\(daemon.logTail)")
                let a = try daemon.postEvent(Output.manual(#"{"sleep_ms": 3000}"#))
                let aId = try #require(JSON.object(a.body)?["invocation_id"]?.string, "\(a.text)")
                _ = try #require(daemon.waitForLog { Self.started($0) && $0["invocation_id"]?.string == aId }, "\(daemon.logTail)")
                let firesAtA = Self.queuedFires(daemon)
                #expect(Poll.until(timeout: .seconds(5)) { Self.queuedFires(daemon) > firesAtA }, "no fire queued while A ran")
                let b = try daemon.postEvent(Output.manual("{}"))
                let bId = try #require(JSON.object(b.body)?["invocation_id"]?.string, "\(b.text)")
                #expect(!daemon.records.contains { Output.finished($0, aId) }, "A ended before S and B were queued")
                _ = try #require(daemon.waitForLog(timeout: .seconds(15)) { Output.finished($0, bId) }, "\(daemon.logTail)")
                #expect(try daemon.stop().code == 0)

                Self.checkOrderAndSchedules(daemon.records, a: aId, b: bId)
            }
        }

        /// C27 order and overlap, C112 summaries and first fire, from the log of the test above.
        static func checkOrderAndSchedules(_ records: [JSONObject], a: String, b: String) {
            // Order: A, then one on_schedule, then B.
            let starts = records.filter(Self.started)
            guard let from = starts.firstIndex(where: { $0["invocation_id"]?.string == a }) else {
                Issue.record("A never started")
                return
            }
            let next = starts[from...].prefix(3).map { ($0["op"]?.string ?? "?", $0["invocation_id"]?.string ?? "?") }
            #expect(next.map(\.0) == ["on_manual_invoke", "on_schedule", "on_manual_invoke"], "\(next)")
            #expect(next.first?.1 == a && next.last?.1 == b)
            // No overlap: started and finished alternate, each finished naming the invocation just started.
            let overlap = Self.firstOverlap(records)
            #expect(overlap == nil, "\(overlap ?? "")")

            // C112: the schedule's summaries.
            let summaries = records.filter { $0["msg"]?.string == "invocation finished" }
                .compactMap { $0["summary"]?.object }.filter { $0["event_type"]?.string == "on_schedule" }
            #expect(summaries.count >= 2)
            for summary in summaries {
                #expect(summary["schedule_id"]?.string == "poll" && summary["subscription_id"]?.isNull == true, "\(summary)")
                #expect(summary["status"]?.string == "success" && summary["requestId"] == summary["invocation_id"])
            }
            let starting = records.filter { $0["event"]?.string == "lifecycle.phase" }.first { $0["phase"]?.string == "starting" }
            let startMillis = Output.millis(starting?["ts"]?.string)
            let firstFire = summaries.first?["started_at"]?.int.map { Int($0 % 86_400_000) }
            #expect(startMillis != nil && firstFire != nil && firstFire! - startMillis! >= 990,
                    "first fire \((firstFire ?? 0) - (startMillis ?? 0)) ms after the starting phase")
        }

        static func started(_ record: JSONObject) -> Bool { record["msg"]?.string == "invocation started" }

        static func queuedFires(_ daemon: Daemon) -> Double {
            (try? daemon.metrics().value("dory_event_schedule_fires_total", ["schedule_id": "poll", "outcome": "queued"])) ?? 0
        }

        /// The first place where `invocation started` / `invocation finished` lines do not alternate for one invocation
        /// at a time, or nil.
        static func firstOverlap(_ records: [JSONObject]) -> String? {
            var open: String?
            for record in records {
                guard let id = record["invocation_id"]?.string else { continue }
                if started(record) {
                    if let open { return "\(id) started while \(open) ran" }
                    open = id
                } else if record["msg"]?.string == "invocation finished" {
                    if open != id { return "\(id) finished while \(open ?? "nothing") was running" }
                    open = nil
                }
            }
            return nil
        }

        /// C85, C97, C143 and the error shape of the channel routes, through `doryd events` (built-in example).
        @Test func c85_c97_c143_channelReadsAndRouteLabels() throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchEvents()
                try daemon.waitReady()
                var ids: [String] = []
                for temp in [45, 10, 50] {
                    let r = try daemon.postEvent(EventBodies.messageCreate(temp: temp), query: "?wait=true", timeout: .seconds(20))
                    #expect(JSON.object(r.body)?["status"]?.string == "success", "\(r.text)")
                    ids += [JSON.object(r.body)?["invocation_id"]?.string ?? "?"]
                }

                // C85: the tag_values aggregate is the committed tag map (the same as /state's `tag_values`).
                let aggregate = try daemon.get("/v1/channels/tag_values/aggregate", headers: Daemon.controlBearer)
                #expect(aggregate.status == 200, "\(aggregate.text)")
                let committed = try daemon.currentState()["tag_values"]
                #expect(committed?["my_app"]?["alert"]?.bool == true, "\(committed ?? .null)")
                #expect(JSON.object(aggregate.body)?["data"] == committed, "\(aggregate.text)")

                // C97: limit=2 → the two newest summaries, oldest first.
                let two = try daemon.get("/v1/channels/dv-proc-inv-42/messages?limit=2", headers: Daemon.controlBearer)
                #expect(two.status == 200, "\(two.text)")
                let messages = JSON.object(two.body)?["messages"]?.array ?? []
                #expect(messages.compactMap { $0["data"]?["invocation_id"]?.string } == Array(ids.suffix(2)), "\(two.text)")
                let all = try daemon.channelData()
                #expect(all.compactMap { $0["invocation_id"]?.string } == ids)
                for limit in ["0", "1001"] {
                    let bad = try daemon.get("/v1/channels/dv-proc-inv-42/messages?limit=\(limit)", headers: Daemon.controlBearer)
                    #expect(bad.status == 400, "limit=\(limit): \(bad.text)")
                    Self.expectErrorShape(bad, "invalid_limit")
                }
                let anonymous = try daemon.get("/v1/channels/dv-proc-inv-42/messages")
                #expect(anonymous.status == 401 && anonymous.headers["WWW-Authenticate"] == "Bearer", "\(anonymous.text)")
                Self.expectErrorShape(anonymous, "missing_authorization")
                let badName = try daemon.get("/v1/channels/..x/messages", headers: Daemon.controlBearer)
                #expect(badName.status == 400, "\(badName.text)")
                Self.expectErrorShape(badName, "invalid_channel_name")
                let badAgent = try daemon.get("/v1/channels/sensor/aggregate?agent_id=x", headers: Daemon.controlBearer)
                #expect(badAgent.status == 400)
                Self.expectErrorShape(badAgent)

                // Further error answers of the event routes: all have `error` and `message` strings.
                Self.expectErrorShape(try daemon.get("/v1/events", headers: Daemon.controlBearer), "method_not_allowed")
                Self.expectErrorShape(try daemon.postEvent("{}", headers: ["Authorization": "Basic abc"]),
                                      "invalid_authorization_format")
                Self.expectErrorShape(try daemon.postEvent("{}", headers: ["Authorization": "Bearer wrong-0123456789ab"]),
                                      "invalid_token")
                Self.expectErrorShape(try daemon.postEvent("{", authorized: true), "invalid_json")
                Self.expectErrorShape(try daemon.postEvent("[1]"), "not_an_object")
                Self.expectErrorShape(try daemon.postEvent(#"{"Records": []}"#), "invalid_envelope")
                Self.expectErrorShape(try daemon.postEvent("{}", headers: ["Content-Type": "text/plain"]), "unsupported_media_type")
                Self.expectErrorShape(try daemon.request("POST", "/v1/channels/sensor/messages", headers: Daemon.controlBearer))

                // C143: one GET of a channel's messages → +1 on the template route; no series names a concrete channel.
                let route = ["route": "/v1/channels/{name}/messages", "code": "200"]
                let before = try daemon.metrics().value("dory_http_requests_total", route) ?? 0
                #expect(before >= 1, "the earlier reads were not counted under the template")
                let sensor = try daemon.get("/v1/channels/sensor/messages", headers: Daemon.controlBearer)
                #expect(sensor.status == 200, "\(sensor.text)")
                let metrics = try daemon.metrics()
                #expect(metrics.value("dory_http_requests_total", route) == before + 1)
                let routes = Set(metrics.samples("dory_http_requests_total").compactMap { $0.labels["route"] })
                for concrete in ["sensor", "dv-proc-inv-42", "tag_values", "..x", "?"] {
                    #expect(!routes.contains { $0.contains(concrete) }, "a route label names \(concrete): \(routes.sorted())")
                }
                #expect(routes.isSuperset(of: ["/v1/events", "/v1/channels/{name}/messages", "/v1/channels/{name}/aggregate"]),
                        "\(routes.sorted())")
                #expect(metrics.value("dory_http_requests_total", ["route": "/v1/channels/{name}/messages", "code": "400"]) == 3)
                #expect(try daemon.stop().code == 0)
            }
        }
    }
}

extension EventsTests.Host {
    /// 1,000 POSTs from 100 keep-alive connections (python3 threads), sent while one slow handler holds the worker.
    static let burstScript = """
    import http.client, json, sys, threading
    port, token, body = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    connections, per_connection = 100, 10
    results, lock = [], threading.Lock()
    barrier = threading.Barrier(connections)
    def worker():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.connect()
        barrier.wait()
        for _ in range(per_connection):
            c.request("POST", "/v1/events", body=body,
                      headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            with lock:
                results.append((r.status, json.loads(data).get("invocation_id") if r.status == 202 else data.decode()))
        c.close()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps({"statuses": [s for s, _ in results], "ids": [i for s, i in results if s == 202],
                      "other": [i for s, i in results if s != 202][:5]}))
    """

    /// C26: a burst of 1,000 POSTs over 100 concurrent keep-alive connections while the first event's handler blocks →
    /// all 202, sharing group-commit rounds (far fewer fsyncs than events); once the handler returns, each further
    /// event costs about one round (its `start`, carrying the previous `done`).
    @Test func c26_burstSharesRoundsThenOneRoundPerEvent() throws {
        try withSandbox { sandbox in
            sandbox.write("a.yaml", EventsTests.Output.yaml())
            let daemon = try EventsTests.Output.launchFull(sandbox)
            try daemon.waitReady()
            let blocker = try daemon.postEvent(EventsTests.Output.manual(#"{"sleep_ms": 6000}"#))
            let blockerId = try #require(JSON.object(blocker.body)?["invocation_id"]?.string, "\(blocker.text)")
            _ = try #require(daemon.waitForLog {
                $0["msg"]?.string == "fixture handler" && $0["invocation_id"]?.string == blockerId
            }, "the blocking handler never started:\n\(daemon.logTail)")

            let before = try #require(Self.gauge(daemon, "dory_event_queue_fsyncs_total"))
            let run = try CommandRun.run(sandbox, try StateCommandTests.python3(),
                                         ["-c", Self.burstScript, "\(daemon.port)", EventsLaunch.controlToken,
                                          EventsTests.Output.manual("{}")],
                                         environment: ["PATH": "/usr/bin:/bin", "HOME": sandbox.root])
            #expect(run.code == 0, "\(run)")
            let burst = try #require(JSON.object(run.stdout), "\(run)")
            let afterBurst = try #require(Self.gauge(daemon, "dory_event_queue_fsyncs_total"))
            let blockerDone = daemon.records.contains { EventsTests.Output.finished($0, blockerId) }
            #expect(!blockerDone, "the burst outlasted the blocking handler; the case needs it still running")

            let statuses = burst["statuses"]?.array?.compactMap(\.int) ?? []
            #expect(statuses.count == 1000 && statuses.allSatisfy { $0 == 202 }, "\(burst["other"].map { "\($0)" } ?? "")")
            let ids = burst["ids"]?.array?.compactMap(\.string) ?? []
            #expect(Set(ids).count == 1000)
            let burstRounds = afterBurst - before
            #expect(burstRounds < 500, "\(burstRounds) fsyncs for 1,000 acknowledged events: rounds are not shared")

            func succeeded() -> Double {
                (try? daemon.metrics().value("dory_event_invocations_total", ["op": "on_manual_invoke", "status": "success"])) ?? 0
            }
            let processed = Poll.until(timeout: .seconds(60), interval: .milliseconds(50)) { succeeded() == 1001 }
            #expect(processed, "\(succeeded()) of 1,001 invocations succeeded:\n\(daemon.logTail)")
            // The channel read returns the newest 1,000 summaries (its largest limit): exactly the burst's events.
            let newest = Set(try daemon.channelData().compactMap { $0["invocation_id"]?.string })
            #expect(newest == Set(ids), "\(newest.subtracting(ids).count) unexpected, \(Set(ids).subtracting(newest).count) missing")
            #expect(Poll.until(timeout: .seconds(5)) { Self.gauge(daemon, "dory_event_queue_depth") == 0 })
            // A `done` without a following `start` rides a 10 ms timer round: allow a few of those.
            let processingRounds = try #require(Self.gauge(daemon, "dory_event_queue_fsyncs_total")) - afterBurst
            #expect(processingRounds >= 900 && processingRounds <= 1100,
                    "\(processingRounds) fsyncs to process 1,000 queued events (expected about one each)")
            print("C26: burst 1,000 × 202 with \(Int(burstRounds)) fsyncs; processing \(Int(processingRounds)) fsyncs")
            #expect(try daemon.stop().code == 0)
        }
    }
}

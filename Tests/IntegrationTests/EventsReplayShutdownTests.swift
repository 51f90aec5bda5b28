import DoryHTTP
import DoryState
import Glibc
import Synchronization
import Testing

/// Queue durability, replay, poison events, shutdown and snapshot cases of spec/event-pipeline.md §13 (C23, C24,
/// C127, C128, C129, C133) through `FIXTURE_APP=events-full doryd-fixture`, whose handlers set tags, sleep, wait
/// honouring cancellation or SIGKILL their own process as the event's payload says
/// (Sources/doryd-fixture/FixtureEventsApp.swift).
extension EventsTests {
    @Suite struct ReplayShutdown {
        typealias Output = EventsTests.Output

        // MARK: Helpers

        /// Writes the §13 `a.yaml` (once) and starts Full with `environment`.
        static func launch(_ sandbox: Sandbox, _ environment: [String: String] = [:]) throws -> Daemon {
            if !Files.exists(sandbox.path("a.yaml")) { sandbox.write("a.yaml", Output.yaml()) }
            return try Output.launchFull(sandbox, environment: environment)
        }

        /// POSTs an `on_manual_invoke` with `payload` (JSON text); returns its `invocation_id` (202 expected).
        static func post(_ daemon: Daemon, _ payload: String) throws -> String {
            let response = try daemon.postEvent(Output.manual(payload))
            #expect(response.status == 202, "\(response.status) \(response.text)")
            return try #require(JSON.object(response.body)?["invocation_id"]?.string, "\(response.text)")
        }

        /// The `fixture handler` records of invocation `id`.
        static func handlerRuns(_ daemon: Daemon, _ id: String) -> [JSONObject] {
            daemon.records.filter { $0["msg"]?.string == "fixture handler" && $0["invocation_id"]?.string == id }
        }

        /// Waits until the handler of `id` has been entered in this boot.
        static func waitForHandler(_ daemon: Daemon, _ id: String, timeout: Duration = .seconds(10)) throws {
            _ = try #require(daemon.waitForLog(timeout: timeout) {
                $0["msg"]?.string == "fixture handler" && $0["invocation_id"]?.string == id
            }, "handler of \(id) not entered; log:\n\(daemon.logTail)")
        }

        /// The records of `<processor>/events/queue.log` (checksums not checked: the daemon does that).
        static func queueRecords(_ daemon: Daemon) -> [JSONObject] {
            guard let bytes = Files.read(daemon.processorDir + "/events/queue.log") else { return [] }
            return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
                guard let space = line.firstIndex(of: " ") else { return nil }
                return JSON.object(String(line[line.index(after: space)...]))
            }
        }

        /// Queue records of kind `kind` for `id`.
        static func queueRecords(_ daemon: Daemon, _ kind: String, _ id: String) -> [JSONObject] {
            queueRecords(daemon).filter { $0["k"]?.string == kind && $0["id"]?.string == id }
        }

        /// The summaries on (1, `dv-proc-inv-42`) read from the channel file (works while doryd is down).
        static func summariesOnDisk(_ daemon: Daemon) -> [JSONObject] {
            let path = daemon.processorDir + "/events/channels/1/dv-proc-inv-42.jsonl"
            guard let bytes = Files.read(path) else { return [] }
            return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap {
                JSON.object(String($0))?["data"]?.object
            }
        }

        static func summaries(_ all: [JSONObject], _ id: String) -> [JSONObject] {
            all.filter { $0["invocation_id"]?.string == id }
        }

        /// `data.tag_values` of GET /state.
        static func tagMap(_ daemon: Daemon) throws -> JSONObject {
            try #require(try daemon.currentState()["tag_values"]?.object, "no tag_values in GET /state")
        }

        // MARK: C23

        /// C23: SIGKILL while Full's handler sleeps → after restart the event runs again with the same
        /// `invocation_id` and one summary; `replays_total{outcome="rerun"}` +1.
        @Test func c23_sigkillWhileHandlerRunsRerunsWithTheSameInvocationId() throws {
            try withSandbox { sandbox in
                let first = try Self.launch(sandbox)
                try first.waitReady()
                let id = try Self.post(first, #"{"set_tag": {"x": 1}, "sleep_ms": 1500}"#)
                try Self.waitForHandler(first, id)
                first.kill9()
                #expect(first.process.exitStatus()?.signal == SIGKILL)
                #expect(Self.queueRecords(first, "start", id).count == 1, "no durable start before the handler")
                #expect(Self.queueRecords(first, "done", id).isEmpty)
                #expect(Self.summaries(Self.summariesOnDisk(first), id).isEmpty, "summary written before the kill")

                let again = try Self.launch(sandbox)
                try again.waitReady()
                let all = try #require(again.waitForSummaries([id]), "no summary after restart; log:\n\(again.logTail)")
                let mine = Self.summaries(all, id)
                #expect(mine.count == 1 && mine.first?["status"]?.string == "success", "\(mine)")
                #expect(Self.handlerRuns(again, id).count == 1, "the handler did not run again with the same id")
                let metrics = try again.metrics()
                #expect(metrics.value("dory_event_replays_total", ["outcome": "rerun"]) == 1)
                #expect(metrics.value("dory_event_replays_total", ["outcome": "summary_found"]) ?? 0 == 0)
                #expect(try Self.tagMap(again)["my_app"]?["x"]?.int == 1)
                #expect(Self.queueRecords(again, "start", id).count == 2)
                #expect(try again.stop().code == 0)
                #expect(Self.queueRecords(again, "done", id).count == 1)
            }
        }

        // MARK: C24

        /// C24: a handler that SIGKILLs the process on every attempt; `event_max_attempts` 3 and the rapid-restart
        /// defaults (threshold 3, window 60 s) → boots 2 and 3 restore and run it again; boot 4 is
        /// `golden_backoff`/`rapid_restart` (snapshots archived, tag map `{}`, queue and channels kept) and after the
        /// backoff finishes the event as `AttemptsExhausted` without running it; the next event is processed.
        /// `DORY_BACKOFF_BASE_SEC=1` shortens the default 10 s backoff (runtime §8: base·2^(c−threshold)).
        @Test func c24_poisonEventCrashesAtMostMaxAttemptsTimes() throws {
            try withSandbox { sandbox in
                let env = ["DORY_BACKOFF_BASE_SEC": "1"]
                let first = try Self.launch(sandbox, env)
                try first.waitReady()
                let setup = try first.postEvent(Output.manual(#"{"set_tag": {"temp": 20}}"#), query: "?wait=true",
                                                timeout: .seconds(20))
                let setupId = try #require(JSON.object(setup.body)?["invocation_id"]?.string, "\(setup.text)")
                #expect(try Self.tagMap(first)["my_app"]?["temp"]?.int == 20)
                let poison = try Self.post(first, #"{"kill_self": true}"#)
                let firstExit = try first.waitForExit()
                #expect(firstExit.signal == SIGKILL, "\(firstExit); log:\n\(first.logTail)")
                #expect(Self.handlerRuns(first, poison).count == 1)

                // Boots 2 and 3: restore as usual, run the event again (attempts 2, 3), crash again.
                for (boot, crashes) in [(2, 1), (3, 2)] {
                    let daemon = try Self.launch(sandbox, env)
                    let decision = try daemon.decision()
                    #expect(decision.strategy == "restore" && decision.crashesInWindow == Int64(crashes),
                            "boot \(boot): \(decision)")
                    let exit = try daemon.waitForExit(timeout: .seconds(20))
                    #expect(exit.signal == SIGKILL, "boot \(boot): \(exit); log:\n\(daemon.logTail)")
                    #expect(Self.handlerRuns(daemon, poison).count == 1, "boot \(boot) did not run the event again")
                    #expect(Self.queueRecords(daemon, "start", poison).count == boot)
                }

                // Boot 4: golden_backoff, snapshots archived, queue and channels kept, the event finished unrun.
                let started = Poll.now()
                let daemon = try Self.launch(sandbox, env)
                let decision = try daemon.decision()
                #expect(decision.strategy == "golden_backoff" && decision.reason == "rapid_restart"
                        && decision.crashesInWindow == 3 && decision.backoff == 1, "\(decision)")
                try daemon.waitReady(timeout: .seconds(20))
                #expect(Files.list(daemon.archiveDir).count == 1, "snapshots not archived: \(Files.list(daemon.archiveDir))")
                let all = try #require(daemon.waitForSummaries([poison]), "no summary; log:\n\(daemon.logTail)")
                let mine = Self.summaries(all, poison)
                #expect(mine.count == 1, "\(mine)")
                let summary = mine.first ?? [:]
                #expect(summary["status"]?.string == "error", "\(summary)")
                #expect(summary["error"]?["type"]?.string == "AttemptsExhausted")
                #expect(summary["error"]?["message"]?.string == "event started 3 times without completing")
                #expect(Self.summaries(all, setupId).count == 1, "the channel files were not kept")
                #expect(Self.handlerRuns(daemon, poison).isEmpty, "the exhausted event ran")
                #expect(try daemon.metrics().value("dory_event_replays_total", ["outcome": "exhausted"]) == 1)
                let resetMap = try Self.tagMap(daemon)
                #expect(resetMap.isEmpty, "tag map not reset: \(resetMap)")
                #expect(Poll.until(timeout: .seconds(5)) {
                    Self.queueRecords(daemon, "done", poison).first?["status"]?.string == "error"
                }, "no done record for the exhausted event")

                // The next event is processed; no further crash.
                let next = try daemon.postEvent(Output.manual(#"{"set_tag": {"after": true}}"#), query: "?wait=true",
                                                timeout: .seconds(20))
                #expect(next.status == 200 && JSON.object(next.body)?["status"]?.string == "success", "\(next.text)")
                #expect(try Self.tagMap(daemon)["my_app"]?.object == ["after": .bool(true)])
                #expect(daemon.process.isRunning)
                #expect(try daemon.stop().code == 0)
                print("C24: boot 4 took \(Poll.seconds(since: started)) s (backoff 1 s)")
            }
        }

        // MARK: C127

        /// C127 with `DORY_SHUTDOWN_TIMEOUT_SEC=4` (r = min(5, B/2) = 2, so `run()` is cancelled at T0+B−r = T0+2; the
        /// spec's B = 10 gives T0+5): a handler sets x=1 and waits 60 s honouring cancellation; SIGTERM at T0 → it is
        /// cancelled at about T0+2 s, not before; `close` runs; x is not committed; no summary, no `done`; exit 0;
        /// the restart runs the event again with the same `invocation_id`.
        /// The argument is B (`DORY_SHUTDOWN_TIMEOUT_SEC`); 10 (the spec's value, cancel at T0+5) also passes, in
        /// about 10 s instead of 4.3 s.
        @Test(arguments: [4.0]) func c127_sigtermCancelsARunningHandlerAtTheRunDeadline(budget: Double) throws {
            let cancelAt = budget - min(5, budget / 2)
            try withSandbox { sandbox in
                let env = ["DORY_SHUTDOWN_TIMEOUT_SEC": "\(budget)"]
                let first = try Self.launch(sandbox, env)
                try first.waitReady()
                let id = try Self.post(first, #"{"set_tag": {"x": 1}, "wait_ms": 60000}"#)
                try Self.waitForHandler(first, id)
                let t0 = Poll.now()
                first.signal(SIGTERM)
                let cancelled = first.waitForLog(timeout: .seconds(10)) {
                    $0["msg"]?.string == "fixture wait cancelled" && $0["invocation_id"]?.string == id
                }
                let seconds = Poll.seconds(since: t0)
                #expect(cancelled != nil, "the handler was not cancelled; log:\n\(first.logTail)")
                #expect(seconds >= cancelAt - 0.1, "cancelled \(seconds) s after SIGTERM, before T0+B−r = \(cancelAt) s")
                #expect(seconds < cancelAt + 1.5, "cancelled \(seconds) s after SIGTERM, expected about \(cancelAt) s")
                let exit = try first.waitForExit()
                #expect(exit.code == 0, "\(exit); log:\n\(first.logTail)")
                let closes = first.records.filter { $0["msg"]?.string == "fixture close" && $0["invocation_id"]?.string == id }
                #expect(closes.count == 1, "close not called once: \(closes.count)")
                #expect(!first.records.contains { $0["msg"]?.string == "invocation finished" && $0["invocation_id"]?.string == id },
                        "an abandoned invocation logged a summary")
                #expect(Self.summaries(Self.summariesOnDisk(first), id).isEmpty, "an abandoned invocation delivered a summary")
                #expect(Self.queueRecords(first, "done", id).isEmpty, "an abandoned invocation was marked done")
                let snapshot = try first.newestSnapshot()
                #expect(try first.finalSaveIsOnDisk(), "newest generation \(snapshot.generation ?? -1) (\(snapshot.reason ?? "?"))")
                #expect(snapshot.state["tag_values"]?["my_app"]?["x"] == nil, "x committed: \(snapshot.state)")

                let again = try Self.launch(sandbox, env)
                try again.waitReady()
                try Self.waitForHandler(again, id)
                #expect(Self.queueRecords(again, "start", id).count == 2, "the interrupted start is not an attempt")
                #expect(try Self.tagMap(again)["my_app"]?["x"] == nil)
                #expect(try again.channelData().allSatisfy { $0["invocation_id"]?.string != id })
                #expect(try again.metrics().value("dory_event_replays_total", ["outcome": "rerun"]) == 1)
                #expect(try again.stop().code == 0)
                print("C127: cancelled \(seconds) s after SIGTERM")
            }
        }

        // MARK: C128

        /// C128: SIGTERM while a handler sleeps 1 s with the default budget (B = 20) → the invocation finishes: its
        /// summary is delivered and its `done` is in the queue file before exit; the restart does not run it again.
        @Test func c128_sigtermLetsAShortHandlerFinish() throws {
            try withSandbox { sandbox in
                let env = ["DORY_SHUTDOWN_TIMEOUT_SEC": "20"]
                let first = try Self.launch(sandbox, env)
                try first.waitReady()
                let id = try Self.post(first, #"{"set_tag": {"y": 2}, "sleep_ms": 1000}"#)
                try Self.waitForHandler(first, id)
                let t0 = Poll.now()
                first.signal(SIGTERM)
                let exit = try first.waitForExit(timeout: .seconds(20))
                let seconds = Poll.seconds(since: t0)
                #expect(exit.code == 0, "\(exit); log:\n\(first.logTail)")
                #expect(seconds < 10, "exit \(seconds) s after SIGTERM")
                let mine = Self.summaries(Self.summariesOnDisk(first), id)
                #expect(mine.count == 1 && mine.first?["status"]?.string == "success", "\(mine)")
                let done = Self.queueRecords(first, "done", id)
                #expect(done.count == 1 && done.first?["status"]?.string == "success", "no done before exit: \(done)")
                #expect(try first.newestSnapshot().state["tag_values"]?["my_app"]?["y"]?.int == 2)

                let again = try Self.launch(sandbox, env)
                try again.waitReady()
                #expect(Poll.until(timeout: .seconds(5)) { (try? again.metrics().value("dory_event_queue_depth")) == 0 })
                #expect(Self.handlerRuns(again, id).isEmpty, "the finished event ran again")
                #expect(Self.summaries(try again.channelData(), id).count == 1)
                #expect(try again.metrics().value("dory_event_replays_total", ["outcome": "rerun"]) ?? 0 == 0)
                #expect(try Self.tagMap(again)["my_app"]?["y"]?.int == 2)
                #expect(try again.stop().code == 0)
                print("C128: exit \(seconds) s after SIGTERM")
            }
        }

        // MARK: C129

        /// A small deterministic generator (SplitMix64) for the seeded kill moment.
        struct SeededGenerator: RandomNumberGenerator {
            var state: UInt64
            mutating func next() -> UInt64 {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                return z ^ (z >> 31)
            }
        }

        /// The newest generation on disk, retried when a generation is pruned between listing and reading.
        static func newestSnapshot(_ daemon: Daemon) -> Snapshot? {
            Poll.value(timeout: .seconds(5), interval: .milliseconds(5)) { try? daemon.newestSnapshot() }
        }

        /// C129: `DORY_SNAPSHOT_INTERVAL_SEC=0.05`, 200 invocations each setting `n` to its index →
        /// `dory_snapshots_total{reason="api",result="ok"}` +200 and after each the newest generation holds that `n`;
        /// then more invocations, SIGKILL at a seeded random moment, restart → `n` is the last committed value (the
        /// restored generation is never older than the last acknowledged commit).
        @Test(arguments: [UInt64(0x5EED_0129)]) func c129_newestGenerationAlwaysHoldsTheLastCommit(seed: UInt64) throws {
            try withSandbox { sandbox in
                let env = ["DORY_SNAPSHOT_INTERVAL_SEC": "0.05"]
                let daemon = try Self.launch(sandbox, env)
                try daemon.waitReady()
                let apiBefore = try daemon.metrics().value("dory_snapshots_total", ["reason": "api", "result": "ok"]) ?? 0
                var stale: [String] = []
                var generator = SeededGenerator(state: seed)
                let started = Poll.now()
                for n in 0..<200 {
                    // The interval timer restarts after every completed snapshot (runtime §6.6), so back-to-back
                    // commits would starve it: every fourth handler pauses 40–64 ms after `setTag`, letting interval
                    // snapshots fire around the commits they could overtake.
                    let pause = n % 4 == 3 ? #", "sleep_ms": \#(Int.random(in: 40..<65, using: &generator))"# : ""
                    let r = try daemon.postEvent(Output.manual(#"{"set_tag": {"n": \#(n)}\#(pause)}"#), query: "?wait=true",
                                                 timeout: .seconds(20))
                    try #require(r.status == 200 && JSON.object(r.body)?["status"]?.string == "success", "\(n): \(r.text)")
                    let newest = Self.newestSnapshot(daemon)
                    let held = newest?.state["tag_values"]?["my_app"]?["n"]?.int
                    if held != Int64(n) {
                        stale.append("n=\(n): generation \(newest?.generation ?? -1) (\(newest?.reason ?? "?")) holds \(held.map(String.init) ?? "nil")")
                    }
                }
                let phaseOne = Poll.seconds(since: started)
                #expect(stale.isEmpty, "\(stale.count) stale newest generations: \(stale.prefix(5))")
                let apiAfter = try daemon.metrics().value("dory_snapshots_total", ["reason": "api", "result": "ok"]) ?? 0
                #expect(apiAfter - apiBefore == 200, "api snapshots +\(apiAfter - apiBefore), expected +200")
                let afterPhaseOne = try daemon.metrics()
                let intervals = afterPhaseOne.samples("dory_snapshots_total").filter { $0.labels["reason"] == "interval" }
                    .reduce(0) { $0 + $1.value }
                #expect(intervals > 0, "no interval snapshot ran between the commits")

                // More commits from another thread; SIGKILL once a seeded number of them is acknowledged.
                let killAfter = Int64(200 + Int.random(in: 5..<150, using: &generator))
                let lastAck = Atomic<Int64>(199)
                let finished = Atomic<Bool>(false)
                let port = daemon.port
                Threads.start {
                    for n in 200..<400 {
                        let body = Output.manual(#"{"set_tag": {"n": \#(n)}}"#)
                        guard let r = try? HTTPClient.request(
                            method: "POST", path: "/v1/events?wait=true",
                            headers: ["Authorization": "Bearer \(EventsLaunch.controlToken)", "Content-Type": "application/json"],
                            body: Array(body.utf8), to: .tcp(host: "127.0.0.1", port: port), timeout: .seconds(20)),
                            r.status == 200, JSON.object(r.body)?["status"]?.string == "success"
                        else { break }
                        lastAck.store(Int64(n), ordering: .releasing)
                    }
                    finished.store(true, ordering: .releasing)
                }
                #expect(Poll.until(timeout: .seconds(30), interval: .milliseconds(1)) {
                    lastAck.load(ordering: .acquiring) >= killAfter
                })
                daemon.kill9()
                #expect(Poll.until(timeout: .seconds(30)) { finished.load(ordering: .acquiring) })
                let acknowledged = lastAck.load(ordering: .acquiring)
                let onDisk = Self.newestSnapshot(daemon)?.state["tag_values"]?["my_app"]?["n"]?.int ?? -1
                #expect(onDisk >= acknowledged, "newest generation holds n=\(onDisk), older than the acknowledged \(acknowledged)")

                let again = try Self.launch(sandbox, env)
                try again.waitReady()
                #expect(Poll.until(timeout: .seconds(10)) { (try? again.metrics().value("dory_event_queue_depth")) == 0 })
                let restored = try Self.tagMap(again)["my_app"]?["n"]?.int ?? -1
                #expect(restored >= onDisk && restored >= acknowledged && restored <= acknowledged + 2,
                        "after restart n=\(restored); on disk \(onDisk), acknowledged \(acknowledged)")
                #expect(try again.stop().code == 0)
                print("C129: 200 commits in \(phaseOne) s, \(Int(intervals)) interval snapshots; kill after n=\(killAfter) (seed \(seed)), acknowledged "
                      + "\(acknowledged), on disk \(onDisk), after restart \(restored)")
            }
        }

        // MARK: C133

        /// C133: POST /state while a handler sleeps 3 s with `DORY_STATE_CAPTURE_TIMEOUT_SEC=1` → 504 after about
        /// 1 s; once the handler returns the tag map is its commit's; the transfer is never applied, not even once
        /// the worker is idle.
        @Test func c133_transferDuringAHandlerTimesOutAndIsNeverApplied() throws {
            try withSandbox { sandbox in
                let daemon = try Self.launch(sandbox, ["DORY_STATE_CAPTURE_TIMEOUT_SEC": "1"])
                try daemon.waitReady()
                let id = try Self.post(daemon, #"{"set_tag": {"x": 1}, "sleep_ms": 3000}"#)
                try Self.waitForHandler(daemon, id)
                let t0 = Poll.now()
                let response = try daemon.postState(#"{"data": {"tag_values": {"my_app": {"x": 99}}}}"#,
                                                    timeout: .seconds(10))
                let seconds = Poll.seconds(since: t0)
                #expect(response.status == 504, "\(response.status) \(response.text)")
                #expect(JSON.object(response.body)?["error"]?.string == "capture_timeout", "\(response.text)")
                #expect(seconds >= 0.9 && seconds < 2.5, "504 after \(seconds) s")
                _ = try #require(daemon.waitForSummaries([id]), "log:\n\(daemon.logTail)")
                #expect(try Self.tagMap(daemon)["my_app"]?["x"]?.int == 1)
                // Another invocation passes the gate the transfer waited on; the transfer still does not land.
                let next = try daemon.postEvent(Output.manual(#"{"set_tag": {"z": 1}}"#), query: "?wait=true",
                                                timeout: .seconds(20))
                #expect(next.status == 200, "\(next.text)")
                let tags = try Self.tagMap(daemon)
                #expect(tags["my_app"]?.object == ["x": .int(1), "z": .int(1)], "\(tags)")
                #expect(!daemon.records.contains { $0["reason"]?.string == "transfer" }, "a transfer generation was written")
                #expect(try daemon.stop().code == 0)
            }
        }
    }
}

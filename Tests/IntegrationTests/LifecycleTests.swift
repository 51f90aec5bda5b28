import DoryHTTP
import DoryState
import Glibc
import Testing

/// §12 "Lifecycle and signals" (cases 16–29) against the real binaries.
@Suite struct LifecycleTests {
    /// Boots once, waits for ready, stops with SIGTERM and returns the exit status: leaves a shutdown generation behind.
    static func seed(_ sandbox: Sandbox, _ options: LaunchOptions = .fixture()) throws -> ExitStatus {
        let daemon = try sandbox.launch(options)
        try daemon.waitReady()
        return try daemon.stop()
    }

    // Case 17: normal start → startup, restoreState, run, in that order; /ready 503 until restored, then 200.
    @Test func case17_hooksRunInOrderAndReadyFollowsRestore() throws {
        try withSandbox { sandbox in
            #expect(try Self.seed(sandbox).code == 0)
            let daemon = try sandbox.launch(.fixture(["FIXTURE_STARTUP_SLEEP_SEC": "1"]))
            let watcher = StatusWatcher(port: daemon.port, path: "/ready")
            try daemon.waitReady()
            let seen = watcher.stop()
            let hooks = daemon.hooks.filter { ["startup", "restoreState", "run"].contains($0) }
            #expect(hooks == ["startup", "restoreState", "run"], "\(daemon.logTail)")
            // 503 while starting, then 200; never 200 before the restore.
            let statuses = seen.compactMap(\.status)
            #expect(statuses.first == 503)
            #expect(statuses.contains(200) || daemon.status("/ready") == 200)
            if let firstOK = statuses.firstIndex(of: 200) {
                #expect(statuses[firstOK...].allSatisfy { $0 == 200 }, "readiness flapped: \(statuses)")
            }
            #expect(daemon.events("lifecycle.ready").count == 1)
            #expect(try daemon.stop().code == 0)
        }
    }

    // Case 18: startup() overrunning DORY_STARTUP_TIMEOUT_SEC=1, or throwing → exit 3, shutdown() once, /ready never
    // 200, no new snapshot.
    @Test(arguments: [["FIXTURE_STARTUP_SLEEP_SEC": "5", "DORY_STARTUP_TIMEOUT_SEC": "1"], ["FIXTURE_STARTUP_THROW": "1"]])
    func case18_startupFailureExits3(_ environment: [String: String]) throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.fixture(environment))
            let watcher = StatusWatcher(port: daemon.port, path: "/ready")
            let exit = try daemon.waitForExit(timeout: .seconds(10))
            let statuses = watcher.stop().compactMap(\.status)
            #expect(exit.code == 3, "\(exit); \(daemon.logTail)")
            #expect(daemon.hooks.filter { $0 == "shutdown" }.count == 1, "\(daemon.hooks)")
            #expect(!statuses.contains(200))
            #expect(daemon.generations().isEmpty)
            #expect(daemon.saved().isEmpty)
        }
    }

    // Case 19: SIGTERM during a 5 s startup() → no invalid transition, /ready never 200, newest generation unchanged,
    // exit 0.
    @Test func case19_sigtermDuringStartup() throws {
        try withSandbox { sandbox in
            #expect(try Self.seed(sandbox).code == 0)
            let seeded = Files.list(sandbox.path("state/itest-pod/snapshots"))
            #expect(!seeded.isEmpty)
            let daemon = try sandbox.launch(.fixture(["FIXTURE_STARTUP_SLEEP_SEC": "5"]))
            let watcher = StatusWatcher(port: daemon.port, path: "/ready")
            #expect(daemon.waitForLog { $0["fixture_hook"]?.string == "startup" } != nil)
            let start = Poll.now()
            daemon.signal(SIGTERM)
            let exit = try daemon.waitForExit(timeout: .seconds(10))
            let statuses = watcher.stop().compactMap(\.status)
            #expect(exit.code == 0, "\(exit); \(daemon.logTail)")
            #expect(Poll.seconds(since: start) < 4.5, "waited for startup instead of cutting it at T0+B−r")
            #expect(daemon.events("lifecycle.invalid_transition").isEmpty)
            #expect(!statuses.contains(200))
            #expect(!daemon.hooks.contains("run") && !daemon.hooks.contains("restoreState"))
            #expect(Files.list(daemon.snapshotsDir) == seeded, "the newest generation changed")
        }
    }

    // Case 20: SIGTERM during a backoff → exit 0 within 1 s; startup() never called.
    @Test func case20_sigtermDuringBackoff() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.fixture(["RESTART_COUNT": "3"]))
            #expect(daemon.waitForLog { $0["event"]?.string == "lifecycle.phase" && $0["phase"]?.string == "backoff" } != nil,
                    "\(daemon.logTail)")
            let ready = try daemon.get("/ready")
            #expect(ready.status == 503)
            #expect(try daemon.get("/healthz").status == 200)
            let start = Poll.now()
            daemon.signal(SIGTERM)
            let exit = try daemon.waitForExit(timeout: .seconds(5))
            #expect(Poll.seconds(since: start) < 1.2)
            #expect(exit.code == 0, "\(exit)")
            #expect(!daemon.hooks.contains("startup"), "\(daemon.hooks)")
            #expect(daemon.generations().isEmpty)
        }
    }

    // Case 21 (5 rounds instead of 20): SIGTERM at a random moment after /ready 200 → exit 0, a shutdown snapshot
    // gzip reads, the counter grows across rounds.
    @Test func case21_repeatedStopsKeepGrowingTheCounter() throws {
        try withSandbox { sandbox in
            var previous: Int64 = -1
            var generator = SystemRandomNumberGenerator()
            for round in 1...5 {
                let daemon = try sandbox.launch(.demo())
                try daemon.waitReady()
                Poll.nap(.milliseconds(Int64.random(in: 120...400, using: &generator)))
                let exit = try daemon.stop()
                #expect(exit.code == 0, "round \(round): \(exit); \(daemon.logTail)")
                let snapshot = try daemon.newestSnapshot()
                #expect(snapshot.reason == "shutdown")
                let counter = try #require(snapshot.counter)
                #expect(counter > previous, "round \(round): counter \(counter) after \(previous)")
                previous = counter
            }
        }
    }

    // Case 22: shutdown() overrunning its budget, or throwing → the final snapshot is still written, exit 0, WARN or
    // ERROR logged.
    @Test(arguments: [["FIXTURE_SHUTDOWN_SLEEP_SEC": "10"], ["FIXTURE_SHUTDOWN_THROW": "1"]])
    func case22_badShutdownStillSaves(_ environment: [String: String]) throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.fixture(environment))
            try daemon.waitReady()
            let exit = try daemon.stop(timeout: .seconds(8))
            #expect(exit.code == 0, "\(exit); \(daemon.logTail)")
            #expect(try daemon.newestSnapshot().reason == "shutdown")
            let level = environment["FIXTURE_SHUTDOWN_THROW"] != nil ? "error" : "warning"
            let event = environment["FIXTURE_SHUTDOWN_THROW"] != nil ? "lifecycle.shutdown_failed" : "lifecycle.shutdown_timeout"
            #expect(daemon.records.contains { $0["level"]?.string == level && $0["event"]?.string == event }, "\(daemon.logTail)")
        }
    }

    // Case 23: run() never checking the flag, DORY_SHUTDOWN_TIMEOUT_SEC=2 → cancelled at about 1 s (T0+B−r); gone
    // within 2 + S + 1 s.
    @Test func case23_runIgnoringTheFlagIsCancelled() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.fixture(["FIXTURE_RUN": "ignore_flag"]))
            try daemon.waitReady()
            let start = Poll.now()
            daemon.signal(SIGTERM)
            let cancelled = daemon.waitForEvent("lifecycle.run_cancelled", timeout: .seconds(5))
            let cancelledAt = Poll.seconds(since: start)
            #expect(cancelled != nil, "\(daemon.logTail)")
            #expect(cancelledAt > 0.8 && cancelledAt < 1.5, "cancelled after \(cancelledAt) s")
            _ = try daemon.waitForExit(timeout: .seconds(6))
            #expect(Poll.seconds(since: start) < 2 + 1 + 1 + 0.2)
        }
    }

    // Case 24: run() spinning without suspension → the capture fails at the save deadline; exit 5 by the hard stop.
    @Test func case24_spinningRunExits5() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.fixture(["FIXTURE_RUN": "spin"]))
            try daemon.waitReady()
            #expect(daemon.waitForLog { $0["fixture_hook"]?.string == "run" } != nil)
            let start = Poll.now()
            daemon.signal(SIGTERM)
            let exit = try daemon.waitForExit(timeout: .seconds(8))
            #expect(exit.code == 5, "\(exit); \(daemon.logTail)")
            #expect(Poll.seconds(since: start) < 2 + 1 + 1 + 0.3)
        }
    }

    // Case 25: a second stop signal during a slow shutdown() skips the remaining waits (exit within 2.5 s); a third exits
    // at once. SIGINT behaves like SIGTERM.
    @Test(arguments: [SIGTERM, SIGINT])
    func case25_escalation(_ stopSignal: Int32) throws {
        try withSandbox { sandbox in
            let options = LaunchOptions.fixture([
                "FIXTURE_SHUTDOWN_SLEEP_SEC": "30", "DORY_SHUTDOWN_TIMEOUT_SEC": "20", "DORY_FINAL_SAVE_TIMEOUT_SEC": "5",
            ])
            // Second signal.
            var daemon = try sandbox.launch(options)
            try daemon.waitReady()
            daemon.signal(stopSignal)
            #expect(daemon.waitForLog { $0["fixture_hook"]?.string == "shutdown" } != nil)
            var start = Poll.now()
            daemon.signal(stopSignal)
            var exit = try daemon.waitForExit(timeout: .seconds(5))
            #expect(Poll.seconds(since: start) < 2.5, "second signal: exit after \(Poll.seconds(since: start)) s")
            #expect(exit.code == 0, "\(exit); \(daemon.logTail)")
            #expect(daemon.records.contains { $0["event"]?.string == "signal.escalate" && $0["level"]?.string == "warning" })
            #expect(try daemon.newestSnapshot().reason == "shutdown")

            // Third signal.
            daemon = try sandbox.launch(options)
            try daemon.waitReady()
            daemon.signal(stopSignal)
            #expect(daemon.waitForLog { $0["fixture_hook"]?.string == "shutdown" } != nil)
            daemon.signal(stopSignal)
            #expect(daemon.waitForEvent("signal.escalate") != nil)
            start = Poll.now()
            daemon.signal(stopSignal)
            exit = try daemon.waitForExit(timeout: .seconds(5))
            #expect(Poll.seconds(since: start) < 0.5, "third signal: exit after \(Poll.seconds(since: start)) s")
            #expect(exit.code == 0 || exit.code == 5, "\(exit)")
        }
    }

    // Case 26: run() returning → shutdown() called, shutdown snapshot, exit 0, journal end clean: true.
    @Test func case26_runReturning() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.fixture(["FIXTURE_RUN": "return"]))
            let exit = try daemon.waitForExit(timeout: .seconds(10))
            #expect(exit.code == 0, "\(exit); \(daemon.logTail)")
            #expect(daemon.hooks.contains("shutdown"))
            // The state did not change since the startup snapshot of this boot, so the reuse rule (§6.6) may name it.
            #expect(try daemon.finalSaveIsOnDisk(), "\(daemon.logTail)")
            let end = daemon.journal().last { $0["type"]?.string == "end" }
            #expect(end?["clean"]?.bool == true, "\(daemon.journal())")
            #expect(end?["exit_code"]?.int == 0)
        }
    }

    // Case 27: run() throwing → shutdown() called, snapshot attempted, exit 1; the next boot counts a crash.
    @Test func case27_runThrowing() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.fixture(["FIXTURE_RUN": "throw"]))
            let exit = try daemon.waitForExit(timeout: .seconds(10))
            #expect(exit.code == 1, "\(exit); \(daemon.logTail)")
            #expect(daemon.hooks.contains("shutdown"))
            #expect(try daemon.finalSaveIsOnDisk(), "no final save: \(daemon.logTail)")
            #expect(daemon.journal().last { $0["type"]?.string == "end" }?["clean"]?.bool == false)
            let next = try sandbox.launch(.fixture())
            let decision = next.waitForEvent("recovery.decision")
            #expect(decision?["crashes_in_window"]?.int == 1, "\(String(describing: decision))")
            #expect(try next.stop().code == 0)
        }
    }

    // Case 29: SIGTERM right after the first log line → exit 0, never 143. The window is narrow (a few percent of
    // boots under load), so this runs 20 rounds.
    @Test func case29_sigtermRightAfterTheFirstLine() throws {
        try withSandbox { sandbox in
            for round in 1...20 {
                var options = LaunchOptions.demo()
                options.waitForListening = false
                let daemon = try sandbox.launch(options)
                #expect(Poll.until(timeout: .seconds(10), interval: .microseconds(50)) { !daemon.lines.isEmpty })
                daemon.signal(SIGTERM)
                let exit = try daemon.waitForExit(timeout: .seconds(10))
                #expect(exit.code == 0 && exit.signal == nil, "round \(round): \(exit); \(daemon.logTail)")
            }
        }
    }

    // Case 16: function API with two state values → both survive a restart; two values with one name → exit 2 and no
    // new journal record.
    @Test func case16_functionAPI() throws {
        try withSandbox { sandbox in
            let first = try sandbox.launch(.fixture(["FIXTURE_FUNCTION_API": "1"]))
            try first.waitReady()
            #expect(Poll.until(timeout: .seconds(5)) { ((try? first.currentState())?["alpha"]?.int ?? 0) >= 3 })
            #expect(try first.stop().code == 0)
            let saved = try first.newestSnapshot().state
            let alpha = try #require(saved["alpha"]?.int, "\(saved)")
            #expect(saved["beta"]?.string?.hasPrefix("tick-") == true, "\(saved)")

            let second = try sandbox.launch(.fixture(["FIXTURE_FUNCTION_API": "1"]))
            try second.waitReady()
            let restored = try second.currentState()
            #expect((restored["alpha"]?.int ?? -1) >= alpha, "alpha \(String(describing: restored["alpha"])) < saved \(alpha)")
            #expect(try second.stop().code == 0)

            let journalBefore = second.journal().count
            var options = LaunchOptions.fixture(["FIXTURE_FUNCTION_API": "1", "FIXTURE_DUPLICATE_KEY": "1"])
            options.waitForListening = false
            let duplicate = try sandbox.launch(options)
            let exit = try duplicate.waitForExit()
            #expect(exit.code == 2, "\(exit)")
            #expect(duplicate.records.contains { $0["level"]?.string == "critical" && ($0["msg"]?.string ?? "").contains("alpha") ||
                ($0["error"]?["message"]?.string ?? "").contains("alpha") }, "the message does not name the key: \(duplicate.logTail)")
            #expect(duplicate.journal().count == journalBefore)
            #expect(duplicate.events("http.listening").isEmpty)
        }
    }
}

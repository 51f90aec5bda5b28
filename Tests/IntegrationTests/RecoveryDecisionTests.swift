import DoryState
import Glibc
import Testing

/// §12 "Journal and recovery" (cases 59–63, 65–67): the recovery decision of §8 from the journal of §7, against the
/// real `doryd-fixture`.
@Suite struct RecoveryDecisionTests {
    /// One clean boot (ready, then SIGTERM) that leaves a valid generation.
    static func cleanBoot(_ sandbox: Sandbox, _ environment: [String: String] = [:]) throws -> Daemon {
        let daemon = try sandbox.launch(.fixture(environment))
        try daemon.waitReady()
        let exit = try daemon.stop()
        guard exit.code == 0 else { throw Daemon.Failure(description: "seed boot: \(exit); \(daemon.logTail)") }
        return daemon
    }

    // Case 59: empty state dir → fresh/first_start, no restore, attempt 1 (restart count 0).
    @Test func case59_emptyStateDirIsAFirstStart() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.fixture())
            let decision = try daemon.decision()
            #expect(decision.strategy == "fresh" && decision.reason == "first_start", "\(decision)")
            #expect(decision.restartCount == 0 && decision.crashesInWindow == 0, "\(decision)")
            try daemon.waitReady()
            #expect(!daemon.hooks.contains("restoreState"), "\(daemon.hooks)")
            #expect(!daemon.hooks.contains("resetCaches"), "\(daemon.hooks)")
            let metrics = try daemon.metrics()
            #expect(metrics.value("dory_restart_count") == 0)
            #expect(metrics.value("dory_recovery_strategy_info", ["strategy": "fresh", "reason": "first_start"]) == 1)
            let boots = daemon.journal().filter { $0["type"]?.string == "boot" }
            #expect(boots.count == 1, "\(daemon.journal())")
            #expect(try daemon.stop().code == 0)
        }
    }

    // Case 60: a valid snapshot and no earlier boot of this pod UID → restore/pod_replacement.
    @Test func case60_newPodUIDRestoresAsPodReplacement() throws {
        try withSandbox { sandbox in
            _ = try Self.cleanBoot(sandbox, ["DORY_POD_UID": "uid-old"])
            let daemon = try sandbox.launch(.fixture(["DORY_POD_UID": "uid-new"]))
            let decision = try daemon.decision()
            #expect(decision.strategy == "restore" && decision.reason == "pod_replacement", "\(decision)")
            #expect(decision.restartCount == 0, "\(decision)")
            try daemon.waitReady()
            #expect(daemon.hooks.contains("restoreState"), "\(daemon.hooks)")
            #expect(!daemon.hooks.contains("resetCaches"), "\(daemon.hooks)")
            #expect(try daemon.stop().code == 0)
        }
    }

    // Case 61: one earlier clean boot of this pod UID, snapshot present → restore/normal_restart; resetCaches once,
    // before startup().
    @Test func case61_cleanRestartOfTheSamePodIsANormalRestart() throws {
        try withSandbox { sandbox in
            _ = try Self.cleanBoot(sandbox, ["DORY_POD_UID": "uid-a"])
            let daemon = try sandbox.launch(.fixture(["DORY_POD_UID": "uid-a"]))
            let decision = try daemon.decision()
            #expect(decision.strategy == "restore" && decision.reason == "normal_restart", "\(decision)")
            #expect(decision.restartCount == 1 && decision.crashesInWindow == 0, "\(decision)")
            try daemon.waitReady()
            let hooks = daemon.hooks
            #expect(hooks.filter { $0 == "resetCaches" }.count == 1, "\(hooks)")
            let reset = hooks.firstIndex(of: "resetCaches"), startup = hooks.firstIndex(of: "startup")
            #expect(reset != nil && startup != nil && reset! < startup!, "resetCaches must come before startup: \(hooks)")
            #expect(hooks.contains("restoreState"))
            #expect(try daemon.stop().code == 0)
        }
    }

    // Case 62: DORY_IS_MIGRATING=true with a snapshot → restore/migration; without one → fresh/migration_no_state (WARN).
    @Test func case62_migration() throws {
        try withSandbox { sandbox in
            _ = try Self.cleanBoot(sandbox)
            let daemon = try sandbox.launch(.fixture(["DORY_IS_MIGRATING": "true", "DORY_MIGRATED_FROM": "old-0"]))
            let decision = try daemon.decision()
            #expect(decision.strategy == "restore" && decision.reason == "migration", "\(decision)")
            try daemon.waitReady()
            #expect(daemon.hooks.contains("restoreState"))
            #expect(try daemon.stop().code == 0)
        }
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.fixture(["DORY_IS_MIGRATING": "true"]))
            let decision = try daemon.decision()
            #expect(decision.strategy == "fresh" && decision.reason == "migration_no_state", "\(decision)")
            #expect(decision.level == "warning", "\(decision.record)")
            try daemon.waitReady()
            #expect(!daemon.hooks.contains("restoreState"))
            #expect(try daemon.stop().code == 0)
        }
    }

    // Case 63 (and "4 clean restarts → still restoring"): six clean SIGTERM stop/start cycles → never golden; the
    // counter grows every time.
    @Test func case63_cleanCyclesNeverGoGolden() throws {
        try withSandbox { sandbox in
            var previous: Int64 = -1
            for cycle in 1...6 {
                // With a pod UID every earlier boot of the pod counts (§7), so a restart is `normal_restart`;
                // without one only boots since the last clean end count, and a clean restart reads as 0.
                let daemon = try sandbox.launch(.fixture(["DORY_POD_UID": "uid-case-63"]))
                let decision = try daemon.decision()
                #expect(decision.strategy != "golden_backoff" && decision.strategy != "golden_reset", "cycle \(cycle): \(decision)")
                if cycle > 1 {
                    #expect(decision.strategy == "restore" && decision.reason == "normal_restart", "cycle \(cycle): \(decision)")
                    #expect(decision.crashesInWindow == 0, "cycle \(cycle): \(decision)")
                }
                try daemon.waitReady()
                #expect(Poll.until(timeout: .seconds(5)) { ((try? daemon.currentState())?["counter"]?.int ?? -1) > previous },
                        "cycle \(cycle): the counter did not grow past \(previous)")
                let exit = try daemon.stop()
                #expect(exit.code == 0, "cycle \(cycle): \(exit)")
                let counter = try #require(try daemon.newestSnapshot().counter)
                #expect(counter > previous, "cycle \(cycle): saved counter \(counter) after \(previous)")
                previous = counter
            }
        }
    }

    // Case 65 (backoff table): crashes in window 4, 5 and 9 → backoff 20 s, 40 s and 300 s; a SIGTERM ends the wait.
    @Test(arguments: [(4, 20.0), (5, 40.0), (9, 300.0)])
    func case65_backoffGrowsWithTheCrashCount(_ crashes: Int, _ backoff: Double) throws {
        try withSandbox { sandbox in
            let ago = (0..<crashes).map { 50.0 - Double($0) * 5 }
            JournalForge.write(JournalForge.crashes(secondsAgo: ago), processorDir: sandbox.path("state/itest-pod"))
            let daemon = try sandbox.launch(.fixture())
            let decision = try daemon.decision()
            #expect(decision.strategy == "golden_backoff" && decision.reason == "rapid_restart", "\(decision)")
            #expect(decision.crashesInWindow == Int64(crashes), "\(decision)")
            #expect(decision.backoff == backoff, "\(decision)")
            #expect(daemon.hookRecords("onRapidRestartDetected").first?["crashes"]?.integer == Int64(crashes))
            #expect(daemon.waitForStatus("/healthz", 200))
            #expect(daemon.status("/ready") == 503)
            let metrics = try daemon.metrics()
            #expect(metrics.value("dory_recovery_backoff_seconds") == backoff)
            #expect(metrics.value("dory_crashes_in_window") == Double(crashes))
            let exit = try daemon.stop(timeout: .seconds(5))
            #expect(exit.code == 0, "\(exit)")
            #expect(!daemon.hooks.contains("startup"), "\(daemon.hooks)")
        }
    }

    // Case 65: RESTART_COUNT=3 → golden_backoff with 10 s; onRapidRestartDetected returning false → exit 6 at once,
    // startup() never called, nothing archived.
    @Test func case65_restartCountOverrideAndRefusal() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.fixture(["RESTART_COUNT": "3"]))
            let decision = try daemon.decision()
            #expect(decision.strategy == "golden_backoff" && decision.backoff == 10 && decision.crashesInWindow == 3, "\(decision)")
            #expect(daemon.waitForStatus("/healthz", 200))
            #expect(try daemon.stop(timeout: .seconds(5)).code == 0)
        }
        try withSandbox { sandbox in
            _ = try Self.cleanBoot(sandbox)
            let before = Files.list(sandbox.path("state/itest-pod/snapshots"))
            #expect(!before.isEmpty)
            var options = LaunchOptions.fixture(["RESTART_COUNT": "3", "FIXTURE_RAPID_HOOK": "false"])
            options.waitForListening = false
            let daemon = try sandbox.launch(options)
            let start = Poll.now()
            let exit = try daemon.waitForExit(timeout: .seconds(10))
            #expect(exit.code == 6, "\(exit); \(daemon.logTail)")
            #expect(Poll.seconds(since: start) < 3, "exit 6 took \(Poll.seconds(since: start)) s")
            #expect(daemon.hookRecords("onRapidRestartDetected").count == 1)
            #expect(!daemon.hooks.contains("startup") && !daemon.hooks.contains("resetCaches"), "\(daemon.hooks)")
            #expect(Files.list(daemon.snapshotsDir) == before, "snapshots moved although the hook refused")
            #expect(Files.list(daemon.archiveDir).isEmpty, "archived although the hook refused: \(Files.list(daemon.archiveDir))")
            #expect(daemon.events("http.listening").isEmpty)
            #expect(daemon.journal().last { $0["type"]?.string == "end" }?["exit_code"]?.int == 6)
        }
    }

    // Case 66: DORY_HEALTHY_AFTER_SEC=2: crashes, a boot healthy for 2 s, one more crash → crashes_in_window 1.
    @Test func case66_healthyRecordEndsTheStreak() throws {
        try withSandbox { sandbox in
            let options = LaunchOptions.fixture(["DORY_HEALTHY_AFTER_SEC": "2"])
            _ = try Daemon.crashAfterReady(sandbox, options)
            _ = try Daemon.crashAfterReady(sandbox, options)
            let healthy = try sandbox.launch(options)
            try healthy.waitReady()
            #expect(try healthy.decision().crashesInWindow == 2)
            #expect(healthy.waitForEvent("journal.healthy", timeout: .seconds(6)) != nil, "no healthy record: \(healthy.logTail)")
            #expect(Poll.until(timeout: .seconds(2)) { healthy.journal().contains { $0["type"]?.string == "healthy" } })
            // §7: after the healthy record the streak is over and dory_crashes_in_window drops to 0.
            #expect(try healthy.metrics().value("dory_crashes_in_window") == 0)
            healthy.kill9()
            _ = try Daemon.crashAfterReady(sandbox, options)
            let daemon = try sandbox.launch(options)
            let decision = try daemon.decision()
            #expect(decision.crashesInWindow == 1, "\(decision)")
            #expect(decision.strategy == "restore", "\(decision)")
            #expect(try daemon.metrics().value("dory_crashes_in_window") == 1)
            #expect(try daemon.stop().code == 0)
        }
    }

    // Case 66: three crashes spread over ten minutes (window 60 s) → no rapid restart.
    @Test func case66_crashesSpreadOverTenMinutesAreNoRapidRestart() throws {
        try withSandbox { sandbox in
            JournalForge.write(JournalForge.crashes(secondsAgo: [600, 400, 200]), processorDir: sandbox.path("state/itest-pod"))
            let daemon = try sandbox.launch(.fixture())
            let decision = try daemon.decision()
            #expect(decision.strategy != "golden_backoff" && decision.strategy != "golden_reset", "\(decision)")
            #expect(decision.crashesInWindow == 1, "only the crash dated by this boot is in the window: \(decision)")
            #expect(decision.restartCount == 3, "\(decision)")
            #expect(decision.reason == "restart_without_state", "\(decision)")
            try daemon.waitReady()
            #expect(try daemon.stop().code == 0)
        }
    }

    // Case 67: boots of another pod UID → not counted; with no UID at all → the boots since the last clean end count.
    @Test func case67_podIdentityScopesTheCount() throws {
        try withSandbox { sandbox in
            for _ in 1...3 { _ = try Daemon.crashAfterReady(sandbox, .fixture(["DORY_POD_UID": "uid-a"])) }
            let other = try sandbox.launch(.fixture(["DORY_POD_UID": "uid-b"]))
            let otherDecision = try other.decision()
            #expect(otherDecision.crashesInWindow == 0 && otherDecision.restartCount == 0, "\(otherDecision)")
            #expect(otherDecision.strategy == "restore" && otherDecision.reason == "pod_replacement", "\(otherDecision)")
            try other.waitReady()
            #expect(try other.stop().code == 0)

            for _ in 1...2 { _ = try Daemon.crashAfterReady(sandbox, .fixture()) }
            let daemon = try sandbox.launch(.fixture())
            let decision = try daemon.decision()
            #expect(decision.restartCount == 2 && decision.crashesInWindow == 2, "\(decision)")
            #expect(decision.strategy == "restore" && decision.reason == "normal_restart", "\(decision)")
            #expect(try daemon.stop().code == 0)
        }
    }
}

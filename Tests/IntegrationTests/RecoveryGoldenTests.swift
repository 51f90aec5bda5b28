import DoryState
import Glibc
import Testing

/// §12 case 64 and issue 3's "crash loop of 3 kills inside the window → golden reset with backoff 10 s", at the real
/// default backoff of 10 s.
@Suite struct RecoveryGoldenTests {
    @Test func case64_threeKillsMakeTheFourthBootAGoldenBackoff() throws {
        try withSandbox { sandbox in
            // Boot 1 saves a counter above 0, then all three boots are SIGKILLed after ready.
            let first = try sandbox.launch(.fixture())
            try first.waitReady()
            #expect(Poll.until(timeout: .seconds(5)) { ((try? first.currentState())?["counter"]?.int ?? 0) >= 3 })
            let before = first.saved().compactMap(\.generation).max() ?? 0
            first.signal(SIGUSR1)
            #expect(first.waitForSave(after: before) != nil, "no sigusr1 save: \(first.logTail)")
            first.kill9()
            _ = try Daemon.crashAfterReady(sandbox, .fixture())
            _ = try Daemon.crashAfterReady(sandbox, .fixture())
            let oldFiles = Files.list(sandbox.path("state/itest-pod/snapshots")).filter(Snapshots.isGenerationName)
            let oldCounter = try #require(try Snapshots.decode(
                path: sandbox.path("state/itest-pod/snapshots/") + oldFiles.last!, sandbox: sandbox).counter)
            #expect(oldCounter >= 3)

            // Boot 4.
            let notify = try NotifySocket(path: sandbox.path("notify.sock"))
            defer { notify.close() }
            let daemon = try sandbox.launch(.fixture(["NOTIFY_SOCKET": notify.path]))
            let decision = try daemon.decision()
            #expect(decision.strategy == "golden_backoff" && decision.reason == "rapid_restart", "\(decision)")
            #expect(decision.crashesInWindow == 3 && decision.backoff == 10, "\(decision)")
            #expect(decision.level == "warning")
            let rapid = daemon.hookRecords("onRapidRestartDetected")
            #expect(rapid.count == 1 && rapid.first?["crashes"]?.integer == 3, "onRapidRestartDetected(3) not logged: \(rapid)")

            // During the backoff: alive, not ready, decision visible everywhere, old files archived.
            let readyWatch = StatusWatcher(port: daemon.port, path: "/ready")
            let healthWatch = StatusWatcher(port: daemon.port, path: "/healthz")
            #expect(daemon.waitForLog { $0["event"]?.string == "lifecycle.phase" && $0["phase"]?.string == "backoff" } != nil)
            let verbose = try daemon.get("/healthz?verbose")
            #expect(verbose.status == 200)
            #expect(verbose.text.contains("golden"), "\(verbose.text)")
            #expect(verbose.text.contains("strategy=golden_backoff") && verbose.text.contains("crashes=3"), "\(verbose.text)")
            let metrics = try daemon.metrics()
            #expect(metrics.value("dory_recovery_strategy_info", ["strategy": "golden_backoff", "reason": "rapid_restart"]) == 1)
            #expect(metrics.value("dory_recovery_backoff_seconds") == 10)
            #expect(metrics.value("dory_crashes_in_window") == 3)
            #expect(metrics.value("dory_phase", ["phase": "backoff"]) == 1)
            #expect(metrics.value("dory_ready") == 0)
            #expect(Poll.until(timeout: .seconds(3)) { notify.lines.filter { $0.hasPrefix("STATUS=") }.contains { $0.contains("golden") } },
                    "no STATUS= naming golden: \(notify.lines.filter { $0.hasPrefix("STATUS=") })")
            #expect(notify.lines.filter { $0.hasPrefix("STATUS=") }.contains { $0.contains("backoff") }, "\(notify.lines.filter { $0.hasPrefix("STATUS=") })")
            let archives = Files.list(daemon.archiveDir)
            #expect(archives.count == 1, "\(archives)")
            if let archive = archives.first {
                #expect(archive.wholeMatch(of: /\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}/) != nil, "archive name \(archive)")
                #expect(archive.hasSuffix("-" + String((daemon.bootId ?? "").prefix(8))), "\(archive) vs boot \(daemon.bootId ?? "?")")
                #expect(Files.list(daemon.archiveDir + "/" + archive) == oldFiles, "archived \(Files.list(daemon.archiveDir + "/" + archive)) vs \(oldFiles)")
            }
            #expect(daemon.generations().isEmpty, "snapshots/ not emptied: \(daemon.generations())")
            #expect(!daemon.hooks.contains("startup"))

            // After the wait: ready with the default state.
            try daemon.waitReady(timeout: .seconds(20))
            let readySeen = readyWatch.stop()
            let healthSeen = healthWatch.stop()
            #expect(healthSeen.allSatisfy { $0.status == 200 }, "/healthz during the backoff: \(Set(healthSeen.compactMap(\.status)))")
            let decidedAt = WallClock.parseRFC3339(decision.record["ts"]?.string ?? "") ?? 0
            let readyAt = WallClock.parseRFC3339(daemon.events("lifecycle.ready").first?["ts"]?.string ?? "") ?? 0
            #expect(readyAt - decidedAt >= 9_900, "ready \(readyAt - decidedAt) ms after the decision, expected a 10 s wait")
            let firstOK = readySeen.firstIndex { $0.status == 200 }
            #expect(readySeen.prefix(upTo: firstOK ?? readySeen.endIndex).allSatisfy { $0.status == 503 || $0.status == nil },
                    "/ready during the backoff: \(Set(readySeen.compactMap(\.status)))")
            let hooks = daemon.hooks
            #expect(hooks.starts(with: ["onRapidRestartDetected", "resetCaches", "startup"]), "\(hooks)")
            #expect(!hooks.contains("restoreState"), "\(hooks)")
            let startupSave = daemon.saved(reason: "startup").first
            let generation = try #require(startupSave?.generation, "no startup snapshot: \(daemon.logTail)")
            let startupSnapshot = try daemon.snapshot(generation)
            #expect(startupSnapshot.counter == 0, "counter not reset: \(startupSnapshot.state)")
            #expect(startupSnapshot.envelope["strategy"]?.string == "golden_backoff")
            #expect(try daemon.stop().code == 0)
        }
    }

    // Case 65 with a smaller base: DORY_BACKOFF_BASE_SEC=0.5 and four crashes in the window → 0.5 · 2^(4−3) = 1 s,
    // really waited with /ready 503, then a golden start.
    @Test func case65_smallerBaseIsReallyWaited() throws {
        try withSandbox { sandbox in
            JournalForge.write(JournalForge.crashes(secondsAgo: [40, 30, 20, 10]), processorDir: sandbox.path("state/itest-pod"))
            let daemon = try sandbox.launch(.fixture(["DORY_BACKOFF_BASE_SEC": "0.5"]))
            let decision = try daemon.decision()
            #expect(decision.strategy == "golden_backoff" && decision.backoff == 1, "\(decision)")
            let watcher = StatusWatcher(port: daemon.port, path: "/ready")
            try daemon.waitReady(timeout: .seconds(10))
            let seen = watcher.stop()
            let decidedAt = WallClock.parseRFC3339(decision.record["ts"]?.string ?? "") ?? 0
            let readyAt = WallClock.parseRFC3339(daemon.events("lifecycle.ready").first?["ts"]?.string ?? "") ?? 0
            #expect(readyAt - decidedAt >= 990 && readyAt - decidedAt < 4000, "ready \(readyAt - decidedAt) ms after the decision")
            #expect(seen.compactMap(\.status).first == 503, "\(seen.compactMap(\.status).prefix(5))")
            #expect(daemon.hooks.starts(with: ["onRapidRestartDetected", "resetCaches", "startup"]), "\(daemon.hooks)")
            #expect(try daemon.stop().code == 0)
        }
    }
}

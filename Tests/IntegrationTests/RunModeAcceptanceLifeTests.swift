import DoryHTTP
import DoryState
import Glibc
import Testing

extension RunModeTests {
    /// Readiness, heartbeat, snapshots and in-pod restarts (spec/supervise.md §12 cases 39, 40, 43–48, 52–55).
    @Suite("Run mode acceptance: readiness, snapshots and restarts")
    struct RunModeAcceptanceLifeTests {
        static func api(_ args: String) -> String { "curl -fsS --unix-socket \"$DORY_CONTROL_SOCKET\" \(args) >/dev/null" }

        @Test("case 39: --ready=api: /ready 503 until the child POSTs /v1/ready, READY=1 once after; POST /v1/ready in draining → 409")
        func case39_apiReadiness() throws {
            try withSandbox { sandbox in
                let go = sandbox.path("go")
                let notify = try NotifySocket(path: sandbox.path("n.sock"))
                defer { notify.close() }
                let script = "while [ ! -e \(go) ]; do sleep 0.02; done; \(Self.api("-X POST http://dory/v1/ready")); exec sleep 300"
                let daemon = try sandbox.launchRun(.sh(script, options: ["--ready=api"], environment: ["NOTIFY_SOCKET": sandbox.path("n.sock"),
                                                                                                        "DORY_PRESTOP_DRAIN_SEC": "0"]))
                let watcher = StatusWatcher(port: daemon.port, path: "/ready")
                #expect(Poll.until(timeout: .seconds(5)) { watcher.statuses().count >= 5 })
                #expect(!notify.lines.contains("READY=1"))
                sandbox.write("go", "")
                try daemon.waitReady()
                let seen = watcher.stop().compactMap(\.status)
                #expect(seen.first == 503 && seen.last == 200, "\(seen)")
                #expect(Poll.until(timeout: .seconds(5)) { notify.lines.contains("READY=1") })
                #expect(notify.lines.filter { $0 == "READY=1" }.count == 1)
                #expect(try daemon.get("/prestop").status == 200)
                let late = try daemon.control("POST", "/v1/ready")
                #expect(late.status == 409, "\(late.text)")
                #expect(JSON.object(late.body)?["error"]?.string == "shutting_down")
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("case 40: --ready=api with no POST: TERM at the startup deadline, exit 3, /ready never 200")
        func case40_readinessDeadline() throws {
            try withSandbox { sandbox in
                let log = sandbox.path("f")
                let script = "trap 'echo TERM >> \(log); exit 0' TERM; \(Acceptance.idle)"
                let start = Poll.now()
                let daemon = try sandbox.launchRun(.sh(script, options: ["--ready=api"], environment: ["DORY_STARTUP_TIMEOUT_SEC": "1"]))
                let watcher = StatusWatcher(port: daemon.port, path: "/ready")
                let status = try daemon.waitForExit()
                let elapsed = Poll.seconds(since: start)
                #expect(!watcher.stop().contains { $0.status == 200 })
                #expect(status.code == 3, "\(daemon.logTail)")
                #expect(elapsed >= 0.9 && elapsed < 3, "took \(elapsed)s")
                #expect(Acceptance.lines(log) == ["TERM"])
                #expect(!daemon.events("child.not_ready").isEmpty)
                #expect(daemon.lastEndRecord?["clean"]?.bool == false)
            }
        }

        @Test("case 43: heartbeats keep /healthz 200; without them child_heartbeat fails; they make it pass again; no signal")
        func case43_heartbeat() throws {
            try withSandbox { sandbox in
                let pause = sandbox.path("pause")
                let log = sandbox.path("signals")
                var script = ""
                let beats = sandbox.path("beats")
                for name in ["HUP", "INT", "QUIT", "USR1", "USR2"] { script += "trap 'echo \(name) >> \(log)' \(name); " }
                script += "trap 'exit 0' TERM; while :; do [ -e \(pause) ] || { \(Self.api("-X POST http://dory/v1/heartbeat")); echo b >> \(beats); }; sleep 0.3 & wait $!; done"
                let daemon = try sandbox.launchRun(.sh(script, options: ["--heartbeat-timeout=1"]))
                try daemon.waitReady()
                let watcher = StatusWatcher(port: daemon.port, path: "/healthz")
                #expect(Poll.until(timeout: .seconds(5)) { (try? daemon.metrics().value("dory_child_heartbeat_age_seconds")) != nil })
                #expect(Poll.until(timeout: .seconds(5)) { Acceptance.lines(beats).count >= 6 })
                sandbox.write("pause", "")
                let paused = Poll.now()
                #expect(Poll.until(timeout: .seconds(3)) { daemon.status("/healthz") == 503 })
                #expect(Poll.seconds(since: paused) < 1.0 + 0.3 + 0.5, "took \(Poll.seconds(since: paused))s")
                let before = watcher.stop()
                #expect(before.filter { $0.at < paused }.allSatisfy { $0.status == 200 }, "\(before.map(\.status))")
                let verbose = try daemon.get("/healthz?verbose").text
                #expect(verbose.contains("[-]child_heartbeat"), "\(verbose)")
                unlink(pause)
                #expect(Poll.until(timeout: .seconds(3)) { daemon.status("/healthz") == 200 })
                #expect(Acceptance.lines(log).isEmpty)
                #expect(try daemon.stop().code == 0)
            }
        }

        @Test("case 44: --ready=notify with a heartbeat timeout gives the child WATCHDOG_USEC and no WATCHDOG_PID")
        func case44_watchdogEnvironment() throws {
            try withSandbox { sandbox in
                let out = sandbox.path("env")
                let daemon = try sandbox.launchRun(.sh("env > \(out).tmp; mv \(out).tmp \(out); exec sleep 300",
                                                       options: ["--ready=notify", "--heartbeat-timeout=2"], environment: ["WATCHDOG_PID": "1"]))
                #expect(Poll.until(timeout: .seconds(5)) { Files.exists(out) }, "\(daemon.logTail)")
                let env = Acceptance.lines(out)
                #expect(env.contains("WATCHDOG_USEC=2000000"), "\(env)")
                #expect(!env.contains { $0.hasPrefix("WATCHDOG_PID=") })
                #expect(env.contains { $0.hasPrefix("NOTIFY_SOCKET=") })
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("case 45: SIGUSR1 writes the slot once (sigusr1), then skips while unchanged; before any PUT nothing is written")
        func case45_usr1() throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchRun(RunLaunch(["sleep", "300"]))
                try daemon.waitReady()
                func usr1(_ result: String) -> Double { (try? daemon.metrics().value("dory_snapshots_total", ["reason": "sigusr1", "result": result])) ?? 0 }
                daemon.signal(SIGUSR1)
                #expect(Poll.until(timeout: .seconds(3)) {
                    ((try? daemon.metrics().samples("dory_signals_received_total"))?.reduce(0) { $0 + $1.value } ?? 0) >= 1
                })
                #expect(daemon.generations().isEmpty)
                #expect(try daemon.control("PUT", "/v1/state?sync=0", body: #"{"n":5}"#).status == 202)
                let start = Poll.now()
                daemon.signal(SIGUSR1)
                #expect(Poll.until(timeout: .seconds(3)) { !daemon.saved(reason: "sigusr1").isEmpty }, "\(daemon.logTail)")
                #expect(Poll.seconds(since: start) < 1.2)
                #expect(try daemon.newestSnapshot().state == ["n": .int(5)])
                let files = daemon.generations()
                let skippedBefore = usr1("skipped")
                daemon.signal(SIGUSR1)
                #expect(Poll.until(timeout: .seconds(3)) { usr1("skipped") > skippedBefore })
                #expect(daemon.generations() == files)
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("cases 46, 47: /prestop saves the pushed slot without signalling the child; phase draining; with no PUT it confirms the restored generation")
        func case46_47_prestop() throws {
            try withSandbox { sandbox in
                let log = sandbox.path("signals")
                let pidFile = sandbox.path("pid")
                var script = "echo $$ >> \(pidFile); "
                for name in ["HUP", "INT", "QUIT", "USR1", "USR2", "WINCH"] { script += "trap 'echo \(name) >> \(log)' \(name); " }
                script += "trap 'echo TERM >> \(log); exit 0' TERM; " + Acceptance.idle
                let environment = ["DORY_PRESTOP_DRAIN_SEC": "0"]
                let first = try sandbox.launchRun(.sh(script, environment: environment))
                try first.waitReady()
                #expect(try first.control("PUT", "/v1/state?sync=0", body: #"{"n":46}"#).status == 202)
                let prestop = try first.get("/prestop")
                #expect(prestop.status == 200, "\(prestop.text)")
                #expect(first.status("/ready") == 503)
                let generation = try #require(JSON.object(prestop.body)?["generation"]?.int)
                #expect(try first.snapshot(UInt64(generation)).state == ["n": .int(46)])
                #expect(Acceptance.lines(log).isEmpty)
                #expect(JSON.object(try first.control("GET", "/v1/context").body)?["phase"]?.string == "draining")
                #expect(Acceptance.lines(pidFile).count == 1)
                #expect(try first.stop().code == 0)
                #expect(Acceptance.lines(log) == ["TERM"])
                let final = try #require(first.generations().last)
                #expect(final >= UInt64(generation))

                // Case 47: the next boot restores that generation; /prestop with no PUT confirms it, writing nothing.
                let files = first.generations()
                let second = try sandbox.launchRun(.sh(script, environment: environment))
                try second.waitReady()
                let again = try second.get("/prestop")
                #expect(again.status == 200, "\(again.text)")
                #expect(JSON.object(again.body)?["generation"]?.int == Int64(final))
                #expect(second.generations() == files)
                #expect(try second.stop().code == 0)
            }
        }

        @Test("case 48: the interval writes the pushed slot once, then only skips while nothing changes")
        func case48_interval() throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchRun(RunLaunch(["sleep", "300"], environment: ["DORY_SNAPSHOT_INTERVAL_SEC": "0.5"]))
                try daemon.waitReady()
                #expect(try daemon.control("PUT", "/v1/state?sync=0", body: #"{"n":48}"#).status == 202)
                let start = Poll.now()
                #expect(Poll.until(timeout: .seconds(3)) { !daemon.saved(reason: "interval").isEmpty }, "\(daemon.logTail)")
                #expect(Poll.seconds(since: start) < 1.2)
                #expect(try daemon.newestSnapshot().state == ["n": .int(48)])
                let files = daemon.generations()
                func skipped() -> Double { (try? daemon.metrics().value("dory_snapshots_total", ["reason": "interval", "result": "skipped"])) ?? 0 }
                let before = skipped()
                #expect(Poll.until(timeout: .seconds(3)) { skipped() >= before + 2 })
                #expect(daemon.generations() == files)
                #expect(daemon.saved(reason: "interval").count == 1)
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("case 52: the restart budget: spawns at about 0, 1 and 3 s, then restart budget spent and exit 3, not clean")
        func case52_budget() throws {
            try withSandbox { sandbox in
                let start = Poll.now()
                let daemon = try sandbox.launchRun(.sh("exit 3", options: ["--restart=on-failure", "--restart-budget=2"]))
                #expect(try daemon.waitForExit(timeout: .seconds(20)).code == 3, "\(daemon.logTail)")
                let starts = daemon.records.filter { $0["msg"]?.string == "child started" }
                #expect(starts.count == 3)
                #expect(daemon.events("child.restart").count == 2)
                #expect(daemon.records.contains { $0["event"]?.string == "child.restart_budget_spent" && $0["level"]?.string == "error" })
                #expect(daemon.lastEndRecord?["clean"]?.bool == false)
                #expect(Poll.seconds(since: start) >= 2.8, "restart delays 1 s and 2 s")
            }
        }

        @Test("case 53: --restart=on-failure never restarts exit 0, a listed status or a spawn failure",
              arguments: [(["/bin/sh", "-c", "exit 0"], [String](), Int32(0)), (["/bin/sh", "-c", "exit 4"], ["--success-exit-codes=0,4"], Int32(0)),
                          (["/no/such/file"], [String](), Int32(127))])
        func case53_noRestart(_ command: [String], _ options: [String], _ exit: Int32) throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchRun(RunLaunch(command, options: ["--restart=on-failure"] + options))
                #expect(try daemon.waitForExit().code == exit, "\(daemon.logTail)")
                #expect(daemon.events("child.restart").isEmpty)
            }
        }

        @Test("case 54: SIGTERM during the restart delay: no new child; the last child's status; clean boot")
        func case54_termInRestartDelay() throws {
            try withSandbox { sandbox in
                let count = sandbox.path("count")
                let daemon = try sandbox.launchRun(.sh("echo x >> \(count); exit 1", options: ["--restart=on-failure"]))
                #expect(daemon.waitForEvent("child.restart") != nil, "\(daemon.logTail)")
                daemon.signal(SIGTERM)
                #expect(try daemon.waitForExit().code == 1, "\(daemon.logTail)")
                #expect(Acceptance.lines(count).count == 1)
                #expect(daemon.lastEndRecord?["clean"]?.bool == true, "\(daemon.journal())")
            }
        }

        @Test("case 55: the next child is spawned only after the failed child's TERM-ignoring grandchild was killed at B")
        func case55_noOverlap() throws {
            try withSandbox { sandbox in
                let marker = sandbox.path("failed")
                let g = sandbox.path("g")
                let script = "if [ ! -e \(marker) ]; then setsid sh -c 'trap \"\" TERM; touch \(g); exec sleep 300' & while [ ! -e \(g) ]; do sleep 0.02; done; touch \(marker); exit 1; fi; exec sleep 300"
                let daemon = try sandbox.launchRun(.sh(script, options: ["--restart=on-failure"]))
                #expect(Poll.until(timeout: .seconds(10)) { daemon.records.filter { $0["msg"]?.string == "child started" }.count == 2 }, "\(daemon.logTail)")
                let messages = daemon.records.compactMap { $0["msg"]?.string }
                let killed = try #require(messages.firstIndex(of: "killed descendants at the deadline"), "\(daemon.logTail)")
                let secondStart = try #require(messages.indices.filter { messages[$0] == "child started" }.last)
                #expect(killed < secondStart)
                #expect(try daemon.stop().code == 143)
            }
        }
    }
}

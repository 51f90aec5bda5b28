import DoryState
import Glibc
import Testing

extension RunModeTests {
    /// Signals, the stop sequence and reaping in `doryd run` (spec/supervise.md §3, §5, §12 cases 14, 18, 22, 23).
    @Suite("Run mode: signals and processes")
    struct RunModeProcessTests {
        /// The pids of the processes whose parent is `pid`, with their state letter.
        static func children(of pid: pid_t) -> [(pid: pid_t, state: Character)] {
            Files.list("/proc").compactMap { name -> (pid_t, Character)? in
                guard let child = pid_t(name), let bytes = Files.read("/proc/\(name)/stat") else { return nil }
                let text = String(decoding: bytes, as: UTF8.self)
                guard let close = text.lastIndex(of: ")") else { return nil }
                let fields = text[text.index(after: close)...].split(separator: " ")
                guard fields.count > 2, let ppid = pid_t(fields[1]), ppid == pid, let state = fields[0].first else { return nil }
                return (child, state)
            }
        }

        @Test("SIGTERM: a child that dies by TERM → 143, journal clean (runtime case 87); with 0,143 mapped → 0")
        func sigtermCleanBoot() throws {
            for (options, expected) in [([String](), Int32(143)), (["--success-exit-codes=0,143"], Int32(0))] {
                try withSandbox { sandbox in
                    let daemon = try sandbox.launchRun(RunLaunch(["sleep", "1000"], options: options))
                    try daemon.waitReady()
                    let status = try daemon.stop()
                    #expect(status.code == expected, "\(daemon.logTail)")
                    #expect(daemon.lastEndRecord?["clean"]?.bool == true, "\(daemon.journal())")
                    #expect(daemon.exitLine?["child_status"]?.int == 143)
                }
            }
        }

        @Test("the stop signal reaches the whole process group: every member ends on TERM, nothing is killed")
        func groupSignal() throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchRun(.sh("sleep 300 & sleep 300 & wait"))
                try daemon.waitReady()
                #expect(Poll.until(timeout: .seconds(5)) { Self.children(of: daemon.pid).count == 1 })
                let start = Poll.now()
                let status = try daemon.stop()
                #expect(status.code == 143, "\(daemon.logTail)")
                #expect(Poll.seconds(since: start) < 1.9)
                #expect(!daemon.records.contains { $0["msg"]?.string == "killed descendants at the deadline" })
            }
        }

        @Test("a child ignoring SIGTERM is SIGKILLed at the deadline: one WARN, exit 137, clean boot")
        func killedAtDeadline() throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchRun(.sh("trap '' TERM; while :; do sleep 1; done"))
                try daemon.waitReady()
                let start = Poll.now()
                let status = try daemon.stop()
                let elapsed = Poll.seconds(since: start)
                #expect(status.code == 137, "\(daemon.logTail)")
                #expect(elapsed >= 1.9 && elapsed < 2 + 1 + 1.5, "took \(elapsed)s")
                let warnings = daemon.records.filter { $0["msg"]?.string == "killed descendants at the deadline" }
                #expect(warnings.count == 1)
                #expect(daemon.lastEndRecord?["clean"]?.bool == true)
            }
        }

        @Test("a second SIGTERM kills the group at once")
        func escalation() throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchRun(.sh("trap '' TERM; while :; do sleep 1; done"))
                try daemon.waitReady()
                let start = Poll.now()
                daemon.signal(SIGTERM)
                _ = daemon.waitForEvent("lifecycle.phase") { $0["phase"]?.string == "stopping" }
                daemon.signal(SIGTERM)
                let status = try daemon.waitForExit()
                #expect(status.code == 137)
                #expect(Poll.seconds(since: start) < 1.9)
            }
        }

        @Test("an orphaned grandchild is re-parented to doryd and reaped; no zombie remains")
        func orphanReaped() throws {
            try withSandbox { sandbox in
                let marker = sandbox.path("grandchild-done")
                let daemon = try sandbox.launchRun(.sh("(sh -c 'touch \(marker)' &); exec sleep 300"))
                try daemon.waitReady()
                #expect(Poll.until(timeout: .seconds(5)) { Files.exists(marker) })
                #expect(Self.waitForOrphanReaped(daemon), "\(daemon.logTail)")
                #expect(Poll.until(timeout: .seconds(3)) { !Self.children(of: daemon.pid).contains { $0.state == "Z" } })
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("SIGHUP is forwarded to the group; SIGUSR1 only with --forward-usr1")
        func forwarding() throws {
            for (options, usr1) in [([String](), false), (["--forward-usr1"], true)] {
                try withSandbox { sandbox in
                    let log = sandbox.path("signals")
                    let script = "trap 'echo HUP >> \(log)' HUP; trap 'echo USR1 >> \(log)' USR1; trap 'exit 0' TERM; touch \(log).ready; while :; do sleep 0.1; done"
                    let daemon = try sandbox.launchRun(.sh(script, options: options))
                    try daemon.waitReady()
                    #expect(Poll.until(timeout: .seconds(5)) { Files.exists(log + ".ready") })
                    daemon.signal(SIGHUP)
                    #expect(Poll.until(timeout: .seconds(5)) { Self.lines(log).contains("HUP") })
                    daemon.signal(SIGUSR1)
                    if usr1 {
                        #expect(Poll.until(timeout: .seconds(5)) { Self.lines(log).contains("USR1") })
                    } else {
                        daemon.signal(SIGHUP)  // a second HUP after USR1 orders the check: USR1 would have come first
                        #expect(Poll.until(timeout: .seconds(5)) { Self.lines(log).filter { $0 == "HUP" }.count == 2 })
                        #expect(!Self.lines(log).contains("USR1"))
                    }
                    #expect(try daemon.stop().code == 0)
                }
            }
        }

        static func waitForOrphanReaped(_ daemon: Daemon) -> Bool {
            Poll.until(timeout: .seconds(5)) {
                guard let metrics = try? daemon.metrics() else { return false }
                return (metrics.value("dory_reaped_total", ["kind": "orphan"]) ?? 0) >= 1
            }
        }

        static func lines(_ path: String) -> [String] {
            Files.read(path).map { String(decoding: $0, as: UTF8.self).split(separator: "\n").map(String.init) } ?? []
        }
    }
}

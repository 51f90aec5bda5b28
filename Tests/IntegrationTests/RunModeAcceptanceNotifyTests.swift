import DoryState
import Glibc
import Testing

/// Sends one datagram from the test process itself (a live process of doryd's UID that is not its descendant).
func sendDatagram(_ text: String, to path: String) -> Bool {
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (index, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[index] = byte }
    }
    let bytes = Array(text.utf8)
    let sent = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    return sent == bytes.count
}

extension RunModeTests {
    /// Readiness modes, the notify bridge, the held-back watchdog, pending restarts and stop/start cycles
    /// (spec/supervise.md §12 cases 38, 41, 42, 44, 50; §7.2, §7.4, §9).
    @Suite("Run mode acceptance: notify, watchdog and restarts")
    struct RunModeAcceptanceNotifyTests {
        /// Python that sends `$1…` lines to the child's `NOTIFY_SOCKET` (abstract names included).
        static let notifyPrelude = """
        import os, signal, socket, sys, time
        address = os.environ["NOTIFY_SOCKET"]
        if address.startswith("@"): address = "\\0" + address[1:]
        def notify(text):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.sendto(text.encode(), address)
            s.close()
        def wait_for(path):
            while not os.path.exists(path): time.sleep(0.02)

        """

        static func wallSeconds(_ record: JSONObject?) -> Double? {
            (record?["ts"]?.string).flatMap(WallClock.parseRFC3339).map { Double($0) / 1000 }
        }

        static func wallNow() -> Double {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
        }

        @Test("case 38: --ready=started: /ready 200 within 100 ms of the child started line")
        func case38_startedReadiness() throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchRun(RunLaunch(["sleep", "300"]))
                var last503: Double?
                var first200: Double?
                #expect(Poll.until(timeout: .seconds(10), interval: .milliseconds(5)) {
                    let status = daemon.status("/ready")
                    if status == 200 { first200 = Self.wallNow(); return true }
                    last503 = Self.wallNow()
                    return false
                }, "\(daemon.logTail)")
                let started = try #require(Self.wallSeconds(daemon.records.first { $0["msg"]?.string == "child started" }))
                let ready = try #require(Self.wallSeconds(daemon.events("lifecycle.ready").first))
                #expect(ready - started <= 0.1 + 0.2, "ready line \(ready - started)s after child started")
                if let last503, let first200, last503 >= started {
                    // The switch to 200 was observed: it lies between the last 503 and the first 200.
                    #expect(last503 - started <= 0.1 + 0.2, "still 503 \(last503 - started)s after child started")
                    #expect(first200 >= started)
                }
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("case 41: --ready=notify: STATUS=warming shows on /healthz?verbose and reaches doryd's own NOTIFY_SOCKET; READY=1 makes /ready 200")
        func case41_notifyStatusAndReady() throws {
            try withSandbox { sandbox in
                let go = sandbox.path("go")
                let harness = try NotifySocket(path: sandbox.path("n.sock"))
                defer { harness.close() }
                let script = Self.notifyPrelude + """
                notify("STATUS=warming")
                wait_for("\(go)")
                notify("READY=1")
                time.sleep(300)
                """
                let daemon = try sandbox.launchRun(RunLaunch(["python3", "-c", script], options: ["--ready=notify"],
                                                             environment: ["NOTIFY_SOCKET": harness.path]))
                #expect(Poll.until(timeout: .seconds(10)) { ((try? daemon.get("/healthz?verbose"))?.text ?? "").contains("status=\"warming\"") },
                        "\(daemon.logTail)")
                #expect(daemon.status("/ready") == 503)
                sandbox.write("go", "")
                try daemon.waitReady()
                #expect(harness.lines.contains("READY=1"))
                #expect(Poll.until(timeout: .seconds(5)) { harness.lines.contains("STATUS=warming") }, "\(harness.lines)")
                #expect(try daemon.get("/ready?verbose").text.contains("[+]child ok: pid="))
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("case 41: a shell child calling systemd-notify --ready becomes ready (where systemd-notify is installed)")
        func case41_systemdNotify() throws {
            guard access("/usr/bin/systemd-notify", X_OK) == 0 || access("/bin/systemd-notify", X_OK) == 0 else { return }
            try withSandbox { sandbox in
                let daemon = try sandbox.launchRun(.sh("systemd-notify --ready; exec sleep 300", options: ["--ready=notify"]))
                try daemon.waitReady(timeout: .seconds(10))
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("case 42: READY=1 from a live non-descendant is rejected and counted; FOO=1 is ignored; STOPPING=1 fails the child check without a signal")
        func case42_notifySenders() throws {
            try withSandbox { sandbox in
                let signals = sandbox.path("signals")
                let ready = sandbox.path("ready")
                let stopping = sandbox.path("stopping")
                let script = Self.notifyPrelude + """
                for name in ("HUP", "INT", "QUIT", "USR1", "USR2", "TERM"):
                    signal.signal(getattr(signal, "SIG" + name), lambda n, f, name=name: (open("\(signals)", "a").write(name + "\\n"), name == "TERM" and sys.exit(0)))
                notify("FOO=1")
                wait_for("\(ready)")
                notify("READY=1")
                wait_for("\(stopping)")
                notify("STOPPING=1")
                while True: time.sleep(0.05)
                """
                let daemon = try sandbox.launchRun(RunLaunch(["python3", "-c", script], options: ["--ready=notify"]))
                let socketPath = daemon.processorDir + "/notify-0.sock"
                func notifyCount(_ result: String) -> Double { (try? daemon.metrics().value("dory_notify_messages_total", ["result": result])) ?? 0 }
                #expect(Poll.until(timeout: .seconds(10)) { notifyCount("accepted") >= 1 }, "FOO=1 from the child; \(daemon.logTail)")
                #expect(daemon.status("/ready") == 503, "FOO=1 is ignored")
                #expect(sendDatagram("READY=1", to: socketPath))
                #expect(Poll.until(timeout: .seconds(5)) { notifyCount("rejected") == 1 }, "\(daemon.logTail)")
                #expect(daemon.status("/ready") == 503)
                sandbox.write("ready", "")
                try daemon.waitReady()
                let pid = try #require(JSON.object(try daemon.control("GET", "/v1/context").body)?["child_pid"]?.int)
                sandbox.write("stopping", "")
                #expect(Poll.until(timeout: .seconds(5)) { daemon.status("/ready") == 503 }, "\(daemon.logTail)")
                let verbose = try daemon.get("/ready?verbose").text
                #expect(verbose.contains("[-]child failed: pid=\(pid) sent STOPPING=1"), "\(verbose)")
                #expect(kill(pid_t(pid), 0) == 0, "the child keeps running")
                #expect(daemon.records.contains { $0["msg"]?.string == "child sent STOPPING=1" })
                #expect(Acceptance.lines(signals).isEmpty)
                #expect(try daemon.stop().code == 0)
                #expect(Acceptance.lines(signals) == ["TERM"])
            }
        }

        @Test("case 44: WATCHDOG=1 from the child keeps /healthz 200; when it stops, doryd's own WATCHDOG=1 stops too until the next heartbeat")
        func case44_heldBackWatchdog() throws {
            try withSandbox { sandbox in
                let pause = sandbox.path("pause")
                let harness = try NotifySocket(path: sandbox.path("n.sock"))
                defer { harness.close() }
                let script = Self.notifyPrelude + """
                notify("READY=1")
                while True:
                    if not os.path.exists("\(pause)"): notify("WATCHDOG=1")
                    time.sleep(0.5)
                """
                let daemon = try sandbox.launchRun(RunLaunch(["python3", "-c", script], options: ["--ready=notify", "--heartbeat-timeout=2"],
                                                             environment: ["NOTIFY_SOCKET": harness.path, "WATCHDOG_USEC": "2000000"]))
                try daemon.waitReady()
                func watchdogs(after instant: ContinuousClock.Instant) -> Int {
                    harness.all.filter { $0.at > instant && $0.text.split(separator: "\n").contains("WATCHDOG=1") }.count
                }
                let start = Poll.now()
                let watcher = StatusWatcher(port: daemon.port, path: "/healthz")
                #expect(Poll.until(timeout: .seconds(5)) { watchdogs(after: start) >= 3 }, "\(harness.lines)")
                let beating = watcher.stop()
                #expect(beating.allSatisfy { $0.status == 200 }, "\(beating.map(\.status))")
                sandbox.write("pause", "")
                #expect(Poll.until(timeout: .seconds(5)) { daemon.status("/healthz") == 503 }, "\(daemon.logTail)")
                let failing = Poll.now()
                // While the heartbeats stay away, doryd sends no WATCHDOG=1 (one beat in flight is allowed for).
                let resumedEarly = Poll.until(timeout: .milliseconds(2500)) { watchdogs(after: failing + .milliseconds(100)) > 0 }
                #expect(!resumedEarly, "doryd kept pinging the watchdog while child_heartbeat failed")
                #expect(daemon.status("/healthz") == 503)
                unlink(pause)
                let resumed = Poll.now()
                #expect(Poll.until(timeout: .seconds(5)) { daemon.status("/healthz") == 200 })
                #expect(Poll.until(timeout: .seconds(5)) { watchdogs(after: resumed) > 0 }, "WATCHDOG=1 resumes with the next heartbeat")
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("dory_notify_messages_total keeps counting across in-pod restarts (each child has its own socket)")
        func notifyCountersSurviveChildRestarts() throws {
            try withSandbox { sandbox in
                let marker = sandbox.path("first-child-done")
                let script = Self.notifyPrelude + """
                notify("READY=1")
                if not os.path.exists("\(marker)"):
                    open("\(marker)", "w").close()
                    sys.exit(1)
                while True: time.sleep(0.05)
                """
                let daemon = try sandbox.launchRun(RunLaunch(["python3", "-c", script],
                                                             options: ["--ready=notify", "--restart=on-failure"]))
                func accepted() -> Double { (try? daemon.metrics().value("dory_notify_messages_total", ["result": "accepted"])) ?? 0 }
                #expect(Poll.until(timeout: .seconds(15)) {
                    (try? daemon.metrics().value("dory_child_restarts_total")) == 1 && daemon.status("/ready") == 200
                }, "\(daemon.logTail)")
                #expect(Poll.until(timeout: .seconds(5)) { accepted() >= 2 }, "READY=1 of both children: \(accepted())")
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("case 50: six SIGTERM stop/start cycles with a child that dies by TERM: never golden, the state restored every time")
        func case50_stopStartCycles() throws {
            try withSandbox { sandbox in
                let seen = sandbox.path("seen")
                let script = """
                api() { curl -fsS --unix-socket "$DORY_CONTROL_SOCKET" "$@"; }
                n=$(api http://dory/v1/state | sed -n 's/.*"n":\\([0-9]*\\).*/\\1/p'); n=${n:-0}
                api -X PUT --data-binary "{\\"n\\":$((n+1))}" http://dory/v1/state >/dev/null
                echo "$DORY_RECOVERY_STRATEGY $DORY_RECOVERY_REASON $n" >> \(seen)
                exec sleep 300
                """
                for cycle in 1...6 {
                    let daemon = try sandbox.launchRun(.sh(script))
                    #expect(Poll.until(timeout: .seconds(10)) { Acceptance.lines(seen).count == cycle }, "cycle \(cycle): \(daemon.logTail)")
                    #expect(try daemon.stop().code == 143, "cycle \(cycle): \(daemon.logTail)")
                    #expect(daemon.lastEndRecord?["clean"]?.bool == true, "cycle \(cycle): \(daemon.journal())")
                }
                let lines = Acceptance.lines(seen)
                #expect(lines.first == "fresh first_start 0", "\(lines)")
                for (index, line) in lines.enumerated().dropFirst() {
                    #expect(line == "restore normal_restart \(index)", "\(lines)")
                }
                #expect(!lines.contains { $0.hasPrefix("golden") })
            }
        }

        @Test("§7.4, §9 step 1: /ready?verbose reads restarting in 1s (restart 1 of 5) while an in-pod restart is pending")
        func restartPendingDetail() throws {
            try withSandbox { sandbox in
                let marker = sandbox.path("failed")
                let daemon = try sandbox.launchRun(.sh("if [ ! -e \(marker) ]; then touch \(marker); exit 1; fi; exec sleep 300",
                                                       options: ["--restart=on-failure"]))
                let line = Poll.value(timeout: .seconds(5), interval: .milliseconds(20)) { () -> String? in
                    let text = (try? daemon.get("/ready?verbose", timeout: .seconds(2)))?.text ?? ""
                    return text.split(separator: "\n").first { $0.contains("[-]child") && $0.contains("restart") }.map(String.init)
                }
                #expect(line == "[-]child failed: restarting in 1s (restart 1 of 5)", "\(daemon.logTail)")
                try daemon.waitReady()
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("§7.2: a grandchild's notify message after the child was reaped is still received until the stop completes")
        func notifySocketOutlivesTheChild() throws {
            try withSandbox { sandbox in
                let armed = sandbox.path("armed")
                let grandchild = Self.notifyPrelude + """
                def term(*_):
                    notify("STOPPING=1")
                    sys.exit(0)
                signal.signal(signal.SIGTERM, term)
                open("\(armed)", "w").close()
                while True: time.sleep(0.05)
                """
                let child = Self.notifyPrelude + """
                import subprocess
                notify("READY=1")
                subprocess.Popen([sys.executable, "-c", \(Self.pythonString(grandchild))])
                wait_for("\(armed)")
                sys.exit(0)
                """
                let daemon = try sandbox.launchRun(RunLaunch(["python3", "-c", child], options: ["--ready=notify"]))
                #expect(try daemon.waitForExit().code == 0, "\(daemon.logTail)")
                let messages = daemon.records.compactMap { $0["msg"]?.string }
                let exited = try #require(messages.firstIndex(of: "child exited"), "\(daemon.logTail)")
                let late = try #require(messages.firstIndex(of: "child sent STOPPING=1"), "the grandchild STOPPING=1 was lost: \(daemon.lines.joined(separator: "\n"))")
                #expect(late > exited)
                #expect(!Files.exists(daemon.processorDir + "/notify-0.sock"), "removed at the end")
            }
        }

        /// A Python string literal holding `text`.
        static func pythonString(_ text: String) -> String {
            var out = "\""
            for c in text.unicodeScalars {
                switch c {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                default: out.unicodeScalars.append(c)
                }
            }
            return out + "\""
        }
    }
}

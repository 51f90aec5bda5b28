import DoryState
import Glibc
import Testing

/// Helpers shared by the `RunModeAcceptance*` suites.
enum Acceptance {
    static func text(_ path: String) -> String {
        Files.read(path).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    static func lines(_ path: String) -> [String] {
        text(path).split(separator: "\n").map(String.init)
    }

    /// Fields of `/proc/<pid>/stat` after the command name (index 0 is field 3, the state).
    static func statFields(_ text: String) -> [Substring] {
        guard let close = text.lastIndex(of: ")") else { return [] }
        return text[text.index(after: close)...].split(separator: " ")
    }

    /// A shell loop that lets traps run at once (`sh` runs them only between foreground commands).
    static let idle = "while :; do sleep 0.1 & wait $!; done"
}

extension Sandbox {
    /// As `launchRun`, but through `sh -c PREFIX; exec doryd …` (to leave descriptors open) and optionally capturing stdout.
    func launchRunRaw(_ launch: RunLaunch, shellPrefix: String? = nil, captureStdout: Bool = false) throws -> Daemon {
        var environment = baseEnvironment()
        environment["DORY_POD_UID"] = "itest-uid"
        environment["DORY_STATE_TOKEN"] = nil
        for (name, value) in launch.environment { environment[name] = value }
        let stateDir = path("state")
        let arguments = ["run", "--port", "0", "--state-dir", stateDir] + launch.options + ["--"] + launch.command
        let doryd = try Binaries.doryd()
        let child: ChildProcess
        if let shellPrefix {
            child = try spawn("/bin/sh", ["-c", shellPrefix + "; exec \"$0\" \"$@\"", doryd] + arguments, environment: environment,
                              captureStdout: captureStdout)
        } else {
            child = try spawn(doryd, arguments, environment: environment, captureStdout: captureStdout)
        }
        let daemon = Daemon(process: child, stateDir: stateDir, processorId: "itest-pod", sandbox: self)
        if launch.waitForListening { try daemon.waitForPort() }
        return daemon
    }
}

extension RunModeTests {
    /// Signals, the stop sequence, descendants and the child's environment (spec/supervise.md §12 cases 13, 15–17,
    /// 20, 21, 24–27, 56).
    @Suite("Run mode acceptance: signals and processes")
    struct RunModeAcceptanceSignalTests {
        @Test("case 13: SIGTERM reaches a trapping child once; exit 0; clean boot")
        func case13_trappedTerm() throws {
            try withSandbox { sandbox in
                let log = sandbox.path("f")
                let daemon = try sandbox.launchRun(.sh("trap 'echo TERM >>\(log); exit 0' TERM; touch \(log).ready; \(Acceptance.idle)"))
                try daemon.waitReady()
                #expect(Poll.until(timeout: .seconds(5)) { Files.exists(log + ".ready") })
                #expect(try daemon.stop().code == 0, "\(daemon.logTail)")
                #expect(Acceptance.lines(log) == ["TERM"])
                #expect(daemon.lastEndRecord?["clean"]?.bool == true, "\(daemon.journal())")
            }
        }

        /// A Python grandchild (an `sh` background job could not trap INT and QUIT, which start ignored) recording
        /// every signal with a `G` prefix; the `sh` child records with a `C` prefix.
        static func recordingScript(_ log: String) -> String {
            let python = """
            import signal, time, os
            def h(n, f):
                with open("\(log)", "a") as o: o.write("G" + signal.Signals(n).name[3:] + "\\n")
                if n == signal.SIGINT: os._exit(0)
            for s in (signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR2, signal.SIGWINCH, signal.SIGINT, signal.SIGUSR1):
                signal.signal(s, h)
            signal.signal(signal.SIGTERM, lambda n, f: os._exit(0))
            open("\(log).g", "w").close()
            while True: time.sleep(0.05)
            """
            var script = ""
            for name in ["HUP", "QUIT", "USR2", "WINCH", "USR1"] { script += "trap 'echo C\(name) >> \(log)' \(name); " }
            script += "trap 'echo CINT >> \(log); exit 0' INT; trap 'exit 0' TERM; "
            script += "python3 -c '\(python.replacing("'", with: "'\\''"))' & "
            script += "while [ ! -e \(log).g ]; do sleep 0.02; done; touch \(log).ready; " + Acceptance.idle
            return script
        }

        @Test("cases 15, 16: HUP, QUIT, USR2, WINCH and INT reach child and grandchild; only the child with --signal-child-only; USR1 only with --forward-usr1",
              arguments: [[], ["--signal-child-only"], ["--forward-usr1"]])
        func case15_16_forwarding(_ options: [String]) throws {
            try withSandbox { sandbox in
                let log = sandbox.path("signals")
                let daemon = try sandbox.launchRun(.sh(Self.recordingScript(log), options: options))
                #expect(Poll.until(timeout: .seconds(10)) { Files.exists(log + ".ready") }, "\(daemon.logTail)")
                let childOnly = options.contains("--signal-child-only")
                let signals: [(Int32, String)] = [(SIGHUP, "HUP"), (SIGQUIT, "QUIT"), (SIGUSR2, "USR2"), (SIGWINCH, "WINCH"), (SIGUSR1, "USR1")]
                for (signal, name) in signals {
                    daemon.signal(signal)
                    let forwarded = name != "USR1" || options.contains("--forward-usr1")
                    // USR1 without forwarding: a HUP sent after it orders the check (USR1 would have come first).
                    if !forwarded { daemon.signal(SIGHUP) }
                    let expected = forwarded ? name : "HUP"
                    #expect(Poll.until(timeout: .seconds(5)) {
                        let seen = Acceptance.lines(log)
                        return seen.contains("C" + expected) && (childOnly || seen.contains("G" + expected))
                    }, "\(name): \(Acceptance.lines(log))")
                    if !forwarded {
                        #expect(!Acceptance.lines(log).contains { $0.hasSuffix("USR1") })
                    }
                    Files.truncate(log)
                }
                daemon.signal(SIGINT)
                let status = try daemon.waitForExit()
                #expect(status.code == 0, "\(daemon.logTail)")
                let seen = Acceptance.lines(log)
                #expect(seen.contains("CINT"), "\(seen)")
                if childOnly {
                    #expect(!seen.contains { $0.hasPrefix("G") && $0 != "GINT" }, "\(seen)")
                } else {
                    #expect(seen.contains("GINT"), "\(seen)")
                }
            }
        }

        @Test("case 16: after one PUT, SIGUSR1 writes a sigusr1 generation, with or without --forward-usr1",
              arguments: [[], ["--forward-usr1"]])
        func case16_usr1Snapshot(_ options: [String]) throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchRun(.sh("trap '' USR1; exec sleep 300", options: options))
                try daemon.waitReady()
                #expect(try daemon.control("PUT", "/v1/state?sync=0", body: #"{"n":16}"#).status == 202)
                daemon.signal(SIGUSR1)
                #expect(Poll.until(timeout: .seconds(5)) { !daemon.saved(reason: "sigusr1").isEmpty }, "\(daemon.logTail)")
                let generation = try #require(daemon.saved(reason: "sigusr1").first?.generation)
                let snapshot = try daemon.snapshot(generation)
                #expect(snapshot.reason == "sigusr1")
                #expect(snapshot.state["n"]?.int == 16)
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("case 17: --stop-signal=QUIT turns SIGTERM into QUIT; SIGINT without it reaches the child as INT")
        func case17_stopSignal() throws {
            for (options, signal, expected) in [(["--stop-signal=QUIT"], SIGTERM, "QUIT"), ([String](), SIGINT, "INT")] {
                try withSandbox { sandbox in
                    let log = sandbox.path("f")
                    let script = "trap 'echo TERM >> \(log)' TERM; trap 'echo QUIT >> \(log); exit 0' QUIT; trap 'echo INT >> \(log); exit 0' INT; touch \(log).ready; while :; do sleep 0.1; done"
                    let daemon = try sandbox.launchRun(.sh(script, options: options))
                    #expect(Poll.until(timeout: .seconds(5)) { Files.exists(log + ".ready") })
                    daemon.signal(signal)
                    #expect(try daemon.waitForExit().code == 0, "\(daemon.logTail)")
                    #expect(Acceptance.lines(log) == [expected])
                }
            }
        }

        @Test("case 20: SIGTERM during a golden backoff → no child is ever spawned; exit 0")
        func case20_termInBackoff() throws {
            try withSandbox { sandbox in
                let marker = sandbox.path("spawned")
                let daemon = try sandbox.launchRun(.sh("touch \(marker); exec sleep 300", environment: ["RESTART_COUNT": "3"]))
                #expect(daemon.waitForEvent("lifecycle.phase") { $0["phase"]?.string == "backoff" } != nil, "\(daemon.logTail)")
                #expect(daemon.status("/healthz") == 200)
                #expect(daemon.status("/ready") == 503)
                let status = try daemon.stop()
                #expect(status.code == 0, "\(daemon.logTail)")
                #expect(!Files.exists(marker))
                #expect(!daemon.records.contains { $0["msg"]?.string == "child started" })
            }
        }

        @Test("case 21: the child starts with no blocked or ignored signal, leads its own group, in doryd's session")
        func case21_spawnAttributes() throws {
            try withSandbox { sandbox in
                let out = sandbox.path("proc")
                let daemon = try sandbox.launchRun(.sh("cat /proc/$PPID/stat > \(out).doryd; exec cat /proc/self/status /proc/self/stat > \(out)"))
                #expect(try daemon.waitForExit().code == 0, "\(daemon.logTail)")
                let text = Acceptance.text(out)
                let status = Acceptance.lines(out)
                for key in ["SigBlk:", "SigIgn:"] {
                    let line = try #require(status.first { $0.hasPrefix(key) }, "\(text)")
                    #expect(line.dropFirst(key.count).trimmingPrefix(while: { $0 == " " || $0 == "\t" }).allSatisfy { $0 == "0" }, "\(line)")
                }
                let stat = try #require(status.last)
                let pid = try #require(stat.split(separator: " ").first.flatMap { pid_t($0) })
                let fields = Acceptance.statFields(stat)
                let doryd = Acceptance.statFields(Acceptance.text(out + ".doryd"))
                #expect(Acceptance.text(out + ".doryd").hasPrefix("\(daemon.pid) "))
                #expect(fields.count > 4 && doryd.count > 4)
                guard fields.count > 4, doryd.count > 4 else { return }
                #expect(pid_t(fields[2]) == pid, "pgrp of \(stat)")
                #expect(fields[2] != doryd[2])
                #expect(fields[3] == doryd[3], "sid")
            }
        }

        @Test("case 24: a grandchild that escaped with setsid and ignores TERM is SIGKILLed at B and named in the WARN",
              arguments: [false, true])
        func case24_escapedGrandchild(_ stopByDoryd: Bool) throws {
            try withSandbox { sandbox in
                let g = sandbox.path("g")
                let escape = "setsid sh -c 'trap \"\" TERM; touch \(g); exec sleep 300' & while [ ! -e \(g) ]; do sleep 0.02; done; "
                let script = stopByDoryd ? escape + "trap 'exit 0' TERM; touch \(g).ready; " + Acceptance.idle : escape + "exit 0"
                let start = Poll.now()
                let daemon = try sandbox.launchRun(.sh(script))
                if stopByDoryd {
                    #expect(Poll.until(timeout: .seconds(5)) { Files.exists(g + ".ready") })
                    daemon.signal(SIGTERM)
                }
                let status = try daemon.waitForExit()
                #expect(status.code == 0, "\(daemon.logTail)")
                #expect(Poll.seconds(since: start) >= 1.9)
                let warn = try #require(daemon.records.first { $0["msg"]?.string == "killed descendants at the deadline" }, "\(daemon.logTail)")
                let killed = warn["killed"]?.array ?? []
                #expect(killed.contains { $0["comm"]?.string == "sleep" && $0["pid"]?.int != nil && $0["pgid"]?.int != nil }, "\(warn)")
                #expect(RunModeProcessTests.children(of: daemon.pid).isEmpty)
            }
        }

        @Test("case 25: a group member left behind gets TERM at once; doryd exits 0 well before B")
        func case25_leftoverMember() throws {
            try withSandbox { sandbox in
                let start = Poll.now()
                let daemon = try sandbox.launchRun(.sh("sleep 300 & exit 0"))
                #expect(try daemon.waitForExit().code == 0, "\(daemon.logTail)")
                #expect(Poll.seconds(since: start) < 1.9)
                #expect(!daemon.records.contains { $0["msg"]?.string == "killed descendants at the deadline" })
            }
        }

        @Test("case 26: only 0, 1 and 2 cross into the child, not even a descriptor doryd inherited without O_CLOEXEC")
        func case26_descriptors() throws {
            try withSandbox { sandbox in
                let out = sandbox.path("fds")
                let daemon = try sandbox.launchRunRaw(.sh("exec ls /proc/self/fd > \(out)"), shellPrefix: "exec 7</dev/null")
                #expect(try daemon.waitForExit().code == 0, "\(daemon.logTail)")
                // ls's own directory descriptor takes the lowest free number, 3.
                #expect(Acceptance.lines(out).sorted() == ["0", "1", "2", "3"], "\(Acceptance.text(out))")
            }
        }

        @Test("case 27: the child's environment: passed through, DORY_* added, NOTIFY_SOCKET and the state token removed")
        func case27_environment() throws {
            try withSandbox { sandbox in
                let out = sandbox.path("env")
                let notify = try NotifySocket(path: sandbox.path("n.sock"))
                defer { notify.close() }
                let environment = ["FOO": "bar", "NOTIFY_SOCKET": sandbox.path("n.sock"), "DORY_STATE_TOKEN": "t"]
                let script = "env > \(out).tmp; stat -c %a \"$DORY_CONTROL_SOCKET\" > \(out).mode; mv \(out).tmp \(out); exec sleep 300"
                let daemon = try sandbox.launchRun(.sh(script, options: ["--ready=started"], environment: environment))
                #expect(Poll.until(timeout: .seconds(5)) { Files.exists(out) }, "\(daemon.logTail)")
                var env: [String: String] = [:]
                for line in Acceptance.lines(out) {
                    guard let eq = line.firstIndex(of: "=") else { continue }
                    env[String(line[..<eq])] = String(line[line.index(after: eq)...])
                }
                #expect(env["FOO"] == "bar")
                #expect(env["DORY_CONTROL_SOCKET"] == daemon.controlSocketPath)
                #expect(env["DORY_CONTROL_SOCKET"]?.hasPrefix("/") == true)
                #expect(Acceptance.text(out + ".mode") == "600\n")
                #expect(env["DORY_RECOVERY_STRATEGY"] == "fresh")
                #expect(env["DORY_ATTEMPT"] == "1")
                #expect(env["DORY_CHILD_RESTARTS"] == "0")
                #expect(env["DORY_PROCESSOR_ID"] == "itest-pod")
                #expect(env["DORY_STATE_DIR"]?.hasPrefix("/") == true)
                #expect(env["NOTIFY_SOCKET"] == nil)
                #expect(env["DORY_STATE_TOKEN"] == nil)
                #expect(Poll.until(timeout: .seconds(5)) { notify.lines.contains("READY=1") }, "\(notify.lines)")
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("case 56: the child's stdout and stderr pass through byte for byte; doryd's own lines stay JSON")
        func case56_output() throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchRunRaw(.sh("printf 'hello\\n'; printf 'oops\\n' >&2"), captureStdout: true)
                #expect(try daemon.waitForExit().code == 0)
                _ = Poll.until(timeout: .seconds(5)) { daemon.process.stdout?.isClosed ?? true }
                #expect(daemon.process.stdout?.text == "hello\n")
                #expect(daemon.lines.filter { $0 == "oops" }.count == 1, "\(daemon.logTail)")
                for line in daemon.lines where line != "oops" {
                    #expect(JSON.object(line)?["logger"]?.string?.hasPrefix("doryd") == true, "\(line)")
                }
            }
        }
    }
}

extension Files {
    /// Empties a file.
    static func truncate(_ path: String) { _ = Glibc.truncate(path, 0) }
}

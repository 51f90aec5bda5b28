import DoryState
import Glibc
import Testing

extension RunModeTests {
    /// The child API, readiness and recovery in `doryd run` (spec/supervise.md §6–§9, §12 cases 32, 41, 49, 51).
    @Suite("Run mode: state, readiness and restarts")
    struct RunModeStateTests {
        static func text(_ path: String) -> String {
            Files.read(path).map { String(decoding: $0, as: UTF8.self) } ?? ""
        }

        @Test("a shell child checkpoints with curl and gets its state back after a restart of doryd")
        func checkpointingShell() throws {
            try withSandbox { sandbox in
                let seen = sandbox.path("seen")
                let script = """
                api() { curl -fsS --unix-socket "$DORY_CONTROL_SOCKET" "$@"; }
                api http://dory/v1/state > \(seen).$DORY_ATTEMPT
                n=$(sed -n 's/.*"n":\\([0-9]*\\).*/\\1/p' \(seen).$DORY_ATTEMPT); n=${n:-0}
                trap 'api -X PUT --data-binary "{\\"n\\":$n}" http://dory/v1/state >/dev/null; exit 0' TERM
                while :; do n=$((n+1)); api -X PUT --data-binary "{\\"n\\":$n}" 'http://dory/v1/state?sync=0' >/dev/null; sleep 0.1 & wait $!; done
                """
                let first = try sandbox.launchRun(.sh(script))
                try first.waitReady()
                let pushed = Poll.until(timeout: .seconds(10)) {
                    guard let response = try? first.control("GET", "/v1/state"), let body = JSON.object(response.body),
                          let n = body["state"]?.object?["n"]?.int else { return false }
                    return n >= 3
                }
                #expect(pushed, "\(first.logTail)")
                #expect(try first.stop().code == 0)
                #expect(first.lastEndRecord?["clean"]?.bool == true)
                let saved = try first.newestSnapshot()
                let savedN = try #require(saved.state["n"]?.int)
                #expect(savedN >= 3)

                let second = try sandbox.launchRun(.sh(script))
                #expect(Poll.until(timeout: .seconds(10)) { !Self.text(seen + ".2").isEmpty }, "\(second.logTail)")
                let answer = try #require(JSON.object(Self.text(seen + ".2")))
                #expect(answer["state"]?.object?["n"]?.int == savedN)
                #expect(answer["strategy"]?.string == "restore")
                #expect(answer["reason"]?.string == "normal_restart")
                #expect(answer["attempt"]?.int == 2)
                #expect(try second.stop().code == 0)
            }
        }

        @Test("GET /state: 503 not_restored while the slot is null; 200 with the restored slot before any PUT (§1.3)")
        func getStateServesTheRestoredSlot() throws {
            try withSandbox { sandbox in
                var launch = RunLaunch(["sleep", "300"])
                launch.environment["DORY_STATE_TOKEN"] = Sandbox.stateToken
                let first = try sandbox.launchRun(launch)
                try first.waitReady()
                #expect(try first.getState().status == 503)
                #expect(try first.control("PUT", "/v1/state", body: #"{"n":7}"#).status == 200)
                #expect(try first.stop().code == 143)  // the child's status: sleep dies of the forwarded SIGTERM

                let second = try sandbox.launchRun(launch)
                try second.waitReady()
                let response = try second.getState()
                #expect(response.status == 200, "\(response.text)")
                #expect(JSON.object(response.body)?["data"]?.object?["n"]?.int == 7)
                #expect(try second.stop().code == 143)
            }
        }

        @Test("PUT /v1/state: 200 once durable with a generation holding it; POST /state then answers 409 child_running")
        func durablePut() throws {
            try withSandbox { sandbox in
                var launch = RunLaunch(["sleep", "300"])
                launch.environment["DORY_STATE_TOKEN"] = Sandbox.stateToken
                let daemon = try sandbox.launchRun(launch)
                try daemon.waitReady()
                let first = try daemon.control("GET", "/v1/state")
                #expect(JSON.object(first.body)?["state"] == .null)
                let put = try daemon.control("PUT", "/v1/state", body: #"{"n":1}"#)
                #expect(put.status == 200, "\(put.text)")
                let generation = try #require(JSON.object(put.body)?["generation"]?.int)
                let snapshot = try daemon.snapshot(UInt64(generation))
                #expect(snapshot.state["n"]?.int == 1)
                #expect(snapshot.reason == "api")
                let transfer = try daemon.postState(#"{"data":{"n":2}}"#)
                #expect(transfer.status == 409)
                #expect(JSON.object(transfer.body)?["error"]?.string == "child_running")
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("--ready=notify: a Python child becomes ready with READY=1; STATUS= shows on /healthz?verbose")
        func notifyReady() throws {
            try withSandbox { sandbox in
                let go = sandbox.path("go")
                let script = """
                import os, socket, time
                address = os.environ["NOTIFY_SOCKET"]
                if address.startswith("@"): address = "\\0" + address[1:]
                s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                s.sendto(b"STATUS=warming", address)
                while not os.path.exists("\(go)"): time.sleep(0.02)
                s.sendto(b"READY=1", address)
                time.sleep(300)
                """
                let daemon = try sandbox.launchRun(RunLaunch(["python3", "-c", script], options: ["--ready=notify"]))
                #expect(Poll.until(timeout: .seconds(10)) { ((try? daemon.request("GET", "/healthz?verbose"))?.text ?? "").contains("status=\"warming\"") },
                        "\(daemon.logTail)")
                #expect(daemon.status("/ready") == 503)
                let verbose = try daemon.request("GET", "/ready?verbose").text
                #expect(verbose.contains("[-]child failed: waiting for READY=1"), "\(verbose)")
                sandbox.write("go", "")
                try daemon.waitReady()
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("--restart=on-failure: a child that fails once is restarted with DORY_CHILD_RESTARTS=1 and the slot")
        func inPodRestart() throws {
            try withSandbox { sandbox in
                let marker = sandbox.path("failed-once")
                let env = sandbox.path("env")
                let script = """
                api() { curl -fsS --unix-socket "$DORY_CONTROL_SOCKET" "$@"; }
                if [ ! -e \(marker) ]; then api -X PUT --data-binary '{"n":7}' 'http://dory/v1/state?sync=0' >/dev/null; touch \(marker); exit 1; fi
                echo "$DORY_CHILD_RESTARTS $DORY_RECOVERY_STRATEGY $DORY_RECOVERY_REASON" > \(env).tmp
                api http://dory/v1/state >> \(env).tmp; mv \(env).tmp \(env)
                exec sleep 300
                """
                let daemon = try sandbox.launchRun(.sh(script, options: ["--restart=on-failure"]))
                #expect(Poll.until(timeout: .seconds(10)) { !Self.text(env).isEmpty }, "\(daemon.logTail)")
                let seen = Self.text(env)
                #expect(seen.hasPrefix("1 restore child_restart"), "\(seen)")
                #expect(seen.contains(#""n":7"#))
                try daemon.waitReady()
                #expect(try daemon.metrics().value("dory_child_restarts_total") == 1)
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("a child that dies fast on three boots makes the fourth golden_backoff after a backoff phase")
        func goldenBackoff() throws {
            try withSandbox { sandbox in
                let seen = sandbox.path("strategies")
                let script = #"echo "$DORY_RECOVERY_STRATEGY" >> "# + seen + #"; exit 1"#
                let environment = ["DORY_BACKOFF_BASE_SEC": "0.3", "DORY_BACKOFF_MAX_SEC": "0.3"]
                for boot in 1...4 {
                    let daemon = try sandbox.launchRun(.sh(script, environment: environment))
                    #expect(try daemon.waitForExit().code == 1, "boot \(boot): \(daemon.logTail)")
                    #expect(daemon.lastEndRecord?["clean"]?.bool == false)
                    if boot == 4 {
                        #expect(daemon.records.contains { $0["event"]?.string == "lifecycle.phase" && $0["phase"]?.string == "backoff" })
                    }
                }
                let strategies = Self.text(seen).split(separator: "\n").map(String.init)
                #expect(strategies.count == 4)
                #expect(strategies.first == "fresh")
                #expect(strategies.last == "golden_backoff", "\(strategies)")
            }
        }
    }
}

extension RunModeTests {
    /// supervise.md §11: every run option is also a YAML key, validated like its flag.
    @Suite("Run mode: options from the YAML file")
    struct RunModeYAMLOptionTests {
        @Test("success_exit_codes from YAML maps the child's 3 to doryd's 0; an invalid restart_policy exits 2 naming it")
        func yamlOptions() throws {
            try withSandbox { sandbox in
                let good = sandbox.path("good.yaml")
                let bad = sandbox.path("bad.yaml")
                writeFile(good, Array("success_exit_codes: \"0,3\"\n".utf8))
                writeFile(bad, Array("restart_policy: bogus\n".utf8))
                let state = sandbox.path("state")
                let mapped = try CommandRun.doryd(sandbox, ["run", "--port", "0", "--state-dir", state, "--", "sh", "-c", "exit 3"],
                                                  environment: ["DORY_CONFIG_FILE": good])
                #expect(mapped.code == 0, "\(mapped)")
                let plain = try CommandRun.doryd(sandbox, ["run", "--port", "0", "--state-dir", state, "--", "sh", "-c", "exit 3"])
                #expect(plain.code == 3, "\(plain)")
                let refused = try CommandRun.doryd(sandbox, ["run", "--port", "0", "--state-dir", state, "--", "true"],
                                                   environment: ["DORY_CONFIG_FILE": bad])
                #expect(refused.code == 2, "\(refused)")
                #expect(refused.stderr.contains("restart_policy"), "\(refused)")
            }
        }
    }
}

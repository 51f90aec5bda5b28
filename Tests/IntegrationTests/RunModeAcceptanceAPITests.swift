import DoryHTTP
import DoryState
import Glibc
import Synchronization
import Testing

extension RunModeTests {
    /// The child API on the control socket (spec/supervise.md §6, §12 cases 28–31, 33–37).
    @Suite("Run mode acceptance: child API")
    struct RunModeAcceptanceAPITests {
        static func body(_ response: HTTPClient.Response) -> JSONObject { JSON.object(response.body) ?? [:] }

        @Test("case 28: the first GET /v1/state of a first start")
        func case28_firstGet() throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchRun(RunLaunch(["sleep", "300"]))
                try daemon.waitReady()
                let response = try daemon.control("GET", "/v1/state")
                #expect(response.status == 200)
                let expected = try #require(JSON.object(#"{"state":null,"generation":null,"durable":false,"strategy":"fresh","reason":"first_start","attempt":1,"restart_count":0,"child_restarts":0}"#))
                #expect(Self.body(response) == expected, "\(response.text)")
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("cases 29, 30: a durable PUT writes generation 1 (reason api), the same PUT reuses it; bad bodies and queries leave the slot")
        func case29_30_putRules() throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchRun(RunLaunch(["sleep", "300"], environment: ["DORY_STATE_MAX_BYTES": "1024"]))
                try daemon.waitReady()
                let put = try daemon.control("PUT", "/v1/state", body: #"{"n":1}"#)
                #expect(put.status == 200, "\(put.text)")
                #expect(Self.body(put)["generation"]?.int == 1)
                #expect(Self.body(put)["durable"]?.bool == true)
                let snapshot = try daemon.snapshot(1)
                #expect(snapshot.state == ["n": .int(1)])
                #expect(snapshot.reason == "api")
                let again = try daemon.control("PUT", "/v1/state", body: #"{"n":1}"#)
                #expect(again.status == 200)
                #expect(Self.body(again)["generation"]?.int == 1)
                #expect(Self.body(again)["reused"]?.bool == true)
                #expect(daemon.generations() == [1])

                let bad: [(String, String, Int, String)] = [
                    ("/v1/state", "[1]", 400, "not_an_object"), ("/v1/state", "\"x\"", 400, "not_an_object"),
                    ("/v1/state", "7", 400, "not_an_object"), ("/v1/state", "null", 400, "not_an_object"),
                    ("/v1/state", "{", 400, "invalid_json"), ("/v1/state", "", 400, "invalid_json"),
                    ("/v1/state?sync=maybe", #"{"n":9}"#, 400, "invalid_query"),
                ]
                for (path, body, status, error) in bad {
                    let response = try daemon.control("PUT", path, body: body)
                    #expect(response.status == status, "\(body): \(response.text)")
                    #expect(Self.body(response)["error"]?.string == error, "\(body): \(response.text)")
                    let state = Self.body(try daemon.control("GET", "/v1/state"))["state"]
                    #expect(state == .object(["n": .int(1)]), "after \(body)")
                }

                let fits = #"{"p":""# + String(repeating: "x", count: 1024 - 8) + #""}"#
                #expect(fits.utf8.count == 1024)
                #expect(try daemon.control("PUT", "/v1/state", body: fits).status == 200)
                let over = #"{"p":""# + String(repeating: "x", count: 1025 - 8) + #""}"#
                let tooLarge = try daemon.control("PUT", "/v1/state", body: over)
                #expect(tooLarge.status == 413, "\(tooLarge.text)")
                #expect(Self.body(tooLarge)["size_bytes"] != nil && Self.body(tooLarge)["max_bytes"]?.int == 1024, "\(tooLarge.text)")
                // Chunked, through curl.
                let file = sandbox.write("over.json", over)
                let curl = try sandbox.spawn("/usr/bin/curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", daemon.controlSocketPath,
                                                              "-X", "PUT", "-H", "Transfer-Encoding: chunked", "--data-binary", "@" + file,
                                                              "http://dory/v1/state"], environment: [:], captureStdout: true)
                _ = curl.waitForExit(timeout: .seconds(10))
                _ = Poll.until(timeout: .seconds(5)) { curl.stdout?.isClosed ?? true }
                #expect(curl.stdout?.text == "413", "\(curl.stderr.text)")
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("case 30: a 2 MiB PUT through curl (Expect: 100-continue) answers 200 without a 1 s stall")
        func case30_largeCurlPut() throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchRun(RunLaunch(["sleep", "300"], environment: ["DORY_STATE_MAX_BYTES": "4194304",
                                                                                             "DORY_SNAPSHOT_MAX_BYTES": "8388608"]))
                try daemon.waitReady()
                let file = sandbox.write("big.json", #"{"p":""# + String(repeating: "y", count: 2 * 1024 * 1024) + #""}"#)
                let start = Poll.now()
                let curl = try sandbox.spawn("/usr/bin/curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", daemon.controlSocketPath,
                                                              "-X", "PUT", "--data-binary", "@" + file, "http://dory/v1/state"],
                                             environment: [:], captureStdout: true)
                _ = curl.waitForExit(timeout: .seconds(10))
                _ = Poll.until(timeout: .seconds(5)) { curl.stdout?.isClosed ?? true }
                #expect(curl.stdout?.text == "200", "\(curl.stderr.text) \(daemon.logTail)")
                #expect(Poll.seconds(since: start) < 1.0)
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("case 31: curl -d (form content type) is accepted; DELETE → 405 with Allow; an unknown path → 404")
        func case31_routes() throws {
            try withSandbox { sandbox in
                let out = sandbox.path("out")
                let script = "curl -sS -o /dev/null -w '%{http_code}' --unix-socket \"$DORY_CONTROL_SOCKET\" -d '{\"n\":2}' -X PUT http://dory/v1/state > \(out).tmp; mv \(out).tmp \(out); exec sleep 300"
                let daemon = try sandbox.launchRun(.sh(script))
                #expect(Poll.until(timeout: .seconds(10)) { Files.exists(out) }, "\(daemon.logTail)")
                #expect(Acceptance.text(out) == "200")
                #expect(Self.body(try daemon.control("GET", "/v1/state"))["state"] == .object(["n": .int(2)]))
                let delete = try daemon.control("DELETE", "/v1/state")
                #expect(delete.status == 405)
                #expect(delete.headers["Allow"] == "GET, HEAD, PUT", "\(delete.headers)")
                #expect(try daemon.control("GET", "/v2/x").status == 404)
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("case 33: a ?sync=0 PUT is lost to SIGKILL (the durable state comes back) but saved by the final save on SIGTERM")
        func case33_asyncPut() throws {
            try withSandbox { sandbox in
                let first = try sandbox.launchRun(RunLaunch(["sleep", "300"]))
                try first.waitReady()
                #expect(try first.control("PUT", "/v1/state", body: #"{"n":1}"#).status == 200)
                #expect(try first.control("PUT", "/v1/state?sync=0", body: #"{"n":5}"#).status == 202)
                first.signal(SIGKILL)
                _ = try first.waitForExit()
                let second = try sandbox.launchRun(RunLaunch(["sleep", "300"]))
                try second.waitReady()
                #expect(Self.body(try second.control("GET", "/v1/state"))["state"] == .object(["n": .int(1)]))
                #expect(try second.control("PUT", "/v1/state?sync=0", body: #"{"n":5}"#).status == 202)
                #expect(try second.stop().code == 143)
                let newest = try second.newestSnapshot()
                #expect(newest.reason == "shutdown")
                #expect(newest.state == ["n": .int(5)])
            }
        }

        @Test("case 34: 100 concurrent durable PUTs all answer 200 with fewer than 100 generations written")
        func case34_concurrentPuts() throws {
            try withSandbox { sandbox in
                // Keep every generation, so each one a PUT was answered with can be read back.
                var launch = RunLaunch(["sleep", "300"])
                launch.environment["DORY_SNAPSHOT_KEEP"] = "100"
                let daemon = try sandbox.launchRun(launch)
                try daemon.waitReady()
                let socket = daemon.controlSocketPath
                let answers = Mutex<[(Int, Int, Int64?)]>([])
                for k in 0..<100 {
                    Threads.start {
                        let response = try? HTTPClient.request(method: "PUT", path: "/v1/state", headers: [:], body: Array(#"{"i":\#(k)}"#.utf8),
                                                               to: .unix(path: socket), timeout: .seconds(10))
                        let generation = response.flatMap { JSON.object($0.body)?["generation"]?.int }
                        answers.withLock { $0.append((k, response?.status ?? -1, generation)) }
                    }
                }
                #expect(Poll.until(timeout: .seconds(15)) { answers.withLock { $0.count } == 100 })
                let all = answers.withLock { $0 }
                #expect(all.allSatisfy { $0.1 == 200 }, "\(all.filter { $0.1 != 200 })")
                #expect(daemon.generations().count < 100, "\(daemon.generations().count) generations")
                var holds: [Int64: Int64] = [:]
                for generation in daemon.generations() {
                    holds[Int64(generation)] = try daemon.snapshot(generation).state["i"]?.int
                }
                for generation in Set(all.compactMap(\.2)) { #expect(holds[generation] != nil, "generation \(generation)") }
                // Each PUT's answer names a generation no older than the first one holding its own state.
                for (k, _, generation) in all {
                    guard let generation, let holder = holds.filter({ $0.value == Int64(k) }).keys.min() else { continue }
                    #expect(generation >= holder, "PUT \(k) answered \(generation), its state is in \(holder)")
                }
                let newest = try daemon.newestSnapshot()
                #expect(Self.body(try daemon.control("GET", "/v1/state"))["state"] == .object(newest.state))
                #expect(try daemon.stop().code == 143)
            }
        }

        @Test("case 35: a durable PUT from the child's TERM handler is answered 200 and ends up in the final save")
        func case35_putWhileStopping() throws {
            try withSandbox { sandbox in
                let out = sandbox.path("code")
                let script = "trap 'curl -sS -o \(out).body -w %{http_code} --unix-socket \"$DORY_CONTROL_SOCKET\" -X PUT --data-binary \"{\\\"bye\\\":1}\" http://dory/v1/state > \(out); exit 0' TERM; touch \(out).ready; \(Acceptance.idle)"
                let daemon = try sandbox.launchRun(.sh(script))
                #expect(Poll.until(timeout: .seconds(5)) { Files.exists(out + ".ready") })
                #expect(try daemon.stop().code == 0, "\(daemon.logTail)")
                #expect(Acceptance.text(out) == "200", "\(Acceptance.text(out + ".body")) \(daemon.logTail)")
                #expect(try daemon.newestSnapshot().state == ["bye": .int(1)])
                #expect(daemon.lastEndRecord?["clean"]?.bool == true)
            }
        }

        @Test("case 36: control.sock has mode 0600 and is removed at exit; a leftover socket does not stop the next start; a regular file → exit 7")
        func case36_controlSocketFile() throws {
            try withSandbox { sandbox in
                let first = try sandbox.launchRun(RunLaunch(["sleep", "300"]))
                try first.waitReady()
                let info = try #require(Files.stat(first.controlSocketPath))
                #expect(info.st_mode & S_IFMT == S_IFSOCK)
                #expect(info.st_mode & 0o777 == 0o600)
                first.signal(SIGKILL)
                _ = try first.waitForExit()
                #expect(Files.exists(first.controlSocketPath))
                let second = try sandbox.launchRun(RunLaunch(["sleep", "300"]))
                try second.waitReady()
                #expect(try second.control("GET", "/v1/state").status == 200)
                #expect(try second.stop().code == 143)
                #expect(!Files.exists(second.controlSocketPath))
                sandbox.write("state/itest-pod/control.sock", "not a socket")
                var launch = RunLaunch(["sleep", "300"])
                launch.waitForListening = false
                let third = try sandbox.launchRun(launch)
                #expect(try third.waitForExit().code == 7, "\(third.logTail)")
            }
        }

        @Test("case 37: GET /v1/context names the pod, the decision, the phase and the child's pid")
        func case37_context() throws {
            try withSandbox { sandbox in
                let pidFile = sandbox.path("pid")
                let daemon = try sandbox.launchRun(.sh("echo $$ > \(pidFile).tmp; mv \(pidFile).tmp \(pidFile); exec sleep 300"))
                try daemon.waitReady()
                #expect(Poll.until(timeout: .seconds(5)) { Files.exists(pidFile) })
                let context = Self.body(try daemon.control("GET", "/v1/context"))
                #expect(context["pod_name"]?.string == "itest-pod")
                #expect(context["namespace"]?.string == "itest-ns")
                #expect(context["processor_id"]?.string == "itest-pod")
                #expect(context["attempt"]?.int == 1)
                #expect(context["strategy"]?.string == "fresh")
                #expect(context["phase"]?.string == "running")
                #expect(context["child_pid"]?.int.map(String.init) == Acceptance.lines(pidFile).first, "\(context)")
                #expect(try daemon.stop().code == 143)
            }
        }
    }
}

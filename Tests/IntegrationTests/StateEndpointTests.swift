import DoryHTTP
import DoryState
import Glibc
import Testing

/// §12 `/state` cases 38–48 and the number forms of case 83.
@Suite struct StateEndpointTests {
    static func errorCode(_ response: HTTPClient.Response) -> String? { JSON.object(response.body)?["error"]?.string }

    /// A POST body of exactly `size` UTF-8 bytes: `{"data":{"counter":1,"padding":"xxx…"}}`.
    static func body(size: Int, filler: String = "x") -> String {
        let head = "{\"data\":{\"counter\":1,\"padding\":\""
        let tail = "\"}}"
        let fillerBytes = filler.utf8.count
        var middle = ""
        var used = head.utf8.count + tail.utf8.count
        while used + fillerBytes <= size { middle += filler; used += fillerBytes }
        while used < size { middle += "x"; used += 1 }
        return head + middle + tail
    }

    /// The same body sent chunked (in 100-byte chunks).
    static func chunked(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        let bytes = Array(text.utf8)
        var index = 0
        while index < bytes.count {
            let piece = bytes[index..<min(bytes.count, index + 100)]
            out += Array(String(piece.count, radix: 16).utf8) + [13, 10] + piece + [13, 10]
            index += piece.count
        }
        return out + Array("0\r\n\r\n".utf8)
    }

    // Case 38: token rules; no DORY_STATE_TOKEN → GET and POST 403 naming DORY_STATE_TOKEN.
    @Test func case38_tokens() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.demo(["DORY_STATE_TOKEN": "s3cret"]))
            try daemon.waitReady()
            let cases: [(String?, Int, String?)] = [
                (nil, 401, "missing_authorization"), ("Basic x", 401, "invalid_authorization_format"),
                ("Bearer wrong", 401, "invalid_token"), ("bearer s3cret", 200, nil), ("BEARER   s3cret", 200, nil),
            ]
            for (header, status, code) in cases {
                let headers: HTTPHeaders = header.map { ["Authorization": $0] } ?? [:]
                let response = try daemon.get("/state", headers: headers)
                #expect(response.status == status, "\(header ?? "no header"): \(response.status) \(response.text)")
                if let code {
                    #expect(Self.errorCode(response) == code)
                    #expect(response.headers["WWW-Authenticate"]?.hasPrefix("Bearer") == true)
                }
            }
            #expect(try daemon.stop().code == 0)

            var options = LaunchOptions.demo()
            options.unset = ["DORY_STATE_TOKEN"]
            let closed = try sandbox.launch(options)
            try closed.waitReady()
            for response in [try closed.getState(), try closed.postState("{\"data\":{\"counter\":3}}")] {
                #expect(response.status == 403)
                #expect(Self.errorCode(response) == "state_transfer_disabled")
                #expect(JSON.object(response.body)?["message"]?.string?.contains("DORY_STATE_TOKEN") == true, "\(response.text)")
            }
        }
    }

    // Case 39: GET while running → the twelve fields; before restore → 503 with Retry-After; HEAD → 200, Content-Length 0.
    @Test func case39_getShapeAndPhases() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.fixture(["FIXTURE_STARTUP_SLEEP_SEC": "1.5"]))
            let early = try daemon.getState()
            #expect(early.status == 503, "\(early.text)")
            #expect(Self.errorCode(early) == "not_restored")
            #expect(early.headers["Retry-After"] == "1")
            #expect(JSON.object(early.body)?["phase"]?.string != nil)
            try daemon.waitReady()
            let response = try daemon.getState()
            #expect(response.status == 200)
            #expect(response.headers["Content-Type"]?.hasPrefix("application/json") == true)
            let body = try #require(JSON.object(response.body))
            let fields = ["pod_name", "app_name", "captured_at", "state_version", "data", "metrics", "connections",
                          "active_sessions", "session_data", "uptime_seconds", "request_count", "last_health_time"]
            #expect(Set(body.keys).isSuperset(of: fields), "missing: \(Set(fields).subtracting(body.keys))")
            #expect(body["pod_name"]?.string == "itest-pod")
            #expect(body["state_version"]?.string == "1.0")
            #expect(body["data"]?["counter"]?.int != nil && body["data"]?["ratio"] != nil)
            #expect(body["connections"]?.array?.isEmpty == true)
            #expect(body["active_sessions"]?.int == 0)
            let metrics = body["metrics"]
            #expect(metrics?["restart_count"] != nil && metrics?["crashes_in_window"] != nil && metrics?["last_generation"] != nil)
            #expect(body["captured_at"]?.string?.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil)
            let head = try daemon.request("HEAD", "/state", headers: Daemon.bearer)
            #expect(head.status == 200)
            #expect(head.headers["Content-Length"] == "0")
        }
    }

    // Case 40: DORY_STATE_MAX_BYTES=1024: larger state → GET 413 with sizes; POST of 1024 bytes accepted, 1025 → 413,
    // by Content-Length and chunked. Case 41 (part): a 4-byte emoji counts as 4 bytes.
    @Test func case40_sizeLimit() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.demo(["DORY_STATE_MAX_BYTES": "1024"], arguments: ["--state-bytes", "4000"]))
            try daemon.waitReady()
            let get = try daemon.getState()
            #expect(get.status == 413, "\(get.text.prefix(200))")
            #expect(Self.errorCode(get) == "state_too_large")
            #expect((JSON.object(get.body)?["size_bytes"]?.int ?? 0) > 1024)
            #expect(JSON.object(get.body)?["max_bytes"]?.int == 1024)

            for chunked in [false, true] {
                for (size, expected) in [(1024, 200), (1025, 413)] {
                    let text = Self.body(size: size)
                    #expect(text.utf8.count == size)
                    let response = chunked
                        ? try daemon.request("POST", "/state", headers: Daemon.bearer + ["Content-Type": "application/json", "Transfer-Encoding": "chunked"],
                                             body: Self.chunked(text))
                        : try daemon.postState(text)
                    #expect(response.status == expected, "chunked=\(chunked) size \(size): \(response.status) \(response.text)")
                    if expected == 413 {
                        #expect(Self.errorCode(response) == "state_too_large", "chunked=\(chunked): \(response.text)")
                        #expect(JSON.object(response.body)?["max_bytes"]?.int == 1024, "chunked=\(chunked): \(response.text)")
                        #expect(JSON.object(response.body)?["size_bytes"]?.int != nil, "chunked=\(chunked): \(response.text)")
                    }
                }
            }
            // 4-byte emoji: 1025 bytes but fewer characters → 413; exactly 1024 bytes with emoji → accepted.
            let emojiOver = Self.body(size: 1025, filler: "😀")
            #expect(emojiOver.utf8.count == 1025 && emojiOver.count < 1024)
            #expect(try daemon.postState(emojiOver).status == 413)
            let emojiFit = Self.body(size: 1024, filler: "😀")
            #expect(try daemon.postState(emojiFit).status == 200)
        }
    }

    // Case 41: default limit: 1 MiB + 1 accepted; 8 MiB + 1 → 413.
    @Test func case41_defaultLimit() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.demo())
            try daemon.waitReady()
            let small = try daemon.postState(Self.body(size: 1_048_577), timeout: .seconds(20))
            #expect(small.status == 200, "\(small.text)")
            let big = try daemon.postState(Self.body(size: 8_388_609), timeout: .seconds(20))
            #expect(big.status == 413, "\(big.text)")
            #expect(JSON.object(big.body)?["max_bytes"]?.int == 8_388_608)
        }
    }

    // Case 42: non-objects, broken JSON, missing data → 400 with the right code.
    @Test func case42_badBodies() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.demo())
            try daemon.waitReady()
            let cases: [(String, String)] = [
                ("[1,2]", "not_an_object"), ("\"str\"", "not_an_object"), ("null", "not_an_object"),
                ("", "invalid_json"), ("{\"data\":", "invalid_json"), ("{\"counter\":5}", "missing_data"),
                ("{\"data\":[1]}", "missing_data"),
            ]
            for (body, code) in cases {
                let response = try daemon.postState(body)
                #expect(response.status == 400, "\(body): \(response.status)")
                #expect(Self.errorCode(response) == code, "\(body): \(response.text)")
                #expect(JSON.object(response.body)?["message"]?.string != nil)
            }
            let wrongType = try daemon.postState("{\"data\":{}}", headers: ["Content-Type": "text/plain"])
            #expect(wrongType.status == 415)
        }
    }

    // Case 43: a type mismatch → 400 invalid_state naming counter; state unchanged; the process keeps running.
    @Test func case43_invalidState() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.demo())
            try daemon.waitReady()
            let response = try daemon.postState("{\"data\":{\"counter\":\"x\"}}")
            #expect(response.status == 400)
            #expect(Self.errorCode(response) == "invalid_state")
            #expect(JSON.object(response.body)?["fields"]?["counter"]?.string != nil, "\(response.text)")
            #expect(try daemon.currentState()["counter"]?.int != nil)
            #expect(daemon.saved(reason: "transfer").isEmpty)
            #expect(daemon.process.isRunning)
        }
    }

    // Case 44: a processor with `counter` and `data` properties → both restored from {"data":{"counter":7,"data":{"k":1}}}.
    @Test func case44_dataMemberNamedData() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.fixture())
            try daemon.waitReady()
            let response = try daemon.postState("{\"data\":{\"counter\":7,\"data\":{\"k\":1}}}")
            #expect(response.status == 200, "\(response.text)")
            #expect(JSON.object(response.body)?["status"]?.string == "applied")
            let state = try daemon.currentState()
            #expect(state["data"] == .object(["k": .int(1)]), "\(state)")
            let counter = state["counter"]?.int ?? -1
            #expect(counter >= 7 && counter < 200, "counter \(counter)")
        }
    }

    // Case 45: POST while running → applied, a new generation with reason transfer; after a restart the counter comes
    // from it.
    @Test func case45_appliedTransferSurvivesRestart() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.demo())
            try daemon.waitReady()
            let response = try daemon.postState("{\"data\":{\"counter\":100000}}")
            #expect(response.status == 200, "\(response.text)")
            let body = JSON.object(response.body)
            #expect(body?["status"]?.string == "applied")
            #expect(body?["ignored_keys"]?.array != nil)
            let generation = try #require(body?["generation"]?.int)
            let file = try daemon.snapshot(UInt64(generation))
            #expect(file.reason == "transfer")
            #expect(file.counter == 100000)
            #expect(try daemon.stop().code == 0)
            let next = try sandbox.launch(.demo())
            try next.waitReady()
            #expect((try next.currentState()["counter"]?.int ?? 0) >= 100000)
        }
    }

    // Case 46: POST counter 999 during a 3 s startup with an older state on disk → 200 staged; once ready the counter is
    // 999. POST during draining → 409 shutting_down without Retry-After.
    @Test func case46_stagedTransferAndDraining() throws {
        try withSandbox { sandbox in
            #expect(try LifecycleTests.seed(sandbox).code == 0)
            let daemon = try sandbox.launch(.fixture(["FIXTURE_STARTUP_SLEEP_SEC": "3"]))
            #expect(daemon.waitForLog { $0["fixture_hook"]?.string == "startup" } != nil)
            let response = try daemon.postState("{\"data\":{\"counter\":999}}")
            #expect(response.status == 200, "\(response.text)")
            let body = JSON.object(response.body)
            #expect(body?["status"]?.string == "staged")
            let generation = try #require(body?["generation"]?.int)
            #expect(try daemon.snapshot(UInt64(generation)).counter == 999)
            try daemon.waitReady()
            let counter = try daemon.currentState()["counter"]?.int ?? -1
            #expect(counter >= 999 && counter < 999 + 50, "counter \(counter)")

            #expect(try daemon.get("/prestop").status == 200)
            let late = try daemon.postState("{\"data\":{\"counter\":5}}")
            #expect(late.status == 409)
            #expect(Self.errorCode(late) == "shutting_down")
            #expect(late.headers["Retry-After"] == nil)
        }
    }

    // Case 47: getState taking 3 s, DORY_STATE_CAPTURE_TIMEOUT_SEC=1 → 504 at about 1.0 s; three concurrent GETs → one
    // capture, identical bodies.
    @Test func case47_captureTimeoutAndSharing() throws {
        try withSandbox { sandbox in
            let slow = try sandbox.launch(.fixture(["FIXTURE_GETSTATE_SLEEP_SEC": "3", "DORY_STATE_CAPTURE_TIMEOUT_SEC": "1"]))
            try slow.waitReady(timeout: .seconds(20))
            let start = Poll.now()
            let response = try slow.getState()
            let elapsed = Poll.seconds(since: start)
            #expect(response.status == 504, "\(response.text)")
            #expect(Self.errorCode(response) == "capture_timeout")
            #expect(elapsed > 0.9 && elapsed < 1.4, "504 after \(elapsed) s")
            slow.process.terminate()

            let shared = try sandbox.launch(.fixture(["FIXTURE_GETSTATE_SLEEP_SEC": "0.5"]))
            try shared.waitReady(timeout: .seconds(20))
            let port = shared.port
            let calls = (0..<3).map { _ in
                Background { () -> HTTPClient.Response? in
                    try? HTTPClient.request(path: "/state", headers: Daemon.bearer, to: .tcp(host: "127.0.0.1", port: port))
                }
            }
            let bodies = calls.compactMap { $0.wait() ?? nil }
            #expect(bodies.count == 3 && bodies.allSatisfy { $0.status == 200 })
            #expect(Set(bodies.map(\.text)).count == 1, "bodies differ: \(bodies.map(\.text))")
        }
    }

    // Case 48: getState throwing → 500 capture_failed; a NaN → 500 state_not_encodable; never 200.
    @Test(arguments: [("FIXTURE_GETSTATE_THROW", "capture_failed"), ("FIXTURE_NAN", "state_not_encodable")])
    func case48_captureErrors(_ variable: String, _ code: String) throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.fixture([variable: "1"]))
            #expect(Poll.until(timeout: .seconds(10)) { daemon.events("lifecycle.phase").contains { $0["phase"]?.string == "running" } },
                    "\(daemon.logTail)")
            let response = try daemon.getState()
            #expect(response.status == 500, "\(response.text)")
            #expect(Self.errorCode(response) == code, "\(response.text)")
        }
    }

    // Case 83: the double 13.0 stays 13.0 in GET /state; a staged POST with 10^20, 13.0 and 1e16 is written exactly.
    @Test func case83_numbers() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.fixture(["FIXTURE_DOUBLE": "13.0", "FIXTURE_STARTUP_SLEEP_SEC": "1.5"]))
            #expect(daemon.waitForLog { $0["fixture_hook"]?.string == "startup" } != nil)
            let staged = try daemon.postState("{\"data\":{\"big\":100000000000000000000,\"f\":13.0,\"h\":1e16}}")
            #expect(staged.status == 200, "\(staged.text)")
            let generation = try #require(JSON.object(staged.body)?["generation"]?.int)
            let file = try daemon.snapshot(UInt64(generation))
            #expect(file.text.contains("100000000000000000000"), "\(file.text)")
            #expect(file.text.contains("13.0"), "\(file.text)")
            #expect(file.text.contains("1e+16"), "\(file.text)")
            try daemon.waitReady()
            let text = try daemon.getState().text
            #expect(text.contains("\"ratio\":13.0"), "\(text)")
        }
    }
}

extension HTTPHeaders {
    static func + (lhs: HTTPHeaders, rhs: HTTPHeaders) -> HTTPHeaders {
        var all = lhs
        for field in rhs { all.add(field.name, field.value) }
        return all
    }
}

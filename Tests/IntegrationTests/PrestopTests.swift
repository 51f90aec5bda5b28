import DoryHTTP
import DoryState
import Glibc
import Testing

/// §12 `/prestop` cases 32–37 and the control socket (case 79).
@Suite struct PrestopTests {
    // Case 32: GET /prestop while running → 200 with generation N once file N decodes (reason prestop); /ready 503;
    // the process lives on and counts; /healthz 200.
    @Test func case32_prestopSavesAndKeepsRunning() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.demo())
            try daemon.waitReady()
            let response = try daemon.get("/prestop")
            #expect(response.status == 200, "\(response.text)")
            let body = try #require(JSON.object(response.body))
            #expect(body["status"]?.string == "saved")
            #expect(body["durable"]?.bool == true)
            #expect(body["reused"]?.bool != nil && body["drain_sec"] != nil && body["duration_ms"] != nil, "\(response.text)")
            let generation = try #require(body["generation"]?.int)
            let snapshot = try daemon.snapshot(UInt64(generation))
            #expect(snapshot.reason == "prestop")
            #expect(snapshot.generation == generation)
            #expect(daemon.status("/ready") == 503)
            #expect(daemon.status("/healthz") == 200)
            #expect(daemon.process.isRunning)
            // /prestop sets isMigrationImminent; the run loop logs it once at INFO with event=runloop.migration_imminent
            // (§3.2), as doryd's own event key, not renamed to x_event.
            let migration = daemon.waitForLog(timeout: .seconds(2)) { ($0["msg"]?.string ?? "").contains("migration") }
            #expect(migration?["event"]?.string == "runloop.migration_imminent", "\(String(describing: migration))")
            // Still counting: the final save holds a larger counter than the prestop one.
            let prestopCounter = try #require(snapshot.counter)
            #expect(Poll.until(timeout: .seconds(5)) { ((try? daemon.currentState())?["counter"]?.int ?? 0) > prestopCounter })
            #expect(try daemon.stop().code == 0)
        }
    }

    // Case 33: DORY_PRESTOP_DRAIN_SEC=2 → the answer after at least 2 s, /ready 503 throughout (from the call on).
    @Test func case33_drainDelay() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.demo(["DORY_PRESTOP_DRAIN_SEC": "2"]))
            try daemon.waitReady()
            let port = daemon.port
            let start = Poll.now()
            let call = Background { () -> Int? in
                try? HTTPClient.request(path: "/prestop", to: .tcp(host: "127.0.0.1", port: port), timeout: .seconds(10)).status
            }
            // Readiness turns false at once, before the answer.
            #expect(daemon.waitForStatus("/ready", 503, timeout: .seconds(1)))
            #expect(!call.isDone, "the prestop answer came before readiness turned false")
            let watcher = StatusWatcher(port: port, path: "/ready")
            let status = call.wait(timeout: .seconds(10))
            let elapsed = Poll.seconds(since: start)
            let statuses = watcher.stop().compactMap(\.status)
            #expect(status == 200)
            #expect(elapsed >= 2.0, "answered after \(elapsed) s")
            #expect(!statuses.isEmpty && statuses.allSatisfy { $0 == 503 }, "\(statuses)")
            #expect(daemon.status("/ready") == 503)
        }
    }

    // Case 34: HEAD /prestop → 405 with Allow: GET, POST, readiness unchanged; with DORY_CONTROL_TOKEN no header → 401,
    // the right token → 200.
    @Test func case34_headAndControlToken() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.demo(["DORY_CONTROL_TOKEN": "control-token-0123456789"]))
            try daemon.waitReady()
            let head = try daemon.request("HEAD", "/prestop")
            #expect(head.status == 405)
            let allow = (head.headers["Allow"] ?? "").split(separator: ",").map { $0.trimmingASCIIWhitespace() }
            #expect(Set(allow) == ["GET", "POST"], "Allow: \(head.headers["Allow"] ?? "none")")
            #expect(daemon.status("/ready") == 200)
            let missing = try daemon.get("/prestop")
            #expect(missing.status == 401)
            #expect(missing.headers["WWW-Authenticate"]?.hasPrefix("Bearer") == true)
            #expect(try daemon.get("/prestop", headers: ["Authorization": "Bearer wrong-token"]).status == 401)
            #expect(daemon.status("/ready") == 200, "a refused /prestop changed readiness")
            let ok = try daemon.get("/prestop", headers: ["Authorization": "Bearer control-token-0123456789"])
            #expect(ok.status == 200, "\(ok.text)")
            #expect(daemon.status("/ready") == 503)
        }
    }

    // Case 35: snapshot writes failing (DORY_TEST_FAULT=open@snapshots/) → 500 naming the failing step; never 200.
    @Test func case35_failingWritesGive500() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.demo(["DORY_TEST_FAULT": "open@snapshots/"]))
            try daemon.waitReady()
            for attempt in 1...2 {
                let response = try daemon.get("/prestop")
                #expect(response.status == 500, "attempt \(attempt): \(response.status) \(response.text)")
                let body = JSON.object(response.body)
                #expect(body?["error"]?.string == "save_failed")
                #expect(body?["status"]?.string == "failed")
                #expect(body?["step"]?.string == "open", "\(response.text)")
                #expect(body?["message"]?.string?.contains("Input/output error") == true, "\(response.text)")
            }
            #expect(daemon.generations().isEmpty)
        }
    }

    // Case 55: injected fsync failure → result="error" counted, /prestop 500.
    @Test func case55_fsyncFailure() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.demo(["DORY_TEST_FAULT": "fsync@snapshots/"]))
            try daemon.waitReady()
            let response = try daemon.get("/prestop")
            #expect(response.status == 500, "\(response.text)")
            #expect(JSON.object(response.body)?["step"]?.string == "fsync", "\(response.text)")
            let metrics = try daemon.metrics()
            #expect((metrics.value("dory_snapshots_total", ["reason": "prestop", "result": "error"]) ?? 0) >= 1)
            #expect(daemon.saved().isEmpty)
            #expect(Files.list(daemon.snapshotsDir).filter { $0.contains(".tmp.") }.isEmpty, "temp file left behind")
            let failure = daemon.events("snapshot.failed").first
            #expect(failure?["error"]?["message"]?.string?.contains("Input/output error") == true)
        }
    }

    // Case 36: two concurrent calls → one save, same generation; later GET or POST → 200 with that generation, no new file.
    @Test func case36_concurrentPrestopsJoin() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.demo(["DORY_PRESTOP_DRAIN_SEC": "0.5"]))
            try daemon.waitReady()
            let port = daemon.port
            let calls = (0..<2).map { _ in
                Background { () -> HTTPClient.Response? in
                    try? HTTPClient.request(path: "/prestop", to: .tcp(host: "127.0.0.1", port: port), timeout: .seconds(10))
                }
            }
            let responses = calls.compactMap { $0.wait() ?? nil }
            #expect(responses.count == 2 && responses.allSatisfy { $0.status == 200 })
            let generations = Set(responses.compactMap { JSON.object($0.body)?["generation"]?.int })
            #expect(generations.count == 1, "\(responses.map(\.text))")
            #expect(daemon.saved(reason: "prestop").count == 1)
            let files = Files.list(daemon.snapshotsDir)
            for method in ["GET", "POST"] {
                let later = try daemon.request(method, "/prestop")
                #expect(later.status == 200)
                #expect(JSON.object(later.body)?["generation"]?.int == generations.first)
            }
            #expect(Files.list(daemon.snapshotsDir) == files)
            #expect(daemon.saved(reason: "prestop").count == 1)
        }
    }

    // Case 37: /prestop, then SIGTERM → final generation above the prestop one; exit 0.
    @Test func case37_prestopThenSigterm() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.demo())
            try daemon.waitReady()
            let prestop = try #require(JSON.object(try daemon.get("/prestop").body)?["generation"]?.int)
            // The demo keeps counting while draining, so the final state differs from the prestop one.
            #expect(Poll.until(timeout: .seconds(5)) { ((try? daemon.currentState())?["counter"]?.int ?? 0) > (try? daemon.snapshot(UInt64(prestop)).counter ?? 0) ?? 0 })
            #expect(try daemon.stop().code == 0)
            let final = try #require(daemon.generations().last)
            #expect(final > UInt64(prestop))
            #expect(try daemon.snapshot(final).reason == "shutdown")
        }
    }

    // Case 79: control.sock exists with mode 0600; `doryd prestop` → exit 0, the body on stdout, /ready 503; with
    // DORY_CONTROL_TOKEN the socket needs no token while TCP /prestop does; after exit the socket is gone.
    @Test func case79_controlSocketAndPrestopCommand() throws {
        try withSandbox { sandbox in
            let token = "control-token-0123456789"
            let daemon = try sandbox.launch(.demo(["DORY_CONTROL_TOKEN": token]))
            try daemon.waitReady()
            let info = try #require(Files.stat(daemon.controlSocketPath), "no \(daemon.controlSocketPath)")
            #expect(info.st_mode & S_IFMT == S_IFSOCK)
            #expect(info.st_mode & 0o777 == 0o600, "mode \(String(info.st_mode & 0o777, radix: 8))")
            #expect(try daemon.get("/prestop").status == 401)
            #expect(daemon.status("/ready") == 200)

            var environment = sandbox.baseEnvironment()
            environment["DORY_CONTROL_TOKEN"] = token
            let client = try sandbox.spawn(try Binaries.doryd(), ["prestop", "--state-dir", daemon.stateDir],
                                           environment: environment, captureStdout: true)
            let exit = client.waitForExit(timeout: .seconds(10))
            _ = Poll.until(timeout: .seconds(2)) { client.stdout!.isClosed }
            #expect(exit?.code == 0, "doryd prestop: \(String(describing: exit)); stderr: \(client.stderr.text)")
            let body = JSON.object(client.stdout!.text.trimmingASCIIWhitespace())
            #expect(body?["status"]?.string == "saved", "stdout: \(client.stdout!.text)")
            #expect(body?["generation"]?.int != nil)
            #expect(daemon.status("/ready") == 503)
            #expect(try daemon.stop().code == 0)
            #expect(!Files.exists(daemon.controlSocketPath), "control socket left behind")

            // With no doryd running, `doryd prestop` exits 1.
            let orphan = try sandbox.spawn(try Binaries.doryd(), ["prestop", "--state-dir", daemon.stateDir],
                                           environment: environment, captureStdout: true)
            #expect(orphan.waitForExit(timeout: .seconds(10))?.code == 1)
        }
    }
}

extension String {
    func trimmingASCIIWhitespace() -> String { String(self[...].trimmingASCIIWhitespace()) }
}
extension Substring {
    func trimmingASCIIWhitespace() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" || f == "\n" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" || l == "\r" { s = s.dropLast() }
        return s
    }
}

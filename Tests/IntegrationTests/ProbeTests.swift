import DoryHTTP
import DoryState
import Glibc
import Synchronization
import Testing

/// §12 probes, metrics and connection handling: cases 69–74, 81, 82.
@Suite struct ProbeTests {
    // Case 69: /ready 503 and /healthz 200 during startup; aliases answer alike; HEAD /healthz → 200 without body.
    @Test func case69_probesDuringStartupAndAliases() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.fixture(["FIXTURE_STARTUP_SLEEP_SEC": "1.5"]))
            #expect(daemon.waitForLog { $0["fixture_hook"]?.string == "startup" } != nil)
            for path in ["/ready", "/readyz"] {
                let response = try daemon.get(path)
                #expect(response.status == 503, "\(path)")
                let body = JSON.object(response.body)
                #expect(body?["status"]?.string == "not_ready" && body?["ready"]?.bool == false && body?["phase"]?.string == "starting",
                        "\(path): \(response.text)")
            }
            for path in ["/healthz", "/livez", "/health"] {
                let response = try daemon.get(path)
                #expect(response.status == 200, "\(path)")
                #expect(JSON.object(response.body)?["status"]?.string == "ok", "\(path): \(response.text)")
            }
            try daemon.waitReady()
            for path in ["/ready", "/readyz"] {
                let response = try daemon.get(path)
                #expect(response.status == 200 && JSON.object(response.body)?["status"]?.string == "ready", "\(path): \(response.text)")
            }
            // HEAD /healthz: a head with Content-Length, then nothing.
            let raw = try RawConnection(port: daemon.port)
            raw.send("HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let (bytes, _) = raw.receive(timeout: .seconds(3))
            #expect(RawConnection.status(bytes) == 200)
            let text = String(decoding: bytes, as: UTF8.self)
            let parts = text.split(separator: "\r\n\r\n", maxSplits: 1, omittingEmptySubsequences: false)
            #expect(parts.count == 2 && parts[1].isEmpty, "HEAD sent a body: \(text)")
            #expect(text.lowercased().contains("content-length:"))
        }
    }

    // Case 70: every response (404, 405, 401, 413 included) carries X-Dory-Version equal to the first log line's version;
    // JSON error bodies have string `error` and `message`.
    @Test func case70_versionHeaderAndErrorShape() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.demo(["DORY_STATE_MAX_BYTES": "1024", "DORY_CONTROL_TOKEN": "control-token-0123456789"]))
            try daemon.waitReady()
            let version = try #require(daemon.version)
            let responses: [(String, HTTPClient.Response, Int)] = [
                ("/ready", try daemon.get("/ready"), 200),
                ("/", try daemon.get("/"), 200),
                ("/metrics", try daemon.get("/metrics"), 200),
                ("/nope", try daemon.get("/nope"), 404),
                ("DELETE /healthz", try daemon.request("DELETE", "/healthz"), 405),
                ("/prestop no token", try daemon.get("/prestop"), 401),
                ("/state no token", try daemon.get("/state"), 401),
                ("/state 413", try daemon.postState(StateEndpointTests.body(size: 2000)), 413),
            ]
            for (what, response, status) in responses {
                #expect(response.status == status, "\(what): \(response.status)")
                #expect(response.headers["X-Dory-Version"] == version, "\(what): X-Dory-Version \(response.headers["X-Dory-Version"] ?? "missing")")
                #expect(response.headers["Cache-Control"] == "no-store", "\(what)")
                if status >= 400 {
                    let body = JSON.object(response.body)
                    #expect(body?["error"]?.string != nil && body?["message"]?.string != nil, "\(what): \(response.text)")
                }
            }
            let notFound = JSON.object(try daemon.get("/nope").body)
            #expect(notFound?["error"]?.string == "not_found" && notFound?["path"]?.string == "/nope")
            let notAllowed = try daemon.request("DELETE", "/healthz")
            #expect(notAllowed.headers["Allow"] != nil)
            #expect(JSON.object(notAllowed.body)?["allow"]?.array != nil)
        }
    }

    // Case 71: a failing readiness check → /ready 503 once running, verbose [-]custom:<name>; ?verbose&exclude=ping → no
    // ping line.
    @Test func case71_readinessCheck() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.fixture(["FIXTURE_READINESS_CHECK": "fail"]))
            #expect(Poll.until(timeout: .seconds(10)) { daemon.events("lifecycle.phase").contains { $0["phase"]?.string == "running" } })
            #expect(Poll.until(timeout: .seconds(3)) { (try? daemon.get("/ready?verbose").text.contains("[-]custom:cache")) == true })
            let verbose = try daemon.get("/ready?verbose")
            #expect(verbose.status == 503)
            #expect(verbose.headers["Content-Type"]?.hasPrefix("text/plain") == true)
            #expect(verbose.text.contains("[-]custom:cache failed"), "\(verbose.text)")
            #expect(verbose.text.contains("readyz check failed"), "\(verbose.text)")
            let ready = JSON.object(try daemon.get("/ready").body)
            #expect(ready?["reason"]?.string == "custom:cache", "\(String(describing: ready))")
            let excluded = try daemon.get("/healthz?verbose&exclude=ping")
            #expect(!excluded.text.contains("ping"), "\(excluded.text)")
            #expect(try daemon.get("/healthz?verbose").text.contains("[+]ping ok"))
        }
    }

    // Case 72: failing liveness check → 503 with the default hook, 200 `recovering` when the hook says true; a sleeping
    // check with DORY_CHECK_TIMEOUT_MS=100 → failed within 2 s, /healthz still fast, failures grow about once a second.
    @Test func case72_livenessChecks() throws {
        try withSandbox { sandbox in
            let failing = try sandbox.launch(.fixture(["FIXTURE_LIVENESS_CHECK": "fail"]))
            #expect(failing.waitForStatus("/healthz", 503, timeout: .seconds(5)), "\(failing.logTail)")
            #expect(try failing.get("/healthz?verbose").text.contains("connection refused"))
            #expect(failing.hooks.filter { $0 == "onHealthCheckFailed" }.count == 1)
            failing.process.terminate()

            let recovering = try sandbox.launch(.fixture(["FIXTURE_LIVENESS_CHECK": "fail", "FIXTURE_HEALTH_HOOK": "true"]))
            #expect(Poll.until(timeout: .seconds(5)) { (try? recovering.get("/healthz?verbose").text.contains("recovering")) == true })
            #expect(recovering.status("/healthz") == 200)
            recovering.process.terminate()

            let slow = try sandbox.launch(.fixture(["FIXTURE_LIVENESS_CHECK": "sleep", "DORY_CHECK_TIMEOUT_MS": "100"]))
            try slow.waitReady()
            let start = Poll.now()
            #expect(Poll.until(timeout: .seconds(3)) { (try? slow.get("/healthz?verbose").text.contains("[-]custom:db")) == true })
            #expect(Poll.seconds(since: start) < 2.2)
            let before = try slow.metrics().value("dory_health_check_failures_total", ["probe": "liveness", "check": "custom:db"]) ?? 0
            let windowStart = Poll.now()
            var worst = 0.0
            while Poll.seconds(since: windowStart) < 3 {
                let t = Poll.now()
                _ = slow.status("/healthz")
                worst = max(worst, Poll.seconds(since: t))
            }
            let after = try slow.metrics().value("dory_health_check_failures_total", ["probe": "liveness", "check": "custom:db"]) ?? 0
            #expect(after - before >= 2 && after - before <= 4, "failures grew by \(after - before) in 3 s of heavy probing")
            #expect(worst < 0.1, "slowest /healthz \(worst * 1000) ms")
        }
    }

    static let families: [(String, String)] = [
        ("dory_info", "gauge"), ("dory_process_start_time_seconds", "gauge"), ("dory_uptime_seconds", "gauge"),
        ("dory_ready", "gauge"), ("dory_phase", "gauge"), ("dory_restart_count", "gauge"),
        ("dory_crashes_in_window", "gauge"), ("dory_recovery_strategy_info", "gauge"),
        ("dory_recovery_backoff_seconds", "gauge"), ("dory_snapshots_total", "counter"),
        ("dory_snapshot_duration_seconds", "histogram"), ("dory_snapshot_bytes", "gauge"),
        ("dory_last_snapshot_age_seconds", "gauge"), ("dory_last_snapshot_generation", "gauge"),
        ("dory_snapshots_quarantined_total", "counter"), ("dory_signals_received_total", "counter"),
        ("dory_http_requests_total", "counter"), ("dory_health_check_failures_total", "counter"),
        ("dory_state_transfers_total", "counter"),
    ]

    // Case 73: /metrics parses; every family of §4.6 with HELP and TYPE; one SIGUSR1 → snapshots_total{sigusr1,ok} 1;
    // a quote in the pod name is escaped; route holds templates.
    @Test func case73_metrics() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.demo(["DORY_POD_NAME": "it\"est\\pod", "DORY_PROCESSOR_ID": "itest-pod"]))
            try daemon.waitReady()
            #expect(Poll.until(timeout: .seconds(5)) { ((try? daemon.currentState())?["counter"]?.int ?? 0) >= 2 })
            let response = try daemon.get("/metrics")
            #expect(response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8")
            _ = try daemon.get("/nope/x")
            _ = try daemon.getState()
            daemon.signal(SIGUSR1)
            #expect(daemon.waitForLog { $0["event"]?.string == "snapshot.saved" && $0["reason"]?.string == "sigusr1" } != nil)
            let metrics = try daemon.metrics()
            for (name, type) in Self.families {
                #expect(metrics.families[name]?.type == type, "family \(name): \(String(describing: metrics.families[name]))")
                #expect(metrics.families[name]?.help?.isEmpty == false, "no HELP for \(name)")
                // Families whose labels name open sets (a quarantine reason, a check name) have no sample until one happens.
                if !["dory_snapshots_quarantined_total", "dory_health_check_failures_total"].contains(name) {
                    #expect(!metrics.samples.filter { metrics.family(of: $0.name) == name }.isEmpty, "no sample of \(name)")
                }
            }
            for (name, family) in metrics.families where family.type == "counter" { #expect(name.hasSuffix("_total")) }
            #expect(metrics.value("dory_snapshots_total", ["reason": "sigusr1", "result": "ok"]) == 1)
            #expect(metrics.samples("dory_info").first?.labels["pod"] == "it\"est\\pod")
            #expect(response.text.contains(#"pod="it\"est\\pod""#), "label not escaped")
            #expect(metrics.value("dory_ready") == 1)
            #expect(metrics.value("dory_phase", ["phase": "running"]) == 1)
            #expect(metrics.samples("dory_phase").count == 9)
            let routes = Set(metrics.samples("dory_http_requests_total").compactMap { $0.labels["route"] })
            #expect(routes.contains("other") && routes.contains("/state") && routes.contains("/ready"), "\(routes)")
            #expect(!routes.contains("/nope/x"))
            #expect(metrics.value("dory_last_snapshot_generation") != nil)
            #expect((metrics.value("dory_snapshot_duration_seconds_count") ?? 0) >= 2)
            #expect(metrics.samples("dory_snapshot_duration_seconds_bucket").count == 13)
            #expect((metrics.value("dory_state_transfers_total", ["op": "get"]) ?? 0) >= 1)
        }
    }

    // Case 74: 400 idle + 100 trickling connections → /healthz p95 < 50 ms; 300 malformed requests → 4xx or close,
    // never 2xx; the daemon lives on.
    @Test func case74_connectionFloodAndMalformedRequests() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.demo())
            try daemon.waitReady()
            let idle = try (0..<400).map { _ in try RawConnection(port: daemon.port) }
            let trickling = try (0..<100).map { _ -> RawConnection in
                let connection = try RawConnection(port: daemon.port)
                connection.send("GET /healthz HTTP/1.1\r\nX-Slow: ")
                return connection
            }
            let stop = Atomic<Bool>(false)
            let trickler = Background { () -> Bool in
                while !stop.load(ordering: .acquiring) {
                    for connection in trickling { connection.send("a") }
                    Poll.nap(.milliseconds(100))
                }
                return true
            }
            var latencies: [Double] = []
            for _ in 0..<60 {
                let start = Poll.now()
                let status = try? daemon.get("/healthz", timeout: .seconds(2)).status
                latencies.append(status == 200 ? Poll.seconds(since: start) : 99)
            }
            stop.store(true, ordering: .releasing)
            _ = trickler.wait()
            latencies.sort()
            let p95 = latencies[latencies.count * 95 / 100]
            #expect(p95 < 0.050, "p95 \(p95 * 1000) ms, max \(latencies.last! * 1000) ms")
            withExtendedLifetime(idle) {}

            let malformed: [String] = [
                "GARBAGE\r\n\r\n", "GET\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "GET /healthz HTTP/1.1\r\nNoColon\r\n\r\n",
                "GET /healthz HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "GET /healthz HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "POST /state HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "\u{1}\u{2}\u{3}\r\n\r\n",
                "GET /" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\n\r\n",
                "GET /healthz HTTP/1.1\r\n" + String(repeating: "X-A: b\r\n", count: 120) + "\r\n",
                "GET /healthz HTTP/1.1\r\nX: " + String(repeating: "b", count: 17000) + "\r\n\r\n",
                "GET /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            ]
            for index in 0..<300 {
                let request = malformed[index % malformed.count]
                let connection = try RawConnection(port: daemon.port)
                connection.send(request)
                let (bytes, closed) = connection.receive(timeout: .seconds(3)) { RawConnection.status($0) != nil }
                if let status = RawConnection.status(bytes) {
                    // 505 for an unknown HTTP major version is RFC 9110's answer; the spec's point is "never 2xx".
                    let allowed = (400..<500).contains(status) || (status == 505 && request.contains("HTTP/9.9"))
                    #expect(allowed, "\(request.prefix(40).debugDescription) → \(status)")
                } else {
                    #expect(closed, "\(request.prefix(40).debugDescription): neither an answer nor a close")
                }
            }
            #expect(daemon.process.isRunning)
            #expect(daemon.status("/healthz") == 200)
        }
    }

    // Case 81: every descriptor of a running doryd other than 0–2 has O_CLOEXEC in /proc/<pid>/fdinfo/<fd> flags.
    @Test func case81_everyDescriptorIsCloseOnExec() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.demo())
            try daemon.waitReady()
            let keep = try RawConnection(port: daemon.port)  // an accepted connection too
            keep.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            _ = keep.receive(timeout: .seconds(2)) { RawConnection.status($0) != nil }
            let descriptors = Files.list("/proc/\(daemon.pid)/fdinfo").compactMap(Int.init).filter { $0 > 2 }
            #expect(descriptors.count >= 4, "\(descriptors)")
            for fd in descriptors {
                guard let info = Files.read("/proc/\(daemon.pid)/fdinfo/\(fd)") else { continue }  // closed meanwhile
                let text = String(decoding: info, as: UTF8.self)
                let flagsLine = text.split(separator: "\n").first { $0.hasPrefix("flags:") }
                let octal = flagsLine.map { $0.dropFirst(6).trimmingASCIIWhitespace() } ?? ""
                let flags = Int(octal, radix: 8) ?? 0
                var target = [CChar](repeating: 0, count: 512)
                let length = readlink("/proc/\(daemon.pid)/fd/\(fd)", &target, 511)
                let name = length > 0 ? String(decoding: target[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
                #expect(flags & 0o2000000 != 0, "fd \(fd) (\(name)) lacks O_CLOEXEC: flags \(octal)")
            }
        }
    }

    // Case 82: the default host → one dual-stack socket reachable on 127.0.0.1 and [::1].
    @Test func case82_dualStack() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.demo())
            try daemon.waitReady()
            #expect(try daemon.request("GET", "/healthz", host: "127.0.0.1").status == 200)
            if daemon.events("http.ipv4_only").isEmpty {
                #expect(try daemon.request("GET", "/healthz", host: "::1").status == 200)
            }
        }
    }
}

import DoryState
import Glibc
import Testing

/// §12 configuration cases 76 (threshold), 77, 78, 84.
@Suite struct ConfigTests {
    /// Starts a daemon expected to refuse its configuration: exit 2, one critical line containing every `mentions`, no
    /// port bound, nothing created in the state directory.
    static func expectRejected(_ sandbox: Sandbox, _ options: LaunchOptions, mentions: [String],
                               sourceLocation: SourceLocation = #_sourceLocation) throws {
        var options = options
        options.waitForListening = false
        options.stateDir = sandbox.path("state-rejected")
        let daemon = try sandbox.launch(options)
        let exit = try daemon.waitForExit()
        #expect(exit.code == 2, "\(exit); \(daemon.logTail)", sourceLocation: sourceLocation)
        let critical = daemon.records.filter { $0["level"]?.string == "critical" }
        #expect(critical.count == 1, "\(daemon.logTail)", sourceLocation: sourceLocation)
        let text = critical.first.map { $0["msg"]?.string ?? "" } ?? ""
        for word in mentions {
            #expect(text.contains(word), "the message does not name \(word): \(text)", sourceLocation: sourceLocation)
        }
        #expect(daemon.events("http.listening").isEmpty, sourceLocation: sourceLocation)
        #expect(!Files.exists(options.stateDir! + "/itest-pod/boots.jsonl"), "journal written", sourceLocation: sourceLocation)
        #expect(daemon.lines.allSatisfy { JSON.object($0) != nil }, sourceLocation: sourceLocation)
    }

    /// Ports that were free a moment ago (bound to 0, then closed).
    static func freePorts(_ count: Int) -> [Int] {
        var sockets: [Int32] = []
        var ports: [Int] = []
        for _ in 0..<count {
            let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
            _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
            ports.append(Int(UInt16(bigEndian: address.sin6_port)))
            sockets.append(fd)
        }
        sockets.forEach { close($0) }
        return ports
    }

    // Case 77: YAML port, env port, flag port → the flag; without the flag the env; without env the YAML; none → 8080.
    @Test func case77_portPrecedence() throws {
        try withSandbox { sandbox in
            let ports = Self.freePorts(3)
            let yaml = sandbox.write("dory.yaml", "health_port: \(ports[0])\n")
            let variants: [(flag: String?, env: String?, yaml: Bool, expected: Int)] = [
                (String(ports[2]), String(ports[1]), true, ports[2]),
                (nil, String(ports[1]), true, ports[1]),
                (nil, nil, true, ports[0]),
                (nil, nil, false, 8080),
            ]
            for (index, variant) in variants.enumerated() {
                var options = LaunchOptions.demo()
                options.port = variant.flag
                options.stateDir = sandbox.path("state\(index)")
                if let env = variant.env { options.environment["DORY_HEALTH_PORT"] = env }
                if variant.yaml { options.arguments += ["--config", yaml] }
                options.waitForListening = false
                let daemon = try sandbox.launch(options)
                let listening = daemon.waitForLog(timeout: .seconds(10)) {
                    $0["event"]?.string == "http.listening" || $0["event"]?.string == "http.bind_failed"
                }
                if variant.expected == 8080, listening?["event"]?.string == "http.bind_failed" {
                    // Something else holds 8080 here; the failure must still be about 8080.
                    #expect(listening?["error"]?["message"]?.string?.contains("8080") == true, "\(daemon.logTail)")
                } else {
                    #expect(listening?["port"]?.int == Int64(variant.expected), "variant \(index): \(daemon.logTail)")
                    #expect(try daemon.stop().code == 0)
                }
            }
        }
    }

    // Case 78: invalid settings → one line naming them, exit 2, no port bound, no journal; events: in the demo's YAML →
    // the same naming events; port taken → exit 7; DORY_HEALTH_HOST=127.0.0.1 → loopback only.
    @Test func case78_invalidConfiguration() throws {
        try withSandbox { sandbox in
            try Self.expectRejected(sandbox, .demo(["DORY_HEALTH_PORT": "notaport"]), mentions: ["DORY_HEALTH_PORT"])
            try Self.expectRejected(sandbox, .demo(["DORY_SNAPSHOT_KEEP": "0"]), mentions: ["DORY_SNAPSHOT_KEEP"])
            let unknown = sandbox.write("unknown.yaml", "snapshot_keep: 3\nno_such_setting: 1\n")
            try Self.expectRejected(sandbox, .demo(arguments: ["--config", unknown]), mentions: ["no_such_setting"])
            try Self.expectRejected(sandbox, .demo(arguments: ["--config", sandbox.path("missing.yaml")]), mentions: ["missing.yaml"])
            let events = sandbox.write("events.yaml", "snapshot_keep: 3\nevents:\n  queue_max: 10\n")
            try Self.expectRejected(sandbox, .demo(arguments: ["--config", events]), mentions: ["events"])
        }
    }

    @Test func case78_portTakenAndLoopbackHost() throws {
        try withSandbox { sandbox in
            let first = try sandbox.launch(.demo())
            var options = LaunchOptions.demo()
            options.port = String(first.port)
            options.stateDir = sandbox.path("state-second")
            options.waitForListening = false
            let second = try sandbox.launch(options)
            let exit = try second.waitForExit()
            #expect(exit.code == 7, "\(exit); \(second.logTail)")
            first.process.terminate()

            var loopback = LaunchOptions.demo(["DORY_HEALTH_HOST": "127.0.0.1"])
            loopback.stateDir = sandbox.path("state-loopback")
            let daemon = try sandbox.launch(loopback)
            try daemon.waitReady()
            #expect(try daemon.request("GET", "/healthz", host: "127.0.0.1").status == 200)
            #expect((try? daemon.request("GET", "/healthz", host: "::1", timeout: .seconds(2))) == nil, "reachable on ::1")
        }
    }

    // Case 76 (threshold): DORY_LOG_LEVEL=warning or WARNING → no info line after the first.
    @Test(arguments: ["warning", "WARNING", "Warn"])
    func case76_logThreshold(_ level: String) throws {
        try withSandbox { sandbox in
            var options = LaunchOptions.demo(["DORY_LOG_LEVEL": level])
            options.knownPort = Self.freePorts(1)[0]
            let daemon = try sandbox.launch(options)
            try daemon.waitReady()
            #expect(try daemon.stop().code == 0)
            let levels = daemon.records.dropFirst().compactMap { $0["level"]?.string }
            #expect(!levels.contains("info") && !levels.contains("notice") && !levels.contains("debug"), "\(daemon.logTail)")
            #expect(daemon.records.first?["version"] != nil)
        }
    }

    // Case 84: YAML scalar forms.
    @Test func case84_yamlForms() throws {
        try withSandbox { sandbox in
            for (index, bad) in ["health_port: 0x1F90", "health_port: 1_000", "processor_id: ~", "snapshot_keep: 3\nsnapshot_keep: 4"].enumerated() {
                let file = sandbox.write("bad\(index).yaml", bad + "\n")
                let named = bad.hasPrefix("health_port") ? "health_port" : bad.hasPrefix("processor_id") ? "processor_id" : "snapshot_keep"
                try Self.expectRejected(sandbox, .demo(arguments: ["--config", file]), mentions: [named])
            }

            // processor_id: on → the id `on`; log_level: "Warning" → warning.
            let on = sandbox.write("on.yaml", "processor_id: on\nlog_level: \"Warning\"\n")
            var options = LaunchOptions.demo(arguments: ["--config", on])
            options.processorId = "on"
            options.stateDir = sandbox.path("state-on")
            options.knownPort = Self.freePorts(1)[0]
            let daemon = try sandbox.launch(options)
            try daemon.waitReady()
            #expect(Files.exists(sandbox.path("state-on/on/boots.jsonl")))
            #expect(try daemon.stop().code == 0)
            #expect(!daemon.records.dropFirst().contains { $0["level"]?.string == "info" }, "log_level Warning ignored")

            // snapshot_keep: 010 → 10 (not octal 8): eleven saves leave ten files.
            let keep = sandbox.write("keep.yaml", "snapshot_keep: 010\n")
            var keepOptions = LaunchOptions.demo(arguments: ["--config", keep])
            keepOptions.stateDir = sandbox.path("state-keep")
            let keeper = try sandbox.launch(keepOptions)
            try keeper.waitReady()
            while keeper.saved().count < 11 {
                guard SnapshotTests.saveOnce(keeper) != nil else { Issue.record("SIGUSR1 save did not happen"); break }
            }
            #expect(keeper.generations().count == 10, "\(keeper.generations())")
        }
    }
}

import DoryHTTP
import DoryState
import Glibc
import Testing

/// Captured output and log records of the event workload (spec/event-pipeline.md §10, §4.7) through
/// `FIXTURE_APP=events-full doryd-fixture`, which runs `DoryEventsApp(configFile:logLevel:).run(FullApp.self)`: its
/// handlers print, write to stderr, log and sleep as the event's payload says (Sources/doryd-fixture/FixtureEventsApp.swift).
extension EventsTests {
    @Suite struct Output {
        /// `FIXTURE_APP=events-full doryd-fixture --port 0 --state-dir <sandbox>/state` + `arguments`, with the §13
        /// environment and `FIXTURE_CONFIG_FILE` = `<sandbox>/<configFile>` (the `DoryEventsApp` argument).
        static func launchFull(_ sandbox: Sandbox, configFile: String = "a.yaml", arguments: [String] = [],
                               environment: [String: String] = [:]) throws -> Daemon {
            var env = sandbox.baseEnvironment()
            env["DORY_PROCESSOR_ID"] = EventsLaunch.processorId
            env["DORY_CONTROL_TOKEN"] = EventsLaunch.controlToken
            env["FIXTURE_APP"] = "events-full"
            env["FIXTURE_CONFIG_FILE"] = sandbox.path(configFile)
            for (name, value) in environment { env[name] = value }
            let stateDir = sandbox.path("state")
            let child = try sandbox.spawn(try Binaries.fixture(), ["--port", "0", "--state-dir", stateDir] + arguments,
                                          environment: env)
            let daemon = Daemon(process: child, stateDir: stateDir, processorId: EventsLaunch.processorId, sandbox: sandbox)
            try daemon.waitForPort()
            return daemon
        }

        /// The §13 `events:` section with this `app_id`.
        static func yaml(appId: String = "42") -> String {
            "events:\n  app_key: my_app\n  app_id: \"\(appId)\"\n  agent_id: \"1\"\n  organisation_id: \"2\"\n"
        }

        /// An `on_manual_invoke` whose payload is `payload` (JSON text); `upgrade` (JSON text) goes into `d`.
        static func manual(_ payload: String, upgrade: String? = nil) -> String {
            let extra = upgrade.map { #", "upgrade": \#($0)"# } ?? ""
            return #"{"op": "on_manual_invoke", "d": {"organisation_id": 2, "payload": \#(payload)\#(extra)}}"#
        }

        /// A JSON string literal of `text`.
        static func quoted(_ text: String) -> String {
            String(decoding: (try? JSON.encode(.string(text))) ?? [], as: UTF8.self)
        }

        /// Posts with `?wait=true` and returns the summary's `invocation_id` once its `invocation finished` line is in
        /// the log.
        static func invoke(_ daemon: Daemon, _ body: String) throws -> String {
            let response = try daemon.postEvent(body, query: "?wait=true", timeout: .seconds(20))
            let summary = JSON.object(response.body)
            #expect(response.status == 200 && summary?["status"]?.string == "success", "\(response.text)")
            let id = try #require(summary?["invocation_id"]?.string, "\(response.text)")
            _ = try #require(daemon.waitForLog { finished($0, id) }, "no invocation finished for \(id):\n\(daemon.logTail)")
            return id
        }

        static func finished(_ record: JSONObject, _ id: String) -> Bool {
            record["msg"]?.string == "invocation finished" && record["invocation_id"]?.string == id
        }

        /// The records of one logger within one invocation, in log order.
        static func records(_ daemon: Daemon, logger: String, _ id: String) -> [JSONObject] {
            daemon.records.filter { $0["logger"]?.string == logger && $0["invocation_id"]?.string == id }
        }

        /// C106, C107, C108, C109, C110, C111 with one daemon.
        @Test func capturedLinesBecomeRecordsOfTheirInvocation() throws {
            try withSandbox { sandbox in
                sandbox.write("a.yaml", Self.yaml())
                let daemon = try Self.launchFull(sandbox)
                try daemon.waitReady()

                // C106: two lines → two `print` records at info with the context keys.
                let c106 = try Self.invoke(daemon, Self.manual(#"{"print": "first\nsecond\n"}"#))
                let printed = Self.records(daemon, logger: "print", c106)
                #expect(printed.compactMap { $0["msg"]?.string } == ["first", "second"], "\(daemon.logTail)")
                for record in printed {
                    #expect(record["level"]?.string == "info")
                    #expect(record["requestId"]?.string == c106 && record["app_id"]?.string == "42", "\(record)")
                }

                // C107: an unterminated line is its own record, before this invocation's `invocation finished`.
                let c107 = try Self.invoke(daemon, Self.manual(#"{"print": "partial"}"#))
                let all = daemon.records
                let partial = all.firstIndex { $0["logger"]?.string == "print" && $0["msg"]?.string == "partial" }
                let end = all.firstIndex { Self.finished($0, c107) }
                #expect(partial != nil && end != nil && partial! < end!, "\(daemon.logTail)")
                #expect(Self.records(daemon, logger: "print", c107).count == 1)

                // C108: standard error → logger `stderr`, level error.
                let c108 = try Self.invoke(daemon, Self.manual(#"{"stderr": "oops\n"}"#))
                let oops = Self.records(daemon, logger: "stderr", c108)
                #expect(oops.count == 1 && oops.first?["msg"]?.string == "oops" && oops.first?["level"]?.string == "error",
                        "\(daemon.logTail)")

                // C109: empty lines dropped; `\r\n` loses the `\r`.
                let c109 = try Self.invoke(daemon, Self.manual(#"{"print": "\n\nx\r\n\n", "stderr": "\r\n"}"#))
                #expect(Self.records(daemon, logger: "print", c109).compactMap { $0["msg"]?.string } == ["x"])
                #expect(Self.records(daemon, logger: "stderr", c109).isEmpty)

                // C110: `ts`, `level`, `logger`, `msg` first; call-site fields top level; a call-site `invocation_id`
                // becomes `x_invocation_id`.
                let c110 = try Self.invoke(daemon, Self.manual(
                    #"{"log": {"msg": "counted", "fields": {"count": 42, "invocation_id": "not-mine"}}}"#))
                let line = try #require(daemon.lines.first { $0.contains(#""msg":"counted""#) }, "\(daemon.logTail)")
                #expect(line.hasPrefix(#"{"ts":""#) && line.contains(#"","level":"info","logger":"app","msg":"counted","#),
                        "\(line)")
                let counted = try #require(JSON.object(line))
                let ts = Array((counted["ts"]?.string ?? "").utf8)
                #expect(ts.count == 24 && ts[10] == UInt8(ascii: "T") && ts[19] == UInt8(ascii: ".") && ts[23] == UInt8(ascii: "Z"),
                        "not RFC 3339 UTC with milliseconds: \(counted["ts"] ?? .null)")
                #expect(counted["count"]?.int == 42)
                #expect(counted["invocation_id"]?.string == c110 && counted["x_invocation_id"]?.string == "not-mine")
                // Outside invocations the context keys are absent, not null.
                let outside = daemon.records.filter { $0["logger"]?.string == "doryd.lifecycle" }
                #expect(!outside.isEmpty)
                for record in outside {
                    #expect(record["requestId"] == nil && record["invocation_id"] == nil && record["app_id"] == nil, "\(record)")
                }

                // C111: an error value is logged as `"error": {"type", "message"}`.
                let thrown = try daemon.postEvent(Self.manual(#"{"throw": "bad input"}"#), query: "?wait=true", timeout: .seconds(20))
                let c111 = try #require(JSON.object(thrown.body)?["invocation_id"]?.string, "\(thrown.text)")
                let failed = daemon.waitForLog { $0["msg"]?.string == "handler failed" && $0["invocation_id"]?.string == c111 }
                #expect(failed?["error"]?["type"]?.string == "FixtureError", "\(daemon.logTail)")
                #expect(failed?["error"]?["message"]?.string == "bad input")
                #expect(try daemon.stop().code == 0)
            }
        }

        /// C105: `log_overrides` `{"print": "error"}` hides print lines; `log_level` `warning` with `{"print": "info"}`
        /// keeps them (levels given through `upgrade`, for this invocation only).
        @Test func printRecordsObeyLogOverrides() throws {
            try withSandbox { sandbox in
                sandbox.write("a.yaml", Self.yaml())
                let daemon = try Self.launchFull(sandbox)
                try daemon.waitReady()
                let hidden = try Self.invoke(daemon, Self.manual(#"{"print": "hidden\n"}"#,
                    upgrade: #"{"deployment_config": {"dv_proc_config": {"log_overrides": {"print": "error"}}}}"#))
                let shown = try Self.invoke(daemon, Self.manual(#"{"print": "shown\n"}"#,
                    upgrade: #"{"deployment_config": {"dv_proc_config": {"log_level": "warning", "log_overrides": {"print": "info"}}}}"#))
                let after = try Self.invoke(daemon, Self.manual(#"{"print": "baseline\n"}"#))
                #expect(Self.records(daemon, logger: "print", hidden).isEmpty, "\(daemon.logTail)")
                #expect(Self.records(daemon, logger: "print", shown).compactMap { $0["msg"]?.string } == ["shown"])
                // The `warning` level hid that invocation's own `app` info line; the next one is back to baseline.
                #expect(Self.records(daemon, logger: "app", shown).isEmpty)
                #expect(Self.records(daemon, logger: "print", after).compactMap { $0["msg"]?.string } == ["baseline"])
                #expect(try daemon.stop().code == 0)
            }
        }

        /// C144: a printed line is forwarded while the handler still runs (here: sleeps 2 s).
        @Test func printedLineAppearsBeforeTheHandlerReturns() throws {
            try withSandbox { sandbox in
                sandbox.write("a.yaml", Self.yaml())
                let daemon = try Self.launchFull(sandbox)
                try daemon.waitReady()
                let accepted = try daemon.postEvent(Self.manual(#"{"print": "tick\n", "sleep_ms": 2000}"#))
                #expect(accepted.status == 202, "\(accepted.text)")
                let id = try #require(JSON.object(accepted.body)?["invocation_id"]?.string, "\(accepted.text)")
                let tick = daemon.waitForLog(timeout: .seconds(10)) {
                    $0["logger"]?.string == "print" && $0["invocation_id"]?.string == id
                }
                // Seen while the invocation is still running: its `invocation finished` is not in the log yet.
                let finishedYet = daemon.records.contains { Self.finished($0, id) }
                #expect(tick?["msg"]?.string == "tick", "\(daemon.logTail)")
                #expect(!finishedYet, "the print record came only with the end of the invocation")
                let end = try #require(daemon.waitForLog(timeout: .seconds(15)) { Self.finished($0, id) }, "\(daemon.logTail)")
                let tickMillis = Self.millis(tick?["ts"]?.string)
                let endMillis = Self.millis(end["ts"]?.string)
                #expect(tickMillis != nil && endMillis != nil && endMillis! - tickMillis! >= 1500,
                        "print at \(tick?["ts"] ?? .null), finished at \(end["ts"] ?? .null)")
                #expect(try daemon.stop().code == 0)
            }
        }

        /// Milliseconds of the day of an RFC 3339 `ts` (`2026-11-22T01:30:58.912Z`), enough to compare two close stamps.
        static func millis(_ ts: String?) -> Int? {
            guard let ts, ts.utf8.count == 24 else { return nil }
            let chars = Array(ts)
            func number(_ from: Int, _ count: Int) -> Int? { Int(String(chars[from..<(from + count)])) }
            guard let h = number(11, 2), let m = number(14, 2), let s = number(17, 2), let ms = number(20, 3) else { return nil }
            return ((h * 60 + m) * 60 + s) * 1000 + ms
        }

        /// C138: `DoryEventsApp(configFile: a.yaml)` serves like `doryd events --config a.yaml`; `--config b.yaml` on
        /// the program's command line wins; SIGTERM → exit 0 with a `shutdown` generation.
        @Test func doryEventsAppReadsItsArgumentsAsFlagsAndTheCommandLineWins() throws {
            try withSandbox { sandbox in
                sandbox.write("a.yaml", Self.yaml(appId: "42"))
                let b = sandbox.write("b.yaml", Self.yaml(appId: "43"))

                let fromArgument = try Self.launchFull(sandbox)
                try fromArgument.waitReady()
                let first = try fromArgument.postEvent(Self.manual(#"{"print": "one\n"}"#), query: "?wait=true", timeout: .seconds(20))
                #expect(first.status == 200 && JSON.object(first.body)?["app_id"]?.string == "42", "\(first.text)")
                #expect(JSON.object(first.body)?["status"]?.string == "success")
                #expect(try fromArgument.stop().code == 0)
                let snapshot = try fromArgument.newestSnapshot()
                #expect(snapshot.reason == "shutdown", "\(snapshot.text)")
                #expect(fromArgument.records.contains { $0["logger"]?.string == "print" && $0["msg"]?.string == "one" })

                let overridden = try Self.launchFull(sandbox, arguments: ["--config", b])
                try overridden.waitReady()
                let second = try overridden.postEvent(Self.manual("{}"), query: "?wait=true", timeout: .seconds(20))
                #expect(second.status == 200 && JSON.object(second.body)?["app_id"]?.string == "43", "\(second.text)")
                #expect(try overridden.stop().code == 0)
                #expect(try overridden.newestSnapshot().reason == "shutdown")
            }
        }

        /// A setting flag the event workload does not know on the program's command line → exit 2 naming it.
        @Test func unknownCommandLineFlagExitsTwo() throws {
            try withSandbox { sandbox in
                sandbox.write("a.yaml", Self.yaml())
                var env = sandbox.baseEnvironment()
                env["FIXTURE_APP"] = "events-full"
                env["FIXTURE_CONFIG_FILE"] = sandbox.path("a.yaml")
                let child = try sandbox.spawn(try Binaries.fixture(), ["--no-such-flag", "1"], environment: env)
                let exit = child.waitForExit(timeout: .seconds(15))
                #expect(exit?.code == 2)
                #expect(child.stderr.text.contains("no-such-flag"), "\(child.stderr.text)")
            }
        }
    }
}

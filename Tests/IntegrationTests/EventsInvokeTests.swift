import DoryState
import Glibc
import Testing

/// `doryd invoke FILE|-` (event-pipeline.md §2.6): §13 cases C117–C121, C139, C140 and the invoke part of C141,
/// through the real binary with the §13 fixture configuration (processor `my-app`, `events:` of `EventsLaunch`).
extension EventsTests {
    @Suite struct Invoke {
        static let manual = #"{"op": "on_manual_invoke", "d": {"organisation_id": 2, "payload": {"run": true}}}"#

        /// One `doryd invoke` run: its exit status, standard output and standard error.
        struct Run: CustomStringConvertible {
            let status: ExitStatus
            let stdout: String
            let stderr: String
            var code: Int32? { status.code }
            var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }
            /// The standard-output lines that are summaries (JSON objects with an `invocation_id`).
            var summaries: [JSONObject] {
                stdoutLines.compactMap { JSON.object($0) }.filter { $0["invocation_id"]?.string != nil }
            }
            /// The JSON log records on standard error.
            var logRecords: [JSONObject] { stderr.split(separator: "\n").compactMap { JSON.object(String($0)) } }
            var description: String { "\(status); stdout: \(stdout.prefix(1500)); stderr: \(stderr.suffix(2500))" }
        }

        /// Writes `events.yaml` (the §13 section plus `extraYAML`) and runs `doryd invoke <input> --config events.yaml
        /// --state-dir <sandbox>/state` + `arguments`, with the body on standard input when `stdin` is given.
        static func invoke(_ sandbox: Sandbox, input: String, stdin: String? = nil, arguments: [String] = [],
                           extraYAML: String = "", environment: [String: String] = [:], unset: [String] = []) throws -> Run {
            let config = sandbox.write("events.yaml", "events:\n" + EventsLaunch.section(threshold: 30) + extraYAML)
            var env = sandbox.baseEnvironment()
            env["DORY_PROCESSOR_ID"] = EventsLaunch.processorId
            env["DORY_CONTROL_TOKEN"] = EventsLaunch.controlToken
            for (name, value) in environment { env[name] = value }
            for name in unset { env[name] = nil }
            var stdinFD: Int32?
            if let stdin {
                let path = sandbox.write("stdin-\(WallClock.nowMillis()).json", stdin)
                stdinFD = open(path, O_RDONLY | O_CLOEXEC)
                #expect(stdinFD ?? -1 >= 0)
            }
            defer { if let stdinFD { close(stdinFD) } }
            let child = try sandbox.spawn(try Binaries.doryd(),
                                          ["invoke", input, "--config", config, "--state-dir", sandbox.path("state")] + arguments,
                                          environment: env, captureStdout: true, stdinFD: stdinFD)
            guard let status = child.waitForExit(timeout: .seconds(30)) else {
                child.terminate()
                throw ChildProcess.SpawnError(description: "doryd invoke still running after 30 s")
            }
            _ = Poll.until(timeout: .seconds(5), interval: .milliseconds(2)) { child.stderr.isClosed && child.stdout!.isClosed }
            return Run(status: status, stdout: child.stdout!.text, stderr: child.stderr.text)
        }

        static var processorDir: String { "state/" + EventsLaunch.processorId }

        /// The `data` of every message in the summary channel file `events/channels/1/dv-proc-inv-42.jsonl`.
        static func deliveredSummaries(_ sandbox: Sandbox) -> [JSONObject] {
            let path = sandbox.path(processorDir + "/events/channels/1/dv-proc-inv-42.jsonl")
            let text = Files.read(path).map { String(decoding: $0, as: UTF8.self) } ?? ""
            return text.split(separator: "\n").compactMap { JSON.object(String($0))?["data"]?.object }
        }

        /// C117: a file with the on_manual_invoke example → one summary line, `success`, exit 0, delivered to
        /// `dv-proc-inv-42`; not a boot (no journal).
        @Test func c117_fileInvocationPrintsOneSummaryAndDeliversIt() throws {
            try withSandbox { sandbox in
                let file = sandbox.write("ev.json", Self.manual)
                let run = try Self.invoke(sandbox, input: file)
                #expect(run.code == 0, "\(run)")
                let summaries = run.summaries
                // Exactly one line: the application's `manual invoke …` print is captured into the log (§10.3).
                #expect(run.stdoutLines.count == 1 && summaries.count == 1, "\(run)")
                let summary = try #require(summaries.first, "\(run)")
                #expect(summary["status"]?.string == "success" && summary["event_type"]?.string == "on_manual_invoke", "\(summary)")
                let id = try #require(summary["invocation_id"]?.string)
                #expect(summary["requestId"]?.string == id)
                #expect(summary["app_id"]?.string == "42" && summary["app_key"]?.string == "my_app")
                let delivered = Self.deliveredSummaries(sandbox)
                #expect(delivered.count == 1 && delivered.first?["invocation_id"]?.string == id, "\(delivered)")
                #expect(!Files.exists(sandbox.path(Self.processorDir + "/boots.jsonl")), "invoke wrote a journal")
                #expect(!Files.exists(sandbox.path(Self.processorDir + "/events/queue.log")), "invoke used the queue")
            }
        }

        /// C118: standard input, a two-record SNS body whose second record has no `op` → two lines in record order,
        /// the first `success`, the second `error`/InvalidEvent; exit 1; fresh ids each.
        @Test func c118_standardInputTwoRecordsSecondWithoutOp() throws {
            try withSandbox { sandbox in
                let body = EventBodies.sns([(EventBodies.schedule, "arn:A"), (#"{"d": {}}"#, "arn:B")])
                let run = try Self.invoke(sandbox, input: "-", stdin: body)
                #expect(run.code == 1, "\(run)")
                #expect(run.stdoutLines.count == 2, "\(run)")
                let summaries = run.summaries
                #expect(summaries.compactMap { $0["subscription_id"]?.string } == ["arn:A", "arn:B"], "\(run)")
                #expect(summaries.compactMap { $0["status"]?.string } == ["success", "error"], "\(run)")
                #expect(summaries.last?["error"]?["type"]?.string == "InvalidEvent", "\(run)")
                #expect(Set(summaries.compactMap { $0["invocation_id"]?.string }).count == 2)
                #expect(Self.deliveredSummaries(sandbox).count == 2)
            }
        }

        /// C119: `{"Records": []}` → exit 2, the reason on standard error, nothing on standard output, nothing run.
        @Test func c119_rejectedInputExitsTwoWithNothingOnStandardOutput() throws {
            try withSandbox { sandbox in
                let file = sandbox.write("ev.json", #"{"Records": []}"#)
                let run = try Self.invoke(sandbox, input: file)
                #expect(run.code == 2, "\(run)")
                #expect(run.stdout.isEmpty, "\(run)")
                #expect(run.stderr.contains("Records"), "no reason on standard error: \(run)")
                #expect(Self.deliveredSummaries(sandbox).isEmpty)

                let notJSON = try Self.invoke(sandbox, input: "-", stdin: "{not json")
                #expect(notJSON.code == 2 && notJSON.stdout.isEmpty && !notJSON.stderr.isEmpty, "\(notJSON)")
                let missing = try Self.invoke(sandbox, input: sandbox.path("no-such-file.json"))
                #expect(missing.code == 2 && missing.stdout.isEmpty && missing.stderr.contains("no-such-file.json"), "\(missing)")
            }
        }

        /// C120: a running `doryd events` holds the processor lock → exit 4, a one-line reason, nothing run.
        @Test func c120_lockHeldByARunningDaemonExitsFour() throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchEvents()
                try daemon.waitReady()
                let file = sandbox.write("ev.json", Self.manual)
                let run = try Self.invoke(sandbox, input: file)
                #expect(run.code == 4, "\(run)")
                #expect(run.stdout.isEmpty, "\(run)")
                let reason = run.stderr.split(separator: "\n").filter { JSON.object(String($0)) == nil }
                #expect(reason.count == 1 && reason.first?.contains("lock") == true, "\(run)")
                #expect(try daemon.channelData().isEmpty, "the event ran")
                #expect(try daemon.stop().code == 0)
            }
        }

        /// C121: the application's `print` goes to the log stream (logger `print`), not to standard output.
        @Test func c121_printGoesToTheLogStream() throws {
            try withSandbox { sandbox in
                let file = sandbox.write("ev.json", Self.manual)
                let run = try Self.invoke(sandbox, input: file)
                #expect(run.code == 0, "\(run)")
                #expect(run.stdoutLines.count == 1 && run.summaries.count == 1, "\(run)")
                let printed = run.logRecords.first { $0["logger"]?.string == "print" }
                #expect(printed?["msg"]?.string == #"manual invoke {"run":true}"#, "\(run)")
                #expect(printed?["invocation_id"]?.string == run.summaries.first?["invocation_id"]?.string)
            }
        }

        /// C139: on the state of a stopped doryd: `boots.jsonl` unchanged; a damaged newest generation is skipped and
        /// left in place (nothing in `quarantine/`), the next older valid one is used; a tag change → a new generation
        /// with reason `api`, strategy `invoke`, restart count 0 and the next free number; the next `doryd events`
        /// restores it.
        @Test func c139_stateOfAStoppedDaemonReadOnlyAndTagCommitAsGeneration() throws {
            try withSandbox { sandbox in
                // A stopped doryd whose newest generation holds alert = true.
                let daemon = try sandbox.launchEvents()
                try daemon.waitReady()
                let alert = try daemon.postEvent(EventBodies.messageCreate(temp: 45), query: "?wait=true", timeout: .seconds(20))
                #expect(alert.status == 200 && JSON.object(alert.body)?["status"]?.string == "success", "\(alert.text)")
                #expect(try daemon.stop().code == 0)
                let valid = try #require(daemon.generations().last, "no generation after the stop")
                #expect(try daemon.snapshot(valid).state["tag_values"]?["my_app"]?["alert"]?.bool == true)

                // A damaged newer generation (not gzip at all).
                let damaged = Snapshots.path(in: daemon.snapshotsDir, generation: valid + 1)
                writeFile(damaged, Array("this is not a gzip member".utf8))
                let journal = try #require(Files.read(daemon.journalPath))
                let damagedBytes = Files.read(damaged)

                let run = try Self.invoke(sandbox, input: "-", stdin: EventBodies.schedule,
                                          arguments: ["--processor-id", EventsLaunch.processorId], unset: ["DORY_PROCESSOR_ID"])
                #expect(run.code == 0, "\(run)")
                #expect(run.summaries.first?["status"]?.string == "success", "\(run)")
                #expect(Files.read(daemon.journalPath) == journal, "boots.jsonl changed")
                #expect(Files.read(damaged) == damagedBytes, "the damaged generation was moved or changed")
                #expect(Files.list(daemon.processorDir + "/quarantine").isEmpty, "something was quarantined")
                let skipped = run.logRecords.first { $0["event"]?.string == "snapshot.skipped" }
                #expect(skipped?["reason"]?.string == "bad_gzip", "\(run)")

                // The commit: the next free number, reason api, strategy invoke, restart 0; the loaded state kept.
                #expect(daemon.generations().last == valid + 2, "\(daemon.generations())")
                let written = try daemon.snapshot(valid + 2)
                #expect(written.envelope["reason"]?.string == "api", "\(written.envelope)")
                #expect(written.envelope["strategy"]?.string == "invoke")
                #expect(written.envelope["restart_count"]?.int == 0)
                let tags = try #require(written.state["tag_values"]?["my_app"]?.object, "\(written.state)")
                #expect(tags["alert"]?.bool == true, "the older valid generation was not loaded: \(tags)")
                let lastPoll = try #require(tags["last_poll"]?.int, "\(tags)")

                // The next doryd boot restores it.
                let again = try sandbox.launchEvents()
                try again.waitReady()
                let restored = try again.tagValues()["my_app"]?.object
                #expect(restored?["alert"]?.bool == true && restored?["last_poll"]?.int == lastPoll, "\(String(describing: restored))")
                #expect(try again.stop().code == 0)
            }
        }

        /// C140: every generation damaged → exit 4, nothing run, no file moved.
        @Test func c140_everyGenerationDamagedExitsFourAndMovesNothing() throws {
            try withSandbox { sandbox in
                let snapshots = sandbox.makeDirectory(Self.processorDir + "/snapshots")
                writeFile(Snapshots.path(in: snapshots, generation: 1), Array("damaged one".utf8))
                try SnapshotForge.write(sandbox, snapshotsDir: snapshots, generation: 2,
                                        envelopeJSON: SnapshotForge.envelope(processorId: "another-app", generation: 2))
                let before = TreeListing.of(snapshots)
                let file = sandbox.write("ev.json", Self.manual)
                let run = try Self.invoke(sandbox, input: file)
                #expect(run.code == 4, "\(run)")
                #expect(run.stdout.isEmpty, "\(run)")
                #expect(run.stderr.contains("no valid generation"), "\(run)")
                #expect(TreeListing.of(snapshots) == before, "a snapshot file was moved or changed")
                #expect(Files.list(sandbox.path(Self.processorDir + "/quarantine")).isEmpty)
                #expect(Self.deliveredSummaries(sandbox).isEmpty, "an event ran")
                let reasons = Set(run.logRecords.filter { $0["event"]?.string == "snapshot.skipped" }.compactMap { $0["reason"]?.string })
                #expect(reasons == ["bad_gzip", "wrong_processor"], "\(run)")
            }
        }

        /// C141 (invoke): `--control-token T` is an unknown flag → exit 2; `DORY_CONTROL_TOKEN` and YAML
        /// `control_token` are accepted.
        @Test func c141_controlTokenFlagIsUnknown() throws {
            try withSandbox { sandbox in
                let file = sandbox.write("ev.json", Self.manual)
                let flag = try Self.invoke(sandbox, input: file, arguments: ["--control-token", EventsLaunch.controlToken])
                #expect(flag.code == 2, "\(flag)")
                #expect(flag.stdout.isEmpty && flag.stderr.contains("control-token"), "\(flag)")
                #expect(Self.deliveredSummaries(sandbox).isEmpty)

                let environment = try Self.invoke(sandbox, input: file)
                #expect(environment.code == 0 && environment.summaries.count == 1, "\(environment)")
                let yaml = try Self.invoke(sandbox, input: file, extraYAML: "control_token: \(EventsLaunch.controlToken)\n",
                                           unset: ["DORY_CONTROL_TOKEN"])
                #expect(yaml.code == 0 && yaml.summaries.count == 1, "\(yaml)")
            }
        }
    }
}

import DoryState
import Glibc
import Testing

/// §12 cases 85 and 58: `doryd state ls|show|verify|export|import` (§6.7, §6.8).
@Suite struct StateCommandTests {
    // Case 85: ls, show, verify and export beside a running doryd answer at once and change no file; verify names the
    // damaged newest file, which stays in snapshots/; export prints the state, --envelope the envelope;
    // --generation 999 → exit 1; --processor acts as --processor-id; import beside a running doryd → exit 4.
    @Test func case85_readOnlyCommandsBesideARunningDaemon() throws {
        try withSandbox { sandbox in
            let generations = try CrashSnapshotTests.seedGenerations(sandbox)
            let newest = generations.last!, previous = generations[generations.count - 2]
            let daemon = try sandbox.launch(.fixture())
            try daemon.waitReady()
            let newestPath = Snapshots.path(in: daemon.snapshotsDir, generation: newest)
            try SnapshotForge.truncateToHalf(newestPath)
            let previousSnapshot = try daemon.snapshot(previous)
            let stateDir = ["--state-dir", daemon.stateDir]
            let listing = TreeListing.of(daemon.stateDir)

            func timed(_ arguments: [String], _ environment: [String: String] = [:]) throws -> CommandRun {
                let start = Poll.now()
                let run = try CommandRun.doryd(sandbox, ["state"] + arguments, environment: environment)
                #expect(Poll.seconds(since: start) < 3, "\(arguments) took \(Poll.seconds(since: start)) s")
                return run
            }

            let ls = try timed(["ls"] + stateDir)
            #expect(ls.code == 0, "\(ls)")
            #expect(ls.stdoutLines.count == generations.count, "\(ls)")
            #expect(ls.stdoutLines.first?.hasPrefix("\(newest) ") == true && ls.stdoutLines.first?.contains("truncated") == true, "\(ls)")
            #expect(ls.stdoutLines.dropFirst().first?.hasPrefix("\(previous) ") == true, "newest first: \(ls)")

            let lsJSON = try timed(["ls", "--json"] + stateDir)
            #expect(lsJSON.code == 0, "\(lsJSON)")
            let objects = lsJSON.stdoutLines.compactMap { JSON.object($0) }
            #expect(objects.count == generations.count, "\(lsJSON)")
            #expect(objects.first?["generation"]?.int == Int64(newest) && objects.first?["error"]?.string == "truncated", "\(lsJSON)")
            for object in objects.dropFirst() {
                for key in ["generation", "saved_at", "reason", "raw_bytes", "compressed_bytes", "age_sec"] {
                    #expect(object[key] != nil && object[key]?.isNull == false, "member \(key) missing: \(object)")
                }
            }

            let show = try timed(["show"] + stateDir)
            #expect(show.code == 0, "\(show)")
            let shown = JSON.object(show.stdout)
            #expect(shown?["generation"]?.int == Int64(previous), "show must skip the damaged newest file: \(show)")
            #expect(shown?["format"]?.string == "dory.snapshot/1")
            #expect(show.stdoutLines.count > 3, "show is not pretty-printed: \(show)")

            let verify = try timed(["verify"] + stateDir)
            #expect(verify.code == 1, "\(verify)")
            #expect(verify.stdoutLines.contains { $0.hasPrefix("\(newest) ") && $0.contains("truncated") }, "\(verify)")
            #expect(Files.exists(newestPath), "verify moved the damaged file")

            let export = try timed(["export"] + stateDir)
            #expect(export.code == 0, "\(export)")
            #expect(export.stdoutLines.count == 1, "export is not one line: \(export)")
            #expect(JSON.object(export.stdout) == previousSnapshot.state, "\(export) vs \(previousSnapshot.state)")

            let envelope = try timed(["export", "--envelope"] + stateDir)
            #expect(envelope.code == 0 && envelope.stdoutLines.count == 1, "\(envelope)")
            #expect(JSON.object(envelope.stdout) == previousSnapshot.envelope, "\(envelope)")

            let byGeneration = try timed(["export", "--generation", "\(previous)"] + stateDir)
            #expect(JSON.object(byGeneration.stdout) == previousSnapshot.state, "\(byGeneration)")
            let missing = try timed(["export", "--generation", "999"] + stateDir)
            #expect(missing.code == 1, "\(missing)")
            let damagedShow = try timed(["show", "--generation", "\(newest)"] + stateDir)
            #expect(damagedShow.code == 1 && damagedShow.stderr.contains("truncated"), "\(damagedShow)")

            // --processor acts as --processor-id (the pod name would derive another id).
            let alias = try timed(["export", "--processor", "itest-pod"] + stateDir, ["DORY_POD_NAME": "another-pod-7"])
            #expect(alias.code == 0 && JSON.object(alias.stdout) == previousSnapshot.state, "\(alias)")
            let unknown = try timed(["export", "--processor", "no-such-processor"] + stateDir)
            #expect(unknown.code == 1, "\(unknown)")

            #expect(TreeListing.of(daemon.stateDir) == listing, "a read-only command changed files")

            // import beside the running doryd → exit 4, nothing written.
            let file = sandbox.write("sdk-state.json", #"{"payload": {"counter": 14}, "metadata": {}, "checksum": "301e5f257de249f34b037d46e35e98b4a0a0672c0a8396c5194ce3a59cc6f55c"}"#)
            let importRun = try CommandRun.doryd(sandbox, ["state", "import", file] + stateDir)
            #expect(importRun.code == 4, "\(importRun)")
            #expect(TreeListing.of(daemon.stateDir) == listing, "a refused import changed files")
            #expect(try daemon.stop().code == 0)
        }
    }

    /// python3 from the test's own PATH (the reference SDK is Python).
    static func python3() throws -> String {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") where Binaries.isExecutable(directory + "/python3") {
            return directory + "/python3"
        }
        throw ChildProcess.SpawnError(description: "python3 not found in PATH \(path)")
    }

    /// Writes a reference-SDK state file with python3: checksum = sha256(json.dumps(payload, sort_keys=True)).
    static func writeReferenceFile(_ sandbox: Sandbox, name: String, payloadJSON: String) throws -> String {
        let path = sandbox.path(name)
        let script = """
        import hashlib, json, sys
        payload = json.loads(sys.argv[1])
        checksum = hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()
        envelope = {"payload": payload, "metadata": {"version": "1.0", "saved_at": "2025-01-02T03:04:05"}, "checksum": checksum}
        with open(sys.argv[2], "w") as f:
            f.write(json.dumps(envelope))
        print(checksum)
        """
        let run = try CommandRun.run(sandbox, try python3(), ["-c", script, payloadJSON, path],
                                     environment: ["PATH": "/usr/bin:/bin", "HOME": sandbox.root])
        guard run.code == 0 else { throw ChildProcess.SpawnError(description: "python3: \(run)") }
        return path
    }

    // Case 58: import of a reference-SDK envelope → the newest generation holds its payload; the same file with 4242
    // edited to 4243 → non-zero exit, nothing written; the three canonical-form vectors of §6.7 import.
    @Test func case58_importOfAReferenceSDKFile() throws {
        try withSandbox { sandbox in
            let stateDir = ["--state-dir", sandbox.path("state")]
            let file = try Self.writeReferenceFile(sandbox, name: "sdk.json", payloadJSON: #"{"counter": 4242, "note": "é", "f": 0.1}"#)
            let imported = try CommandRun.doryd(sandbox, ["state", "import", file] + stateDir)
            #expect(imported.code == 0, "\(imported)")
            let snapshotsDir = sandbox.path("state/itest-pod/snapshots")
            let first = try #require(Snapshots.generations(in: snapshotsDir).last, "nothing written: \(imported)")
            #expect(imported.stdout.contains("\(first)"), "the output does not name generation \(first): \(imported)")
            let snapshot = try Snapshots.decode(path: Snapshots.path(in: snapshotsDir, generation: first), sandbox: sandbox)
            #expect(snapshot.counter == 4242 && snapshot.state["note"]?.string == "é" && snapshot.state["f"]?.double == 0.1, "\(snapshot.state)")
            #expect(snapshot.reason == "transfer")
            #expect(snapshot.envelope["processor_id"]?.string == "itest-pod")

            // Tampered: 4242 → 4243 with the old checksum.
            let original = String(decoding: Files.read(file) ?? [], as: UTF8.self)
            #expect(original.contains("4242"))
            let tampered = sandbox.write("sdk-tampered.json", original.replacing("4242", with: "4243"))
            let listing = TreeListing.of(sandbox.path("state"))
            let refused = try CommandRun.doryd(sandbox, ["state", "import", tampered] + stateDir)
            #expect(refused.code == 4, "§6.8: a file refused by §6.7 exits 4: \(refused)")
            #expect(refused.stderr.contains("checksum"), "the refusal does not name the checksum: \(refused)")
            #expect(TreeListing.of(sandbox.path("state")) == listing, "a refused import changed files")

            // The vectors of §6.7, with the table's checksums (and python3 agreeing with the table).
            let vectors: [(String, String)] = [
                (#"{"counter":14}"#, "301e5f257de249f34b037d46e35e98b4a0a0672c0a8396c5194ce3a59cc6f55c"),
                (#"{}"#, "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"),
                (#"{"b":1,"a":"é","f":0.1,"g":0.00001,"h":1e16,"i":100000000000000000000,"t":true,"n":null,"l":[1.0,2]}"#,
                 "e4abf178ef6f774dddfecc5a32fed82abdadcb0cc7ac0721317cc2bd2a17d3fd"),
            ]
            for (index, (payload, checksum)) in vectors.enumerated() {
                let viaPython = try Self.writeReferenceFile(sandbox, name: "python-vector-\(index).json", payloadJSON: payload)
                #expect(JSON.object(String(decoding: Files.read(viaPython) ?? [], as: UTF8.self))?["checksum"]?.string == checksum,
                        "python3 disagrees with the spec table for vector \(index + 1)")
                let path = sandbox.write("vector-\(index).json", #"{"payload": \#(payload), "metadata": {}, "checksum": "\#(checksum)"}"#)
                let before = Snapshots.generations(in: snapshotsDir).last ?? 0
                let run = try CommandRun.doryd(sandbox, ["state", "import", path] + stateDir)
                #expect(run.code == 0, "vector \(index + 1): \(run)")
                let written = try #require(Snapshots.generations(in: snapshotsDir).last)
                #expect(written > before, "vector \(index + 1) wrote nothing")
                if index == 2 {
                    let text = try Snapshots.decode(path: Snapshots.path(in: snapshotsDir, generation: written), sandbox: sandbox).text
                    #expect(text.contains("100000000000000000000"), "10^20 lost its digits: \(text)")
                }
            }

            // A doryd started on the imported state restores it.
            let daemon = try sandbox.launch(.fixture())
            try daemon.waitReady()
            #expect(daemon.hooks.contains("restoreState"))
            #expect(try daemon.stop().code == 0)
        }
    }

    // §6.2 / §6.8: import follows the generation rule (1 + the larger of the journal's high-water mark and every
    // generation named under snapshots/, quarantine/ or archive/); the read-only commands on a missing processor
    // directory exit 1 and create nothing.
    @Test func importNeverReusesAGenerationNumber() throws {
        try withSandbox { sandbox in
            let stateDir = ["--state-dir", sandbox.path("state")]
            for command in [["ls"], ["show"], ["verify"], ["export"]] {
                let run = try CommandRun.doryd(sandbox, ["state"] + command + stateDir)
                #expect(run.code == 1, "\(command) without a processor directory: \(run)")
            }
            #expect(!Files.exists(sandbox.path("state/itest-pod")), "a read-only command created the processor directory")

            let processorDir = sandbox.path("state/itest-pod")
            JournalForge.write([JournalForge.boot("old", at: WallClock.nowMillis() - 60_000, hwm: 7)], processorDir: processorDir)
            let file = sandbox.write("sdk.json", #"{"payload": {"counter": 14}, "metadata": {}, "checksum": "301e5f257de249f34b037d46e35e98b4a0a0672c0a8396c5194ce3a59cc6f55c"}"#)
            var run = try CommandRun.doryd(sandbox, ["state", "import", file] + stateDir)
            #expect(run.code == 0, "\(run)")
            #expect(Snapshots.generations(in: processorDir + "/snapshots") == [8], "journal hwm 7: \(Files.list(processorDir + "/snapshots"))")

            makeDirectories(processorDir + "/quarantine")
            writeFile(processorDir + "/quarantine/00000000000000000011.json.gz.truncated.1735790645678", [0x1F])
            run = try CommandRun.doryd(sandbox, ["state", "import", file] + stateDir)
            #expect(run.code == 0, "\(run)")
            #expect(Snapshots.generations(in: processorDir + "/snapshots").last == 12, "quarantined 11: \(Files.list(processorDir + "/snapshots"))")

            makeDirectories(processorDir + "/archive/20250102T030405.678Z-3f2a9c1b")
            writeFile(processorDir + "/archive/20250102T030405.678Z-3f2a9c1b/00000000000000000020.json.gz", [0x1F])
            run = try CommandRun.doryd(sandbox, ["state", "import", file] + stateDir)
            #expect(run.code == 0, "\(run)")
            #expect(Snapshots.generations(in: processorDir + "/snapshots").last == 21, "archived 20: \(Files.list(processorDir + "/snapshots"))")
        }
    }
}

import DoryState
import Glibc
import Testing

/// §12 cases 51, 52, 57 and 86: damaged snapshots found at boot are quarantined (or deleted), never taken for "no
/// state", and the previous generation is restored; a second doryd on a locked directory exits 4.
@Suite struct CrashSnapshotTests {
    /// Boots the fixture with a fast interval until `count` generations exist, then stops it cleanly.
    static func seedGenerations(_ sandbox: Sandbox, count: Int = 3) throws -> [UInt64] {
        let daemon = try sandbox.launch(.fixture(["DORY_SNAPSHOT_INTERVAL_SEC": "0.1"]))
        try daemon.waitReady()
        #expect(Poll.until(timeout: .seconds(10)) { daemon.generations().count >= count }, "\(daemon.logTail)")
        let exit = try daemon.stop()
        guard exit.code == 0 else { throw Daemon.Failure(description: "seed: \(exit); \(daemon.logTail)") }
        return daemon.generations()
    }

    static func snapshotsDir(_ sandbox: Sandbox) -> String { sandbox.path("state/itest-pod/snapshots") }
    static func quarantineDir(_ sandbox: Sandbox) -> String { sandbox.path("state/itest-pod/quarantine") }

    enum Damage: String, CaseIterable, CustomStringConvertible {
        case cutInHalf, flippedDeflateByte
        var description: String { rawValue }
        func apply(_ path: String) throws {
            switch self {
            case .cutInHalf: try SnapshotForge.truncateToHalf(path)
            case .flippedDeflateByte: try SnapshotForge.corruptDeflateData(path)
            }
        }
        var reasons: Set<String> { self == .cutInHalf ? ["truncated"] : ["crc_mismatch", "bad_gzip"] }
    }

    // Case 51 (and issue 3's "torn newest file → previous generation loaded, the torn one quarantined"): `doryd state
    // verify` exits 1 naming the damaged newest file and moves nothing; the next boot logs a WARN, quarantines it with
    // its reason and restores the previous generation.
    @Test(arguments: Damage.allCases)
    func case51_damagedNewestFileFallsBackToThePreviousGeneration(_ damage: Damage) throws {
        try withSandbox { sandbox in
            let generations = try Self.seedGenerations(sandbox)
            let newest = try #require(generations.last), previous = generations[generations.count - 2]
            let newestPath = Snapshots.path(in: Self.snapshotsDir(sandbox), generation: newest)
            let newestName = Files.list(Self.snapshotsDir(sandbox)).last!
            let previousCounter = try #require(try Snapshots.decode(
                path: Snapshots.path(in: Self.snapshotsDir(sandbox), generation: previous), sandbox: sandbox).counter)
            try damage.apply(newestPath)

            let listing = TreeListing.of(sandbox.path("state"))
            let verify = try CommandRun.doryd(sandbox, ["state", "verify", "--state-dir", sandbox.path("state")])
            #expect(verify.code == 1, "\(verify)")
            let line = verify.stdoutLines.first { $0.hasPrefix("\(newest) ") || $0.hasPrefix("\(newest)\t") }
            #expect(line != nil && damage.reasons.contains { line!.contains($0) }, "verify does not name \(newest) with \(damage.reasons): \(verify)")
            #expect(verify.stdoutLines.contains { $0.hasPrefix("\(previous) ") && $0.hasSuffix("ok") }, "\(verify)")
            #expect(TreeListing.of(sandbox.path("state")) == listing, "verify changed files")

            let daemon = try sandbox.launch(.fixture())
            let decision = try daemon.decision()
            #expect(decision.strategy == "restore" && decision.generation == Int64(previous), "\(decision)")
            let quarantined = daemon.events("snapshot.quarantined")
            #expect(quarantined.count == 1 && quarantined.first?["level"]?.string == "warning", "\(daemon.logTail)")
            let reason = quarantined.first?["reason"]?.string ?? ""
            #expect(damage.reasons.contains(reason), "reason \(reason)")
            let moved = Files.list(Self.quarantineDir(sandbox))
            #expect(moved.count == 1 && moved.first!.hasPrefix(newestName + "." + reason + "."), "quarantine holds \(moved)")
            if let name = moved.first { #expect(name.split(separator: ".").last.map { $0.count == 13 && Int64($0) != nil } == true, "\(name)") }
            #expect(!Files.exists(newestPath), "the damaged file is still in snapshots/")
            try daemon.waitReady()
            #expect(daemon.hooks.contains("restoreState"))
            let restored = try #require(try daemon.currentState()["counter"]?.int)
            #expect(restored >= previousCounter && restored < previousCounter + 30, "counter \(restored) vs saved \(previousCounter)")
            #expect(try daemon.metrics().value("dory_snapshots_quarantined_total", ["reason": reason]) == 1)
            #expect(try daemon.stop().code == 0)
        }
    }

    // Case 52: every file damaged → golden_reset/state_invalid, all in quarantine, default state.
    @Test func case52_everyFileDamagedIsAGoldenReset() throws {
        try withSandbox { sandbox in
            let generations = try Self.seedGenerations(sandbox)
            for g in generations { try SnapshotForge.truncateToHalf(Snapshots.path(in: Self.snapshotsDir(sandbox), generation: g)) }
            let daemon = try sandbox.launch(.fixture())
            let decision = try daemon.decision()
            #expect(decision.strategy == "golden_reset" && decision.reason == "state_invalid", "\(decision)")
            #expect(decision.level == "warning")
            #expect(Files.list(Self.quarantineDir(sandbox)).count == generations.count, "\(Files.list(Self.quarantineDir(sandbox)))")
            #expect(daemon.events("snapshot.quarantined").count == generations.count)
            try daemon.waitReady()
            #expect(!daemon.hooks.contains("restoreState"), "\(daemon.hooks)")
            #expect(daemon.hooks.contains("resetCaches"), "\(daemon.hooks)")
            let startup = try #require(daemon.saved(reason: "startup").first?.generation)
            #expect(startup > generations.last!, "generation \(startup) reused a number")
            #expect(try daemon.snapshot(startup).counter == 0)
            #expect(try daemon.stop().code == 0)
        }
    }

    // Case 52: DORY_QUARANTINE_KEEP=2 and three damaged files → two remain, a WARN for the dropped one.
    @Test func case52_quarantineKeepDropsTheOldestWithAWarning() throws {
        try withSandbox { sandbox in
            let generations = try Self.seedGenerations(sandbox)
            #expect(generations.count == 3)
            for g in generations { try SnapshotForge.truncateToHalf(Snapshots.path(in: Self.snapshotsDir(sandbox), generation: g)) }
            let names = Files.list(Self.snapshotsDir(sandbox)).filter(Snapshots.isGenerationName)
            let daemon = try sandbox.launch(.fixture(["DORY_QUARANTINE_KEEP": "2"]))
            try daemon.waitReady()
            let kept = Files.list(Self.quarantineDir(sandbox))
            #expect(kept.count == 2, "\(kept)")
            let dropped = names.filter { name in !kept.contains { $0.hasPrefix(name + ".") } }
            #expect(dropped.count == 1, "dropped \(dropped), kept \(kept)")
            if let name = dropped.first {
                // One WARN for its move to quarantine, one for its deletion from there.
                let warnings = daemon.records.filter { record in
                    record["level"]?.string == "warning" && record.values.contains { $0.string?.contains(name) == true }
                }
                #expect(warnings.count >= 2, "no WARN for the dropped \(name): \(warnings)")
            }
            // §4.6: the counter counts files moved to quarantine (three), not the later deletion of one of them.
            let counted = try daemon.metrics().samples("dory_snapshots_quarantined_total").reduce(0) { $0 + $1.value }
            #expect(counted == 3, "dory_snapshots_quarantined_total sums to \(counted) for three files moved")
            #expect(try daemon.stop().code == 0)
        }
    }

    // Case 57: a file whose processor_id differs from its directory → quarantined wrong_processor; a second doryd on
    // the same directory and processor → exit 4.
    @Test func case57_wrongProcessorAndSecondDaemon() throws {
        try withSandbox { sandbox in
            let generations = try Self.seedGenerations(sandbox)
            let foreign = generations.last! + 1
            try SnapshotForge.write(sandbox, snapshotsDir: Self.snapshotsDir(sandbox), generation: foreign,
                                    envelopeJSON: SnapshotForge.envelope(processorId: "someone-else", generation: foreign))
            let daemon = try sandbox.launch(.fixture())
            let decision = try daemon.decision()
            #expect(decision.generation == Int64(generations.last!), "\(decision)")
            #expect(daemon.events("snapshot.quarantined").first?["reason"]?.string == "wrong_processor", "\(daemon.logTail)")
            #expect(Files.list(Self.quarantineDir(sandbox)).first?.contains(".wrong_processor.") == true)
            try daemon.waitReady()

            let bootsBefore = daemon.journal().filter { $0["type"]?.string == "boot" }.count
            var options = LaunchOptions.fixture()
            options.waitForListening = false
            let second = try sandbox.launch(options)
            let exit = try second.waitForExit(timeout: .seconds(10))
            #expect(exit.code == 4, "\(exit); \(second.logTail)")
            #expect(second.events("http.listening").isEmpty)
            #expect(daemon.journal().filter { $0["type"]?.string == "boot" }.count == bootsBefore, "the second doryd wrote a boot record")
            #expect(daemon.process.isRunning && daemon.status("/healthz") == 200)
            #expect(Files.exists(daemon.controlSocketPath), "the second doryd removed the first one's control socket")
            #expect(try daemon.stop().code == 0)
        }
    }

    // Case 86: newest generation 7 damaged and DORY_QUARANTINE_KEEP=0 → deleted at boot, the boot record's
    // generation_hwm is 7, and the next generation written is 8, never 7 again.
    @Test func case86_deletedDamagedGenerationIsNeverReused() throws {
        try withSandbox { sandbox in
            for g: UInt64 in 5...7 {
                try SnapshotForge.write(sandbox, snapshotsDir: Self.snapshotsDir(sandbox), generation: g,
                                        envelopeJSON: SnapshotForge.envelope(generation: g, state: #"{"counter":\#(g * 10)}"#))
            }
            try SnapshotForge.truncateToHalf(Snapshots.path(in: Self.snapshotsDir(sandbox), generation: 7))
            let daemon = try sandbox.launch(.fixture(["DORY_QUARANTINE_KEEP": "0"]))
            let decision = try daemon.decision()
            #expect(decision.strategy == "restore" && decision.generation == 6, "\(decision)")
            #expect(!Files.exists(Snapshots.path(in: Self.snapshotsDir(sandbox), generation: 7)))
            #expect(Files.list(Self.quarantineDir(sandbox)).isEmpty, "\(Files.list(Self.quarantineDir(sandbox)))")
            #expect(daemon.records.contains { $0["level"]?.string == "warning" && $0["event"]?.string == "snapshot.quarantined" },
                    "no WARN for the deleted file")
            let boot = daemon.journal().last { $0["type"]?.string == "boot" }
            #expect(boot?["boot_id"]?.string == daemon.bootId)
            #expect(boot?["generation_hwm"]?.int == 7, "\(String(describing: boot))")
            try daemon.waitReady()
            #expect(try daemon.currentState()["counter"]?.int ?? 0 >= 60)
            #expect(try daemon.stop().code == 0)
            let written = daemon.saved().compactMap(\.generation)
            #expect(written.first == 8, "first generation written: \(written)")
            #expect(!written.contains(7))
            let snapshot = try daemon.snapshot(7 + UInt64(written.count))
            #expect(snapshot.generation == Int64(7 + written.count))
        }
    }

    // §6.1 / §6.4 reasons, made with the system's gzip: `doryd state verify` and a booting doryd agree on each one;
    // concatenated gzip members are accepted as gzip does.
    @Test func validationReasonsAgreeBetweenVerifyAndBoot() throws {
        try withSandbox { sandbox in
            let dir = Self.snapshotsDir(sandbox)
            // 1: valid, two concatenated members.
            let whole = SnapshotForge.envelope(generation: 1, state: #"{"counter":1}"#)
            let half = whole.index(whole.startIndex, offsetBy: whole.count / 2)
            try SnapshotForge.write(sandbox, snapshotsDir: dir, generation: 1, envelopeJSON: String(whole[..<half]))
            let firstMember = try #require(Files.read(Snapshots.path(in: dir, generation: 1)))
            try SnapshotForge.write(sandbox, snapshotsDir: dir, generation: 1, envelopeJSON: String(whole[half...]))
            writeFile(Snapshots.path(in: dir, generation: 1), firstMember + (Files.read(Snapshots.path(in: dir, generation: 1)) ?? []))
            // 2: trailing bytes after the member.
            try SnapshotForge.write(sandbox, snapshotsDir: dir, generation: 2, envelopeJSON: SnapshotForge.envelope(generation: 2))
            writeFile(Snapshots.path(in: dir, generation: 2), (Files.read(Snapshots.path(in: dir, generation: 2)) ?? []) + Array("junk".utf8))
            // 3: not JSON; 4: a future format; 5: generation 6 inside file 5; 6: state not an object.
            try SnapshotForge.write(sandbox, snapshotsDir: dir, generation: 3, envelopeJSON: #"{"format": "dory.snapshot/1", "#)
            try SnapshotForge.write(sandbox, snapshotsDir: dir, generation: 4, envelopeJSON:
                SnapshotForge.envelope(generation: 4).replacing("dory.snapshot/1", with: "dory.snapshot/2"))
            try SnapshotForge.write(sandbox, snapshotsDir: dir, generation: 5, envelopeJSON: SnapshotForge.envelope(generation: 6))
            try SnapshotForge.write(sandbox, snapshotsDir: dir, generation: 6, envelopeJSON: SnapshotForge.envelope(generation: 6, state: "[1,2]"))
            let expected: [UInt64: String] = [1: "ok", 2: "trailing_data", 3: "bad_json", 4: "wrong_format", 5: "generation_mismatch", 6: "bad_state"]

            let verify = try CommandRun.doryd(sandbox, ["state", "verify", "--state-dir", sandbox.path("state")])
            #expect(verify.code == 1, "\(verify)")
            for (generation, reason) in expected {
                #expect(verify.stdoutLines.contains { $0.hasPrefix("\(generation) ") && $0.hasSuffix(reason) }, "generation \(generation) should be \(reason): \(verify)")
            }

            let daemon = try sandbox.launch(.fixture())
            let decision = try daemon.decision()
            #expect(decision.strategy == "restore" && decision.generation == 1, "\(decision)")
            let reasons = Dictionary(daemon.events("snapshot.quarantined").compactMap { record -> (UInt64, String)? in
                guard let file = record["file"]?.string, let name = file.split(separator: "/").last,
                      let generation = UInt64(name.prefix(20)), let reason = record["reason"]?.string else { return nil }
                return (generation, reason)
            }, uniquingKeysWith: { first, _ in first })
            #expect(reasons == expected.filter { $0.value != "ok" }, "\(reasons)")
            try daemon.waitReady()
            #expect(try daemon.currentState()["counter"]?.int ?? -1 >= 1)
            #expect(try daemon.stop().code == 0)
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import DoryState

func content(_ state: JSONObject, reason: String = "interval") -> SnapshotContent {
    SnapshotContent(podName: "pod-1", namespace: "ns", reason: reason, restartCount: 2, strategy: "restore",
                    state: state, bootID: "3f2a9c1b-0000", dorydVersion: "1.0.0")
}

func makeStore(_ dir: TempDir, keep: Int = 3, quarantineKeep: Int = 5, maxRaw: Int = 1 << 20, hwm: Int64 = 0,
               fs: any FileSystem = SystemFileSystem()) throws -> SnapshotStore {
    let store = SnapshotStore(processorDirectory: dir.sub("state/proc-a"), processorID: "proc-a", keep: keep,
                              compressionLevel: 1, maxRawBytes: maxRaw, quarantineKeep: quarantineKeep,
                              generationHighWaterMark: hwm, fileSystem: fs)
    _ = try store.prepareDirectories()
    return store
}

@Suite struct SnapshotEnvelopeTests {
    let envelope = SnapshotEnvelope(
        processorID: "p", podName: "pod", namespace: "ns", generation: 42, savedAt: "2025-01-02T03:04:05.678Z",
        reason: "shutdown", restartCount: 1, strategy: "fresh",
        state: ["counter": .int(5), "f": .double(13.0), "big": .bigInt("100000000000000000000")], bootID: "b")

    @Test func encodeDecodeAndHash() throws {
        let (bytes, hash) = try envelope.encoded()
        #expect(try JSON.parse(bytes) == envelope.jsonValue)
        #expect(hash == SHA256.hex(try JSON.encode(.object(envelope.state), sortedKeys: true)))
        #expect(hash == (try SnapshotEnvelope.stateHash(envelope.state)))
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains(#""state":{"big":100000000000000000000,"counter":5,"f":13.0}"#))
        #expect(try SnapshotEnvelope.decode(bytes, expectedProcessorID: "p", expectedGeneration: 42) == envelope)
        // Bytes encoded (and hashed) by the caller are used as they are: the same file, no second encoding.
        let stateBytes = try JSON.encode(.object(envelope.state), sortedKeys: true)
        let (reused, reusedHash) = try envelope.encoded(stateBytes: stateBytes)
        #expect(reused == bytes && reusedHash == hash)
    }

    func reason(_ json: String, processor: String = "p", generation: Int64? = 42) -> String {
        do {
            _ = try SnapshotEnvelope.decode(Array(json.utf8), expectedProcessorID: processor, expectedGeneration: generation)
            return "ok"
        } catch {
            return error.reason
        }
    }

    @Test func validationReasons() {
        let good = #"{"format":"dory.snapshot/1","processor_id":"p","generation":42,"state":{},"x":1}"#
        #expect(reason(good) == "ok")
        #expect(reason("{") == "bad_json")
        #expect(reason("[1]") == "bad_json")
        #expect(reason(#"{"processor_id":"p","generation":42,"state":{}}"#) == "wrong_format")
        #expect(reason(#"{"format":"dory.snapshot/2","processor_id":"p","generation":42,"state":{}}"#) == "wrong_format")
        #expect(reason(good, processor: "q") == "wrong_processor")
        #expect(reason(good, generation: 41) == "generation_mismatch")
        #expect(reason(#"{"format":"dory.snapshot/1","processor_id":"p","generation":"42","state":{}}"#) == "generation_mismatch")
        #expect(reason(#"{"format":"dory.snapshot/1","processor_id":"p","generation":42,"state":[]}"#) == "bad_state")
        #expect(reason(#"{"format":"dory.snapshot/1","processor_id":"p","generation":42}"#) == "bad_state")
    }

    @Test func nonFiniteStateFailsToEncode() {
        var e = envelope
        e.state["x"] = .double(.nan)
        #expect(throws: JSONEncodeError.self) { try e.encoded() }
    }
}

@Suite struct SnapshotLayoutTests {
    @Test func names() {
        #expect(SnapshotLayout.fileName(generation: 42) == "00000000000000000042.json.gz")
        #expect(SnapshotLayout.generation(fromFileName: "00000000000000000042.json.gz") == 42)
        #expect(SnapshotLayout.generation(fromFileName: "0000000000000000042.json.gz") == nil)
        #expect(SnapshotLayout.generation(fromFileName: "00000000000000000042.json.gz.crc_mismatch.1") == nil)
        #expect(SnapshotLayout.generation(prefixOf: "00000000000000000041.json.gz.crc_mismatch.1735790645678") == 41)
        #expect(SnapshotLayout.generation(fromFileName: "99999999999999999999.json.gz") == nil)
        #expect(SnapshotLayout.isTemporaryFileName(".00000000000000000042.tmp.3f2a9c1b"))
        #expect(SnapshotLayout.isTemporaryFileName(".boots.jsonl.tmp.1"))
        #expect(!SnapshotLayout.isTemporaryFileName("boots.jsonl"))
        #expect(!SnapshotLayout.isTemporaryFileName(".tmp.x"))
        #expect(!SnapshotLayout.isTemporaryFileName(".a.tmp."))
        let t = SnapshotLayout.temporaryFileName(for: "boots.jsonl")
        #expect(t.hasPrefix(".boots.jsonl.tmp.") && t.count == ".boots.jsonl.tmp.".count + 8)
        #expect(SnapshotLayout.compactUTC(millis: 1_735_787_045_678) == "20250102T030405.678Z")
    }

    @Test func faultRuleParsing() throws {
        #expect(try FaultRule.parse("fsync@snapshots/") == FaultRule(operation: .fsync, pathSubstring: "snapshots/"))
        #expect(try FaultRule.parse("open@a@b") == FaultRule(operation: .open, pathSubstring: "a@b"))
        for bad in ["", "fsync", "fsync@", "read@x", "@x", "FSYNC@x"] {
            #expect(throws: FaultRuleParseError.self) { try FaultRule.parse(bad) }
        }
    }
}

@Suite struct SnapshotStoreTests {
    @Test func prepareCreatesDirectoriesAndRemovesTempFiles() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let proc = dir.sub("state/proc-a")
        let store = SnapshotStore(processorDirectory: proc, processorID: "proc-a", keep: 3, compressionLevel: 1,
                                  maxRawBytes: 1 << 20, quarantineKeep: 5)
        let first = try store.prepareDirectories()
        #expect(first.createdDirectories == [dir.sub("state"), proc, proc + "/snapshots", proc + "/quarantine"])
        var st = stat()
        stat(proc + "/snapshots", &st)
        #expect(st.st_mode & 0o777 == 0o700)
        // Stray temp files everywhere doryd owns; archive/ untouched.
        for d in ["events/channels/agent", "archive/20250102T030405.678Z-x"] { _ = runProcess("/bin/mkdir", ["-p", proc + "/" + d]) }
        let temps = [".boots.jsonl.tmp.aa", "snapshots/.00000000000000000001.tmp.bb", "quarantine/.x.tmp.cc",
                     "events/.queue.log.tmp.dd", "events/channels/agent/.c.jsonl.tmp.ee"]
        for t in temps { writeFile(proc + "/" + t, [1]) }
        writeFile(proc + "/archive/20250102T030405.678Z-x/.y.tmp.ff", [1])
        writeFile(proc + "/snapshots/notes.txt", [1])
        let second = try store.prepareDirectories()
        #expect(second.createdDirectories.isEmpty)
        #expect(Set(second.removedTemporaryFiles) == Set(temps.map { proc + "/" + $0 }))
        #expect(listDir(proc + "/archive/20250102T030405.678Z-x") == [".y.tmp.ff"])
        #expect(listDir(proc + "/snapshots") == ["notes.txt"])
    }

    @Test func writeProtocolAndKeep() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let store = try makeStore(dir, keep: 3)
        var results: [SnapshotWriteResult] = []
        for i in 1...5 { results.append(try store.write(content(["counter": .int(Int64(i))]))) }
        #expect(results.map(\.generation) == [1, 2, 3, 4, 5])
        #expect(results[4].pruned == [2])
        #expect(listDir(store.layout.snapshotsDirectory) == [3, 4, 5].map { SnapshotLayout.fileName(generation: $0) })
        // gzip -d reads the file; the envelope carries the §6.1 members.
        let r = runProcess("/bin/gzip", ["-dc", results[4].path])
        #expect(r.status == 0)
        let v = try JSON.parse(r.output)
        guard case .object(let o) = v else { Issue.record("not an object"); return }
        #expect(o["format"] == .string("dory.snapshot/1"))
        #expect(o["processor_id"] == .string("proc-a"))
        #expect(o["generation"] == .int(5))
        #expect(o["pod_name"] == .string("pod-1"))
        #expect(o["namespace"] == .string("ns"))
        #expect(o["state"] == .object(["counter": .int(5)]))
        if case .string(let savedAt)? = o["saved_at"] { #expect(WallClock.parseRFC3339(savedAt) != nil) } else {
            Issue.record("no saved_at")
        }
        #expect(results[4].rawBytes == r.output.count)
        #expect(results[4].compressedBytes == readFile(results[4].path)?.count)
        #expect(results[4].stateHash == (try SnapshotEnvelope.stateHash(["counter": .int(5)])))
        var st = stat()
        stat(results[4].path, &st)
        #expect(st.st_mode & 0o777 == 0o600)
        // Load gives the newest.
        let load = store.loadNewestValid()
        #expect(load.events.isEmpty)
        guard case .valid(let envelope, let generation, let raw, let compressed) = load.outcome else {
            Issue.record("not valid: \(load.outcome)"); return
        }
        #expect(generation == 5 && envelope.state == ["counter": .int(5)] && raw == results[4].rawBytes
                && compressed == results[4].compressedBytes)
        try store.confirm(generation: 5)
    }

    @Test(arguments: [
        (FaultOperation.open, SnapshotWriteError.Step.open), (.write, .write), (.fsync, .fsync), (.rename, .rename),
    ])
    func injectedFaults(op: FaultOperation, step: SnapshotWriteError.Step) throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let good = try makeStore(dir)
        _ = try good.write(content(["n": .int(1)]))
        let faulty = try makeStore(dir, fs: FaultInjectingFileSystem(
            base: SystemFileSystem(), rules: [FaultRule(operation: op, pathSubstring: "snapshots/")]))
        do {
            _ = try faulty.write(content(["n": .int(2)]))
            Issue.record("write succeeded despite \(op)")
        } catch {
            #expect(error.step == step)
            #expect(error.generation == 2)
            #expect(error.errno == EIO)
            #expect(error.errnoText == "Input/output error")
        }
        #expect(listDir(good.layout.snapshotsDirectory) == [SnapshotLayout.fileName(generation: 1)])
        // The failed generation is not used again by this store.
        let again = try? faulty.write(content(["n": .int(3)]))
        #expect(again == nil)
        #expect(faulty.highWaterMark == 3)
    }

    @Test func fsyncDirectoryAndCloseFaults() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let store = try makeStore(dir, fs: FaultInjectingFileSystem(base: SystemFileSystem()) { op, path in
            op == .fsync && path.hasSuffix("/snapshots")
        })
        do {
            _ = try store.write(content(["n": .int(1)]))
            Issue.record("write succeeded")
        } catch {
            #expect(error.step == .fsyncDirectory)
            #expect(error.description.contains("fsync_dir"))
        }
        #expect(!listDir(store.layout.snapshotsDirectory).contains { $0.hasPrefix(".") })
        // The next write takes a new generation.
        let ok = try makeStore(dir, hwm: store.highWaterMark)
        #expect(try ok.write(content(["n": .int(2)])).generation == 2)
    }

    @Test func tooLargeAndEncodeErrors() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let store = try makeStore(dir, maxRaw: 1024)
        #expect(throws: SnapshotWriteError.self) { try store.write(content(["s": .string(String(repeating: "x", count: 2000))])) }
        do {
            _ = try store.write(content(["s": .double(.infinity)]))
        } catch {
            #expect(error.step == .encode)
        }
        do {
            _ = try store.write(content(["s": .string(String(repeating: "x", count: 2000))]))
        } catch {
            #expect(error.step == .tooLarge)
        }
        #expect(listDir(store.layout.snapshotsDirectory).isEmpty)
        #expect(try store.write(content(["ok": .bool(true)])).generation == 4)
    }

    @Test func highWaterMarkScansEverywhere() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let store = try makeStore(dir)
        let proc = store.layout.processorDirectory
        _ = runProcess("/bin/mkdir", ["-p", proc + "/archive/20250102T030405.678Z-ab"])
        writeFile(proc + "/archive/20250102T030405.678Z-ab/00000000000000000040.json.gz", [0])
        writeFile(proc + "/quarantine/00000000000000000041.json.gz.crc_mismatch.1735790645678", [0])
        writeFile(proc + "/snapshots/00000000000000000007.json.gz", [0])
        #expect(try store.scanHighWaterMark() == 41)
        store.raiseHighWaterMark(to: 30)
        #expect(store.highWaterMark == 41)
        store.raiseHighWaterMark(to: 50)
        #expect(try store.write(content([:])).generation == 51)
        // A store that never scanned explicitly still scans before its first write.
        let fresh = try makeStore(dir)
        #expect(try fresh.write(content([:])).generation == 52)
    }

    @Test func damagedNewestFallsBackAndQuarantines() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let store = try makeStore(dir, keep: 10)
        for i in 1...3 { _ = try store.write(content(["counter": .int(Int64(i))])) }
        let newest = store.layout.snapshotPath(generation: 3)
        let bytes = readFile(newest)!
        writeFile(newest, Array(bytes[0..<(bytes.count / 2)]))
        // Read-only inspection moves nothing.
        let reports = try store.reader.inspectAll()
        #expect(reports.map(\.generation) == [3, 2, 1])
        #expect(reports[0].result == .damaged(SnapshotValidationError(.truncated, "data ends inside a gzip member")))
        #expect(try store.reader.newestValid()?.generation == 2)
        #expect(listDir(store.layout.snapshotsDirectory).count == 3)

        let load = store.loadNewestValid()
        guard case .valid(let envelope, 2, _, _) = load.outcome else { Issue.record("\(load.outcome)"); return }
        #expect(envelope.state == ["counter": .int(2)])
        #expect(load.events.count == 1)
        #expect(load.events[0].reason == "truncated")
        #expect(load.events[0].file == newest)
        #expect(load.events[0].size == Int64(bytes.count / 2))
        let q = listDir(store.layout.quarantineDirectory)
        #expect(q.count == 1)
        #expect(q[0].hasPrefix("00000000000000000003.json.gz.truncated."))
        #expect(Int64(q[0].split(separator: ".").last!) != nil)
        #expect(load.events[0].action == .quarantined(to: store.layout.quarantineDirectory + "/" + q[0]))
        #expect(try store.write(content([:])).generation == 4)
    }

    @Test func everyFileDamagedIsInvalidAndQuarantineKeepApplies() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let store = try makeStore(dir, keep: 10, quarantineKeep: 2)
        for i in 1...3 { _ = try store.write(content(["counter": .int(Int64(i))])) }
        writeFile(store.layout.snapshotPath(generation: 1), Array("not gzip".utf8))
        let two = readFile(store.layout.snapshotPath(generation: 2))!
        writeFile(store.layout.snapshotPath(generation: 2), two + [0])
        var three = readFile(store.layout.snapshotPath(generation: 3))!
        three[three.count - 6] ^= 0xFF
        writeFile(store.layout.snapshotPath(generation: 3), three)
        let load = store.loadNewestValid()
        #expect(load.outcome == .invalid)
        #expect(load.events.map(\.reason) == ["crc_mismatch", "trailing_data", "bad_gzip", "crc_mismatch"])
        #expect(load.events.last?.action == .droppedFromQuarantine)
        let q = listDir(store.layout.quarantineDirectory)
        #expect(q.count == 2)
        #expect(q.contains { $0.hasPrefix("00000000000000000001.json.gz.bad_gzip.") })
        #expect(q.contains { $0.hasPrefix("00000000000000000002.json.gz.trailing_data.") })
        #expect(listDir(store.layout.snapshotsDirectory).isEmpty)
        #expect(store.loadNewestValid().outcome == .none)
    }

    @Test func wrongProcessorIsQuarantined() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let store = try makeStore(dir)
        _ = try store.write(content(["a": .int(1)]))
        let other = SnapshotStore(processorDirectory: dir.sub("state/proc-a"), processorID: "proc-b", keep: 3,
                                  compressionLevel: 1, maxRawBytes: 1 << 20, quarantineKeep: 5)
        let load = other.loadNewestValid()
        #expect(load.outcome == .invalid)
        #expect(load.events.first?.reason == "wrong_processor")
    }

    @Test func quarantineKeepZeroDeletesAndGenerationIsNotReused() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let store = try makeStore(dir, keep: 10, quarantineKeep: 0)
        for _ in 1...7 { _ = try store.write(content([:])) }
        writeFile(store.layout.snapshotPath(generation: 7), [0x1F, 0x8B])
        let reboot = try makeStore(dir, keep: 10, quarantineKeep: 0)
        #expect(try reboot.scanHighWaterMark() == 7)
        let load = reboot.loadNewestValid()
        guard case .valid(_, 6, _, _) = load.outcome else { Issue.record("\(load.outcome)"); return }
        #expect(load.events.map(\.action) == [.deleted])
        #expect(load.events.first?.reason == "truncated")
        #expect(listDir(reboot.layout.quarantineDirectory).isEmpty)
        #expect(try reboot.write(content([:])).generation == 8)
    }

    @Test func tooLargeOnLoad() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let writer = try makeStore(dir)
        _ = try writer.write(content(["s": .string(String(repeating: "x", count: 5000))]))
        let reader = try makeStore(dir, maxRaw: 1000)
        #expect(reader.loadNewestValid().events.first?.reason == "too_large")
    }

    @Test func archiveAllAndOne() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let store = try makeStore(dir)
        #expect(try store.archiveAll(label: "3f2a9c1b") == nil)
        #expect(listDir(store.layout.processorDirectory).contains("archive") == false)
        for _ in 1...2 { _ = try store.write(content([:])) }
        let result = try store.archiveAll(label: "3f2a9c1b", nowMillis: 1_735_787_045_678)
        #expect(result?.directory == store.layout.archiveDirectory + "/20250102T030405.678Z-3f2a9c1b")
        #expect(result?.files == [SnapshotLayout.fileName(generation: 1), SnapshotLayout.fileName(generation: 2)])
        #expect(listDir(store.layout.snapshotsDirectory).isEmpty)
        #expect(listDir(result!.directory) == result!.files)
        _ = try store.write(content([:]))
        let one = try store.archive(generation: 3, label: "rejected", nowMillis: 1_735_787_045_679)
        #expect(one?.files == [SnapshotLayout.fileName(generation: 3)])
        #expect(try store.archive(generation: 99, label: "x") == nil)
        let reboot = try makeStore(dir)
        #expect(try reboot.scanHighWaterMark() == 3)
    }

    @Test func concurrentWritesGetDistinctGenerations() async throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let store = try makeStore(dir, keep: 100)
        let generations = await withTaskGroup(of: Int64?.self) { group in
            for i in 0..<16 { group.addTask { try? store.write(content(["i": .int(Int64(i))])).generation } }
            var all: [Int64] = []
            for await g in group { if let g { all.append(g) } }
            return all
        }
        #expect(generations.sorted() == Array(1...16))
    }
}

@Suite struct ProcessorLockTests {
    @Test func exclusion() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let lock = try ProcessorLock.acquire(processorDirectory: dir.path)
        do {
            _ = try ProcessorLock.acquire(processorDirectory: dir.path)
            Issue.record("second lock acquired")
        } catch {
            #expect(error == .heldByAnotherProcess(path: dir.path + "/lock"))
            #expect(error.description.contains("held by another doryd"))
        }
        lock.release()
        let again = try ProcessorLock.acquire(processorDirectory: dir.path)
        again.release()
        #expect(throws: ProcessorLockError.self) { try ProcessorLock.acquire(processorDirectory: dir.sub("missing")) }
    }
}

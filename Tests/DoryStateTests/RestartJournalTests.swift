#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import DoryState

private func boot(_ id: String, at ms: Int64, uid: String? = "uid-1", hwm: Int64 = 0) -> JournalRecord {
    .boot(BootRecord(bootID: id, podName: "pod", podUID: uid, startedAtMillis: ms, version: "1.0.0",
                     generationHighWaterMark: hwm))
}
private func end(_ id: String, at ms: Int64, clean: Bool) -> JournalRecord {
    .end(EndRecord(bootID: id, endedAtMillis: ms, exitCode: clean ? 0 : 1, clean: clean))
}
private func healthy(_ id: String, at ms: Int64) -> JournalRecord { .healthy(HealthyRecord(bootID: id, atMillis: ms)) }

@Suite struct JournalRecordTests {
    @Test func linesRoundTrip() {
        let b = boot("b1", at: 1_735_787_045_678, hwm: 42)
        #expect(String(decoding: b.line(), as: UTF8.self)
            == #"{"type":"boot","boot_id":"b1","pod_name":"pod","pod_uid":"uid-1","started_at":"2025-01-02T03:04:05.678Z","version":"1.0.0","generation_hwm":42}"#)
        let e: JournalRecord = .end(EndRecord(bootID: "b1", endedAtMillis: 1_735_787_045_678, exitCode: 0, clean: true,
                                              errors: ["x"]))
        #expect(String(decoding: e.line(), as: UTF8.self)
            == #"{"type":"end","boot_id":"b1","ended_at":"2025-01-02T03:04:05.678Z","exit_code":0,"clean":true,"errors":["x"]}"#)
        for r in [b, e, healthy("b1", at: 5), boot("b2", at: 7, uid: nil)] {
            #expect(JournalRecord.parse(r.line()) == r)
        }
        #expect(JournalRecord.parse(Array(#"{"type":"nope","boot_id":"x"}"#.utf8)) == nil)
    }

    @Test func runModeEndRecordCarriesChildStatusAndSource() {
        let exited: JournalRecord = .end(EndRecord(bootID: "b1", endedAtMillis: 1_735_787_045_678, exitCode: 3, clean: false,
                                                   child: ChildEnd(childStatus: 3, source: .child)))
        #expect(String(decoding: exited.line(), as: UTF8.self)
            == #"{"type":"end","boot_id":"b1","ended_at":"2025-01-02T03:04:05.678Z","exit_code":3,"clean":false,"errors":[],"child_status":3,"source":"child"}"#)
        let none: JournalRecord = .end(EndRecord(bootID: "b1", endedAtMillis: 1_735_787_045_678, exitCode: 127, clean: false,
                                                 child: ChildEnd(childStatus: nil, source: .doryd)))
        #expect(String(decoding: none.line(), as: UTF8.self)
            == #"{"type":"end","boot_id":"b1","ended_at":"2025-01-02T03:04:05.678Z","exit_code":127,"clean":false,"errors":[],"child_status":null,"source":"doryd"}"#)
        for r in [exited, none] { #expect(JournalRecord.parse(r.line()) == r) }
        #expect(JournalRecord.parse(Array(#"{"type":"boot","boot_id":"x","started_at":"yesterday"}"#.utf8)) == nil)
        #expect(JournalRecord.parse(Array("{\"type\":\"boot\"".utf8)) == nil)
    }
}

@Suite struct RestartJournalFileTests {
    @Test func appendAndReadBack() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let path = dir.sub("boots.jsonl")
        let (journal, report) = try RestartJournal.open(path: path, maxBytes: 65536, minimumBoots: 4)
        #expect(report.created && report.records.isEmpty && report.tornTail == nil)
        let records = [boot("a", at: 1000), healthy("a", at: 2000), end("a", at: 3000, clean: true)]
        for r in records { try journal.append(r) }
        journal.close()
        #expect(try RestartJournal.readRecords(path: path) == records)
        let (again, report2) = try RestartJournal.open(path: path, maxBytes: 65536, minimumBoots: 4)
        defer { again.close() }
        #expect(!report2.created && report2.records == records)
        var st = stat()
        stat(path, &st)
        #expect(st.st_mode & 0o777 == 0o600)
    }

    @Test func tornLastLineIsCut() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let path = dir.sub("boots.jsonl")
        let good = boot("a", at: 1000).line() + [0x0A]
        writeFile(path, good + Array(#"{"type":"boot","boot_"#.utf8))
        let (journal, report) = try RestartJournal.open(path: path, maxBytes: 65536, minimumBoots: 4)
        #expect(report.tornTail == .init(offset: Int64(good.count), bytesRemoved: 21))
        #expect(readFile(path) == good)
        try journal.append(boot("b", at: 2000))
        journal.close()
        let lines = readFile(path)!.split(separator: 0x0A)
        #expect(lines.count == 2)
        #expect(lines.allSatisfy { JournalRecord.parse($0) != nil })
    }

    @Test func unparsableTerminatedLastLineIsCutAndMiddleLinesSkipped() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let path = dir.sub("boots.jsonl")
        let a = boot("a", at: 1000).line() + [0x0A]
        let junk = Array("garbage\n".utf8)
        let b = boot("b", at: 2000).line() + [0x0A]
        writeFile(path, a + junk + b + Array("{\"half\n".utf8))
        let (journal, report) = try RestartJournal.open(path: path, maxBytes: 65536, minimumBoots: 4)
        defer { journal.close() }
        #expect(report.tornTail?.offset == Int64(a.count + junk.count + b.count))
        #expect(report.skippedLines == [.init(lineNumber: 2, offset: Int64(a.count), excerpt: "garbage")])
        #expect(report.records == [boot("a", at: 1000), boot("b", at: 2000)])
    }

    @Test func compactionKeepsNewestWithinHalfAndMinimumBoots() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let path = dir.sub("boots.jsonl")
        var all: [JournalRecord] = []
        for i in 0..<60 {
            all.append(boot("boot-\(i)", at: Int64(i) * 1000))
            all.append(end("boot-\(i)", at: Int64(i) * 1000 + 500, clean: i % 2 == 0))
        }
        var bytes: [UInt8] = []
        for r in all { bytes += r.line() + [0x0A] }
        writeFile(path, bytes)
        let max = 4096
        #expect(bytes.count > max)
        let (journal, report) = try RestartJournal.open(path: path, maxBytes: max, minimumBoots: 4)
        let size = readFile(path)!.count
        #expect(size <= max / 2)
        #expect(report.compaction?.bytesAfter == size)
        #expect(report.compaction?.bytesBefore == bytes.count)
        guard case .boot? = report.records.first else { Issue.record("does not start at a boot"); return }
        #expect(Array(all.suffix(report.records.count)) == report.records)
        #expect(!listDir(dir.path).contains { $0.hasPrefix(".") })
        // Appends go to the new file.
        try journal.append(boot("next", at: 99_000))
        journal.close()
        #expect(try RestartJournal.readRecords(path: path).last == boot("next", at: 99_000))

        // A tiny budget still keeps the newest `minimumBoots` boots with their records.
        let (j2, r2) = try RestartJournal.open(path: path, maxBytes: 100, minimumBoots: 4)
        j2.close()
        #expect(r2.records.filter { if case .boot = $0 { true } else { false } }.count == 4)
        #expect(r2.records.first == boot("boot-57", at: 57_000))
    }

    @Test func compactionStartAlignsToBoots() {
        let records: [(record: JournalRecord, size: Int)] = [
            (boot("a", at: 0), 10), (end("a", at: 1, clean: true), 10), (boot("b", at: 2), 10), (healthy("b", at: 3), 10),
            (end("b", at: 4, clean: true), 10),
        ]
        // 20 bytes fit the last two records (healthy, end of b) but not b's boot: drop the orphans.
        #expect(RestartJournal.compactionStart(records, budget: 20, minimumBoots: 0) == 5)
        #expect(RestartJournal.compactionStart(records, budget: 20, minimumBoots: 1) == 2)
        #expect(RestartJournal.compactionStart(records, budget: 30, minimumBoots: 1) == 2)
        #expect(RestartJournal.compactionStart(records, budget: 1000, minimumBoots: 1) == 0)
        #expect(RestartJournal.compactionStart(records, budget: 0, minimumBoots: 5) == 0)
    }

    @Test func appendFailureIsReported() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let fs = FaultInjectingFileSystem(base: SystemFileSystem(), rules: [FaultRule(operation: .fsync, pathSubstring: "boots")])
        let (journal, _) = try RestartJournal.open(path: dir.sub("boots.jsonl"), maxBytes: 65536, minimumBoots: 4,
                                                   fileSystem: fs)
        defer { journal.close() }
        #expect(throws: JournalError.self) { try journal.append(boot("a", at: 1)) }
    }
}

/// Spec §12 cases 59–68, the arithmetic part.
@Suite struct RestartHistoryTests {
    let minute: Int64 = 60_000
    func analyze(_ records: [JournalRecord], now: Int64, uid: String? = "uid-1", threshold: Int = 3,
                 override: Int? = nil, current: String? = nil) -> RestartHistory {
        RestartHistory.analyze(records: records, currentBootID: current, nowMillis: now, podUID: uid,
                               windowMillis: minute, threshold: threshold, restartCountOverride: override)
    }

    @Test func case59EmptyJournal() {
        let h = analyze([], now: 1_000_000)
        #expect(h.restartCount == 0 && h.crashesInWindow == 0 && !h.isRapidRestart && h.generationHighWaterMark == 0)
    }

    @Test func case60OtherPodOnly() {
        let h = analyze([boot("x", at: 0, uid: "other"), end("x", at: 10, clean: true)], now: 1_000_000)
        #expect(h.restartCount == 0)
    }

    @Test func case61OneCleanBoot() {
        let h = analyze([boot("a", at: 0, hwm: 5), end("a", at: 10, clean: true)], now: 1000)
        #expect(h.restartCount == 1 && h.crashesInWindow == 0 && h.generationHighWaterMark == 5)
    }

    @Test func case63CleanCyclesNeverGolden() {
        var records: [JournalRecord] = []
        for i in 0..<6 {
            let h = analyze(records, now: Int64(i) * 1000, uid: nil)
            #expect(!h.isRapidRestart && h.crashesInWindow == 0 && h.restartCount == 0)
            records += [boot("b\(i)", at: Int64(i) * 1000, uid: nil), end("b\(i)", at: Int64(i) * 1000 + 500, clean: true)]
        }
    }

    @Test func case64ThreeKillsMakeTheFourthBootRapid() {
        let records = [boot("a", at: 0), boot("b", at: 10_000), boot("c", at: 20_000)]
        let h = analyze(records, now: 30_000)
        #expect(h.crashesInWindow == 3 && h.isRapidRestart && h.restartCount == 3 && h.streak == 3)
        #expect(RestartHistory.backoffSeconds(crashesInWindow: 3, threshold: 3, baseSeconds: 10, maxSeconds: 300) == 10)
        // Two kills are not enough.
        #expect(!analyze(Array(records.prefix(2)), now: 30_000).isRapidRestart)
    }

    @Test func case65Backoff() {
        #expect(RestartHistory.backoffSeconds(crashesInWindow: 4, threshold: 3, baseSeconds: 10, maxSeconds: 300) == 20)
        #expect(RestartHistory.backoffSeconds(crashesInWindow: 5, threshold: 3, baseSeconds: 10, maxSeconds: 300) == 40)
        #expect(RestartHistory.backoffSeconds(crashesInWindow: 9, threshold: 3, baseSeconds: 10, maxSeconds: 300) == 300)
        #expect(RestartHistory.backoffSeconds(crashesInWindow: 2, threshold: 3, baseSeconds: 10, maxSeconds: 300) == 0)
        #expect(RestartHistory.backoffSeconds(crashesInWindow: 1000, threshold: 3, baseSeconds: 10, maxSeconds: 300) == 300)
        // RESTART_COUNT=3 forces a rapid restart; RESTART_COUNT=0 keeps a storm out.
        let forced = analyze([], now: 0, override: 3)
        #expect(forced.isRapidRestart && forced.crashesInWindow == 3 && forced.restartCount == 3)
        let storm = (0..<10).map { boot("k\($0)", at: Int64($0) * 100) }
        let calm = analyze(storm, now: 1000, override: 0)
        #expect(!calm.isRapidRestart && calm.restartCount == 0 && calm.streak == 10)
    }

    @Test func case66HealthyEndsTheStreakAndOldCrashesLeaveTheWindow() {
        let records = [boot("a", at: 0), boot("b", at: 1000), boot("h", at: 2000), healthy("h", at: 4000),
                       boot("c", at: 5000)]
        let h = analyze(records, now: 6000)
        #expect(h.crashesInWindow == 1 && h.streak == 1 && !h.isRapidRestart)
        let spread = [boot("a", at: 0), boot("b", at: 5 * minute), boot("c", at: 10 * minute)]
        let s = analyze(spread, now: 15 * minute)
        #expect(s.streak == 3 && s.crashesInWindow == 1 && !s.isRapidRestart)
    }

    @Test func case67PodIdentity() {
        let records = [boot("a", at: 0, uid: "old"), boot("b", at: 100, uid: "old"), boot("c", at: 200, uid: "old"),
                       boot("d", at: 300, uid: "uid-1")]
        let h = analyze(records, now: 400)
        #expect(h.restartCount == 1 && h.crashesInWindow == 1 && !h.isRapidRestart)
        // No UID: every boot since the last clean end.
        let mixed = [boot("a", at: 0, uid: nil), boot("b", at: 100, uid: nil), end("b", at: 150, clean: true),
                     boot("c", at: 200, uid: nil), boot("d", at: 300, uid: nil)]
        let n = analyze(mixed, now: 400, uid: nil)
        #expect(n.restartCount == 2 && n.crashesInWindow == 2)
        #expect(analyze(mixed, now: 400, uid: "").restartCount == 2)
    }

    @Test func currentBootIsIgnoredAndFutureTimesCountAsNow() {
        let records = [boot("a", at: 0), boot("b", at: 10_000_000), boot("me", at: 10_000_001)]
        let h = analyze(records, now: 1000, current: "me")
        // b started "in the future": a's crash is dated now, inside the window.
        #expect(h.earlierBoots == 2 && h.crashesInWindow == 2)
    }

    @Test func uncleanEndIsACrash() {
        let records = [boot("a", at: 0), end("a", at: 10, clean: false), boot("b", at: 20), end("b", at: 30, clean: false),
                       boot("c", at: 40), end("c", at: 50, clean: false)]
        #expect(analyze(records, now: 60).isRapidRestart)
    }
}

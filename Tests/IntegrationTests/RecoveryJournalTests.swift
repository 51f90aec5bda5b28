import DoryState
import Glibc
import Testing

/// §12 case 68: repair and compaction of `boots.jsonl` (§7) at boot.
@Suite struct RecoveryJournalTests {
    static func lines(_ path: String) -> [String] {
        String(decoding: Files.read(path) ?? [], as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    // Case 68: a torn last journal line (bytes after the last newline, or a last line that does not parse) → cut off
    // with a WARN naming the offset before this boot's record is appended; every line then parses.
    @Test(arguments: [#"{"type":"boot","boot_id":"torn-fragm"#, "{\"type\":\"bo\n"])
    func case68_tornLastLineIsCutBeforeTheAppend(_ tail: String) throws {
        try withSandbox { sandbox in
            let seed = try RecoveryDecisionTests.cleanBoot(sandbox)
            let journalPath = seed.journalPath
            let intact = try #require(Files.read(journalPath))
            #expect(intact.last == 0x0A)
            var torn = intact
            torn.append(contentsOf: Array(tail.utf8))
            writeFile(journalPath, torn)

            let daemon = try sandbox.launch(.fixture())
            try daemon.waitReady()
            let warning = daemon.events("journal.torn_tail").first
            #expect(warning?["level"]?.string == "warning", "no WARN for the torn line: \(daemon.logTail)")
            #expect(warning?["offset"]?.integer == Int64(intact.count), "offset \(String(describing: warning?["offset"])) vs \(intact.count)")
            let after = try #require(Files.read(journalPath))
            #expect(Array(after.prefix(intact.count)) == intact, "the intact part changed")
            let lines = Self.lines(journalPath)
            #expect(lines.last == "", "the journal does not end in a newline")
            let records = lines.dropLast()
            #expect(records.allSatisfy { JSON.object($0) != nil }, "unparsable line left: \(records)")
            let newBoot = records.compactMap { JSON.object($0) }.filter { $0["type"]?.string == "boot" }.last
            #expect(newBoot?["boot_id"]?.string == daemon.bootId, "this boot's record is not the last boot")
            #expect(!String(decoding: after, as: UTF8.self).contains("torn-fragm") && !String(decoding: after, as: UTF8.self).contains("\"bo\n"))
            #expect(try daemon.stop().code == 0)
        }
    }

    // Case 68: a journal over journal_max_bytes → rewritten to at most half of it, keeping at least
    // rapid_restart_threshold + 1 boots with their end records.
    @Test(arguments: [3, 10])
    func case68_oversizedJournalIsCompacted(_ threshold: Int) throws {
        try withSandbox { sandbox in
            let now = WallClock.nowMillis()
            var lines: [String] = []
            for i in 0..<120 {
                let at = now - Int64(3_600_000 - i * 1000)
                lines.append(JournalForge.boot(String(format3(i)), at: at, hwm: 0))
                lines.append(JournalForge.end(String(format3(i)), at: at + 500, clean: true))
            }
            let processorDir = sandbox.path("state/itest-pod")
            JournalForge.write(lines, processorDir: processorDir)
            let journalPath = processorDir + "/boots.jsonl"
            #expect((Files.read(journalPath)?.count ?? 0) > 4096)

            let daemon = try sandbox.launch(.fixture([
                "DORY_JOURNAL_MAX_BYTES": "4096", "DORY_RAPID_RESTART_THRESHOLD": String(threshold),
            ]))
            try daemon.waitReady()
            #expect(daemon.events("journal.compacted").count == 1, "\(daemon.logTail)")
            let kept = Self.lines(journalPath).dropLast()
            #expect(kept.allSatisfy { JSON.object($0) != nil })
            let parsed = kept.compactMap { JSON.object($0) }
            // Everything before this boot's own record is the rewritten file.
            let rewritten = parsed.dropLast()
            let rewrittenBytes = kept.dropLast().reduce(0) { $0 + $1.utf8.count + 1 }
            let keptBoots = rewritten.filter { $0["type"]?.string == "boot" }.compactMap { $0["boot_id"]?.string }
            let keptEnds = Set(rewritten.filter { $0["type"]?.string == "end" }.compactMap { $0["boot_id"]?.string })
            #expect(keptBoots.count >= threshold + 1, "kept \(keptBoots.count) boots")
            #expect(keptBoots.allSatisfy { keptEnds.contains($0) }, "a kept boot lost its end record")
            #expect(keptBoots.last == format3(119), "the newest boots must be kept: \(keptBoots)")
            let expectedNewest = (0..<keptBoots.count).map { format3(120 - keptBoots.count + $0) }
            #expect(keptBoots == expectedNewest, "kept \(keptBoots)")
            if (threshold + 1) * 2 * 200 < 2048 {
                #expect(rewrittenBytes <= 2048, "rewritten journal is \(rewrittenBytes) bytes, over half of 4096")
            }
            #expect(parsed.last?["boot_id"]?.string == daemon.bootId)
            #expect(try daemon.stop().code == 0)
        }
    }
}

private func format3(_ i: Int) -> String {
    let digits = String(i)
    return "boot-" + String(repeating: "0", count: max(0, 3 - digits.count)) + digits
}

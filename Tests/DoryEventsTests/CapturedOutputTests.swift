import DoryEvents
import Testing

/// §10.3: how captured bytes become records (C109 and the 16 KiB rule); the descriptors are covered by the
/// integration tests (EventsOutputTests).
@Suite struct CapturedLineSplitterTests {
    private func records(_ text: String) -> [String] { CapturedLineSplitter.records(Array(text.utf8)) }

    @Test func oneRecordPerLineWithoutTheNewline() {
        #expect(records("first\nsecond\n") == ["first", "second"])
    }

    @Test func crlfLosesTheCarriageReturnOnlyAtTheEnd() {  // C109
        #expect(records("a\r\nb\rc\r\n") == ["a", "b\rc"])
    }

    @Test func emptyLinesAreDropped() {  // C109
        #expect(records("\n\na\n\r\n\nb\n") == ["a", "b"])
    }

    @Test func unterminatedTailWaitsForFinish() {  // C107
        var splitter = CapturedLineSplitter()
        #expect(splitter.feed(Array("done\npart".utf8)) == ["done"])
        #expect(splitter.hasPending)
        #expect(splitter.feed(Array("ial".utf8)) == [])
        #expect(splitter.finish() == ["partial"])
        #expect(!splitter.hasPending)
        #expect(splitter.finish() == [])
    }

    @Test func lineSplitAcrossReadsIsOneRecord() {
        var splitter = CapturedLineSplitter()
        var out: [String] = []
        for byte in Array("hello world\n".utf8) { out += splitter.feed([byte]) }
        #expect(out == ["hello world"])
    }

    @Test func invalidUTF8BecomesReplacementCharacters() {
        let bytes: [UInt8] = [0x61, 0xFF, 0x62, 0xC3, 0x0A, 0xE2, 0x82, 0xAC, 0x0A]
        #expect(CapturedLineSplitter.records(bytes) == ["a\u{FFFD}b\u{FFFD}", "€"])
    }

    @Test func longLinesAreSplitInto16KiBRecords() {
        let limit = CapturedLineSplitter.maxRecordBytes
        #expect(limit == 16_384)
        let exact = String(repeating: "x", count: limit)
        #expect(records(exact + "\n") == [exact])
        let long = String(repeating: "y", count: 2 * limit + 5)
        let split = records(long + "\n")
        #expect(split.map(\.utf8.count) == [limit, limit, 5])
        #expect(split.joined() == long)
    }

    @Test func longLineGivesRecordsBeforeItEnds() {
        var splitter = CapturedLineSplitter()
        let first = splitter.feed(Array(repeating: UInt8(ascii: "z"), count: CapturedLineSplitter.maxRecordBytes + 1))
        #expect(first.map(\.utf8.count) == [CapturedLineSplitter.maxRecordBytes])
        #expect(splitter.feed(Array("\n".utf8)) == ["z"])
    }

    @Test func splitNeverBreaksAValidCharacter() {
        let limit = CapturedLineSplitter.maxRecordBytes
        // 16383 ASCII bytes, then "€" (3 bytes) straddling the limit.
        let text = String(repeating: "a", count: limit - 1) + "€" + "b"
        let split = records(text + "\n")
        #expect(split.map(\.utf8.count) == [limit - 1, 4])
        #expect(split.joined() == text)
        #expect(!split.joined().contains("\u{FFFD}"))
    }
}

/// Cuts one captured byte stream (standard output or standard error) into log record texts (event-pipeline.md
/// §10.3): one record per line, without its `\n` and a trailing `\r`; invalid UTF-8 replaced with U+FFFD; a line
/// over ``maxRecordBytes`` split into records of at most that many bytes (cut at a UTF-8 character boundary, so a
/// valid character is never broken in two); empty lines dropped.
///
/// A line longer than the limit gives its first records as soon as the bytes arrive, not when it ends, so a
/// newline-free stream never grows the buffer past the limit.
public struct CapturedLineSplitter: Sendable {
    /// The largest record, in bytes of UTF-8 (16 KiB).
    public static let maxRecordBytes = 16 * 1024

    /// Bytes of the line not yet ended.
    private var pending: [UInt8] = []

    public init() {}

    /// Whether an unterminated line is held.
    public var hasPending: Bool { !pending.isEmpty }

    /// Takes `bytes` as they arrived and returns the records they complete, in order.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [String] {
        var records: [String] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                CapturedLineSplitter.endLine(&pending, into: &records)
                continue
            }
            pending.append(byte)
            if pending.count > CapturedLineSplitter.maxRecordBytes {
                let cut = CapturedLineSplitter.cutPoint(pending)
                records.append(String(decoding: pending[..<cut], as: UTF8.self))
                pending.removeFirst(cut)
            }
        }
        return records
    }

    /// Ends the unterminated tail (S16): its record, or none when nothing (or only `\r`) is held.
    public mutating func finish() -> [String] {
        var records: [String] = []
        CapturedLineSplitter.endLine(&pending, into: &records)
        return records
    }

    /// The records of a whole text at once (`feed` then `finish`).
    public static func records(_ bytes: some Sequence<UInt8>) -> [String] {
        var splitter = CapturedLineSplitter()
        return splitter.feed(bytes) + splitter.finish()
    }

    private static func endLine(_ line: inout [UInt8], into records: inout [String]) {
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        if !line.isEmpty { records.append(String(decoding: line, as: UTF8.self)) }
        line.removeAll(keepingCapacity: true)
    }

    /// Where to cut a held line longer than the limit: at the limit, or before the character that straddles it when
    /// the bytes there are well-formed UTF-8 (a lead byte at most 3 bytes back whose sequence reaches past the limit).
    private static func cutPoint(_ bytes: [UInt8]) -> Int {
        let limit = maxRecordBytes
        var start = limit
        while start > limit - 3, start > 1, bytes[start] & 0xC0 == 0x80 { start -= 1 }
        guard start < limit, bytes[start] >= 0xC0 else { return limit }
        let length = bytes[start] >= 0xF0 ? 4 : bytes[start] >= 0xE0 ? 3 : 2
        return start + length > limit ? start : limit
    }
}

// `boots.jsonl` file mechanics (spec §7): open, repair a torn tail, skip bad lines, compact, append.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// A failed journal operation.
public struct JournalError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `open`, `read`, `repair`, `compact`, `append`.
    public let step: String
    public let error: FileSystemError

    public var description: String { "journal \(step) failed: \(error)" }
}

/// What opening the journal found and did; the caller logs a WARN for each repair and skipped line.
public struct JournalOpenReport: Sendable, Equatable {
    /// A torn last line that was cut off (`ftruncate` + `fsync`).
    public struct TornTail: Sendable, Equatable {
        /// The file length after the cut: the byte offset where the torn line started.
        public let offset: Int64
        /// How many bytes were cut.
        public let bytesRemoved: Int
    }

    /// A line other than the last that did not parse; skipped.
    public struct SkippedLine: Sendable, Equatable {
        /// 1-based line number.
        public let lineNumber: Int
        /// Byte offset of the line's start.
        public let offset: Int64
        /// Up to 80 bytes of the line, for the log.
        public let excerpt: String
    }

    /// The rewrite of an oversized journal (§6.3 protocol).
    public struct Compaction: Sendable, Equatable {
        public let bytesBefore: Int
        public let bytesAfter: Int
        public let recordsKept: Int
        public let recordsDropped: Int
    }

    /// The records the journal now holds (after repair and compaction), oldest first.
    public let records: [JournalRecord]
    public let tornTail: TornTail?
    public let skippedLines: [SkippedLine]
    public let compaction: Compaction?
    /// Whether the file did not exist and was created.
    public let created: Bool
}

/// The append-only restart journal. Every append is one `write` (looping on short writes) followed by `fsync`.
/// Appends are serialized internally.
public final class RestartJournal: Sendable {
    public let path: String
    private let fileSystem: any FileSystem
    private let file: Mutex<OpenFile?>

    private init(path: String, file: OpenFile, fileSystem: any FileSystem) {
        self.path = path
        self.file = Mutex(file)
        self.fileSystem = fileSystem
    }

    /// Opens (creating, mode 0600) `path` with `O_APPEND`, cuts a torn last line, skips unparsable lines, and
    /// compacts the file when it is over `maxBytes`: the newest records that fit in `maxBytes`/2, but never fewer
    /// than the newest `minimumBoots` boots (`rapid_restart_threshold`+1) with their healthy and end records.
    public static func open(path: String, maxBytes: Int, minimumBoots: Int,
                            fileSystem: any FileSystem = SystemFileSystem())
        throws(JournalError) -> (journal: RestartJournal, report: JournalOpenReport)
    {
        let existed: Bool
        do throws(FileSystemError) { existed = try fileSystem.status(path) != nil } catch {
            throw JournalError(step: "open", error: error)
        }
        var file = try openAppend(path, fileSystem)
        if !existed { try? fileSystem.fsyncDirectory(SnapshotStore.parent(of: path)) }

        // Read everything.
        var content: [UInt8]
        do throws(FileSystemError) {
            content = try readAll(file, fileSystem)
        } catch {
            try? fileSystem.close(file)
            throw JournalError(step: "read", error: error)
        }

        // Split into lines: (start, end excluding newline, terminated).
        var lines: [(start: Int, end: Int, terminated: Bool)] = []
        var start = 0
        for i in 0..<content.count where content[i] == 0x0A {
            lines.append((start, i, true))
            start = i + 1
        }
        if start < content.count { lines.append((start, content.count, false)) }

        // A torn last line: unterminated, or terminated but unparsable.
        var tornTail: JournalOpenReport.TornTail?
        if let last = lines.last,
           !last.terminated || JournalRecord.parse(content[last.start..<last.end]) == nil {
            let removed = content.count - last.start
            do throws(FileSystemError) {
                try fileSystem.ftruncate(file, length: Int64(last.start))
                try fileSystem.fsync(file)
            } catch {
                try? fileSystem.close(file)
                throw JournalError(step: "repair", error: error)
            }
            tornTail = .init(offset: Int64(last.start), bytesRemoved: removed)
            lines.removeLast()
            content.removeLast(removed)
        }

        var records: [(record: JournalRecord, start: Int, end: Int)] = []
        var skipped: [JournalOpenReport.SkippedLine] = []
        for (n, line) in lines.enumerated() {
            if let r = JournalRecord.parse(content[line.start..<line.end]) {
                records.append((r, line.start, line.end))
            } else {
                let excerpt = String(decoding: content[line.start..<min(line.end, line.start + 80)], as: UTF8.self)
                skipped.append(.init(lineNumber: n + 1, offset: Int64(line.start), excerpt: excerpt))
            }
        }

        var compaction: JournalOpenReport.Compaction?
        if content.count > maxBytes {
            let keepFrom = compactionStart(
                records.map { ($0.record, $0.end - $0.start + 1) }, budget: maxBytes / 2, minimumBoots: minimumBoots)
            var rewritten: [UInt8] = []
            for r in records[keepFrom...] {
                rewritten.append(contentsOf: content[r.start..<r.end])
                rewritten.append(0x0A)
            }
            do throws(AtomicFile.Failure) {
                try AtomicFile.write(rewritten, to: path, fileSystem: fileSystem)
            } catch {
                try? fileSystem.close(file)
                throw JournalError(step: "compact", error: error.error)
            }
            // The old descriptor points at the replaced file.
            try? fileSystem.close(file)
            file = try openAppend(path, fileSystem)
            compaction = .init(bytesBefore: content.count, bytesAfter: rewritten.count,
                               recordsKept: records.count - keepFrom, recordsDropped: keepFrom)
            records.removeFirst(keepFrom)
        }

        let report = JournalOpenReport(records: records.map(\.record), tornTail: tornTail, skippedLines: skipped,
                                       compaction: compaction, created: !existed)
        return (RestartJournal(path: path, file: file, fileSystem: fileSystem), report)
    }

    /// The index of the first record to keep: the newest records whose lines fit in `budget`, aligned to start at
    /// a boot record, extended back to include the newest `minimumBoots` boot records.
    static func compactionStart(_ records: [(record: JournalRecord, size: Int)], budget: Int, minimumBoots: Int) -> Int {
        var fitFrom = records.count
        var total = 0
        while fitFrom > 0, total + records[fitFrom - 1].size <= budget {
            total += records[fitFrom - 1].size
            fitFrom -= 1
        }
        // Do not keep healthy/end records whose boot record was dropped.
        while fitFrom < records.count {
            if case .boot = records[fitFrom].record { break }
            fitFrom += 1
        }
        var bootsFrom = records.count
        var boots = 0
        if minimumBoots > 0 {
            for i in stride(from: records.count - 1, through: 0, by: -1) {
                if case .boot = records[i].record {
                    boots += 1
                    bootsFrom = i
                    if boots == minimumBoots { break }
                }
            }
        }
        return min(fitFrom, bootsFrom)
    }

    private static func openAppend(_ path: String, _ fileSystem: any FileSystem) throws(JournalError) -> OpenFile {
        do throws(FileSystemError) {
            return try fileSystem.open(path, flags: O_RDWR | O_CREAT | O_APPEND, mode: 0o600)
        } catch {
            throw JournalError(step: "open", error: error)
        }
    }

    private static func readAll(_ file: OpenFile, _ fileSystem: any FileSystem) throws(FileSystemError) -> [UInt8] {
        _ = try fileSystem.seek(file, offset: 0, whence: SEEK_SET)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let result: Result<Int, FileSystemError> = chunk.withUnsafeMutableBytes { raw in
                do throws(FileSystemError) { return .success(try fileSystem.read(file, into: raw)) } catch {
                    return .failure(error)
                }
            }
            switch result {
            case .success(0): return out
            case .success(let n): out.append(contentsOf: chunk[0..<n])
            case .failure(let e) where e.errno == EINTR: continue
            case .failure(let e): throw e
            }
        }
    }

    /// Appends one record as one line: a single write (looping on short writes), then `fsync`.
    public func append(_ record: JournalRecord) throws(JournalError) {
        var line = record.line()
        line.append(0x0A)
        try file.withLock { f throws(JournalError) in
            guard let f else {
                throw JournalError(step: "append", error: FileSystemError(operation: "write", path: path, errno: EBADF))
            }
            do throws(FileSystemError) {
                try fileSystem.writeAll(f, line)
                try fileSystem.fsync(f)
            } catch {
                throw JournalError(step: "append", error: error)
            }
        }
    }

    /// Closes the descriptor. Idempotent.
    public func close() {
        if let taken = file.take() { try? fileSystem.close(taken) }
    }

    deinit { close() }

    /// Reads the records of a journal without changing it (skipping unparsable lines); empty when missing.
    public static func readRecords(path: String, fileSystem: any FileSystem = SystemFileSystem())
        throws(FileSystemError) -> [JournalRecord]
    {
        let content: [UInt8]
        do throws(FileSystemError) {
            content = try fileSystem.readWholeFile(path, maxBytes: 1 << 30)
        } catch where error.errno == ENOENT {
            return []
        }
        return content.split(separator: 0x0A, omittingEmptySubsequences: true).compactMap { JournalRecord.parse($0) }
    }
}

// Read-only access to snapshots: `doryd state ls|show|verify|export` (spec §6.8) and the store's validation.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One snapshot file and what validating it found.
public struct SnapshotFileReport: Sendable, Equatable {
    public enum Result: Sendable, Equatable {
        /// Passed every §6.4 check.
        case valid(SnapshotEnvelope, rawBytes: Int)
        /// Failed a §6.4 check (`error.reason`).
        case damaged(SnapshotValidationError)
        /// No such file (never existed, or pruned meanwhile).
        case missing
        /// The file could not be read (I/O error, permissions).
        case unreadable(FileSystemError)
    }

    public let generation: Int64
    public let path: String
    /// Size on disk; nil when missing or unreadable.
    public let compressedBytes: Int?
    /// Modification time (ms since the epoch); nil when missing or unreadable.
    public let modifiedMillis: Int64?
    public let result: Result

    public var envelope: SnapshotEnvelope? {
        if case .valid(let e, _) = result { return e }
        return nil
    }

    public var isValid: Bool { envelope != nil }
}

/// Reads and validates snapshot files without moving, writing or deleting anything (spec §6.2 "Locking").
public struct SnapshotReader: Sendable {
    public let layout: SnapshotLayout
    public let processorID: String
    public let maxRawBytes: Int
    public let fileSystem: any FileSystem

    public init(processorDirectory: String, processorID: String, maxRawBytes: Int,
                fileSystem: any FileSystem = SystemFileSystem()) {
        self.layout = SnapshotLayout(processorDirectory: processorDirectory)
        self.processorID = processorID
        self.maxRawBytes = maxRawBytes
        self.fileSystem = fileSystem
    }

    /// Generations named in `snapshots/` (names matching `^[0-9]{20}\.json\.gz$`), newest first.
    /// Throws when the directory cannot be read (ENOENT when it does not exist).
    public func generations() throws(FileSystemError) -> [Int64] {
        try fileSystem.readDirectory(layout.snapshotsDirectory)
            .compactMap { SnapshotLayout.generation(fromFileName: $0) }
            .sorted(by: >)
    }

    /// The largest compressed file worth reading: beyond it the raw content must exceed `maxRawBytes`
    /// (stored deflate adds 5 bytes per 64 KiB block, gzip 18 bytes plus header fields).
    var maxCompressedBytes: Int { maxRawBytes + maxRawBytes / 1000 + 65536 }

    /// Reads and validates one generation.
    public func inspect(generation: Int64) -> SnapshotFileReport {
        let path = layout.snapshotPath(generation: generation)
        let bytes: [UInt8]
        var modified: Int64?
        do throws(FileSystemError) {
            let st = try fileSystem.status(path)
            guard let st else {
                return SnapshotFileReport(generation: generation, path: path, compressedBytes: nil, modifiedMillis: nil,
                                          result: .missing)
            }
            modified = st.modifiedMillis
            bytes = try fileSystem.readWholeFile(path, maxBytes: maxCompressedBytes)
        } catch {
            if error.errno == ENOENT {
                return SnapshotFileReport(generation: generation, path: path, compressedBytes: nil, modifiedMillis: nil,
                                          result: .missing)
            }
            if error.errno == EFBIG {
                return SnapshotFileReport(
                    generation: generation, path: path, compressedBytes: nil, modifiedMillis: modified,
                    result: .damaged(SnapshotValidationError(.tooLarge, "file larger than \(maxCompressedBytes) bytes")))
            }
            return SnapshotFileReport(generation: generation, path: path, compressedBytes: nil, modifiedMillis: nil,
                                      result: .unreadable(error))
        }
        do throws(SnapshotValidationError) {
            let (envelope, raw) = try SnapshotEnvelope.decodeFile(
                bytes, expectedProcessorID: processorID, expectedGeneration: generation, maxRawBytes: maxRawBytes)
            return SnapshotFileReport(generation: generation, path: path, compressedBytes: bytes.count,
                                      modifiedMillis: modified, result: .valid(envelope, rawBytes: raw))
        } catch {
            return SnapshotFileReport(generation: generation, path: path, compressedBytes: bytes.count,
                                      modifiedMillis: modified, result: .damaged(error))
        }
    }

    /// Every file of `snapshots/`, newest first, each validated (`doryd state ls`, `verify`).
    public func inspectAll() throws(FileSystemError) -> [SnapshotFileReport] {
        try generations().map { inspect(generation: $0) }
    }

    /// The newest valid generation, skipping damaged files as §6.4 does but moving nothing; nil when none is valid.
    public func newestValid() throws(FileSystemError) -> SnapshotFileReport? {
        for generation in try generations() {
            let report = inspect(generation: generation)
            if report.isValid { return report }
        }
        return nil
    }
}

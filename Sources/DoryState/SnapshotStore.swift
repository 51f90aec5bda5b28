// Snapshot generations on disk: the write protocol (spec §6.3), load and quarantine (§6.4, §6.5), archive.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// What the caller supplies for a snapshot; the store adds `format`, `processor_id`, `generation` and `saved_at`.
public struct SnapshotContent: Sendable, Equatable {
    public var podName: String
    public var namespace: String
    public var reason: String
    public var restartCount: Int64
    public var strategy: String
    public var state: JSONObject
    public var bootID: String?
    public var dorydVersion: String?
    /// `state` already encoded compactly with sorted keys (the caller hashed it), so the write does not encode it
    /// again. Must be the encoding of `state`.
    public var encodedState: [UInt8]?

    public init(podName: String, namespace: String, reason: String, restartCount: Int64, strategy: String,
                state: JSONObject, bootID: String? = nil, dorydVersion: String? = nil, encodedState: [UInt8]? = nil) {
        self.encodedState = encodedState
        self.podName = podName
        self.namespace = namespace
        self.reason = reason
        self.restartCount = restartCount
        self.strategy = strategy
        self.state = state
        self.bootID = bootID
        self.dorydVersion = dorydVersion
    }
}

/// A durable snapshot (§6.3 step 8: log `snapshot saved` with these).
public struct SnapshotWriteResult: Sendable, Equatable {
    public let generation: Int64
    public let path: String
    public let rawBytes: Int
    public let compressedBytes: Int
    /// SHA-256 hex of the state encoded with sorted keys (§6.6 "unchanged").
    public let stateHash: String
    public let savedAt: String
    /// Wall time of the whole protocol, encode to prune.
    public let durationMillis: Double
    /// Generations deleted beyond `keep`.
    public let pruned: [Int64]
    /// Deletions beyond `keep` that failed (the save itself is durable).
    public let pruneErrors: [FileSystemError]
}

/// A failed save: the §6.3 step, the errno text, the generation it consumed (never reused).
public struct SnapshotWriteError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Step: String, Sendable {
        case encode, tooLarge = "too_large", compress, open, write, fsync, close, rename
        case fsyncDirectory = "fsync_dir"
    }

    public let step: Step
    public let generation: Int64
    /// The path the failing call used (temp file, directory); empty for encode/too_large/compress.
    public let path: String
    /// errno of the failing call; nil for encode/too_large/compress.
    public let errno: Int32?
    public let message: String

    /// The errno text (`Input/output error`) or the encode/size message.
    public var errnoText: String { errno.map { String(cString: strerror($0)) } ?? message }
    public var description: String {
        "snapshot \(generation) failed at \(step.rawValue)" + (path.isEmpty ? "" : " (\(path))") + ": \(message)"
    }

    init(_ step: Step, _ generation: Int64, _ error: FileSystemError) {
        self.step = step
        self.generation = generation
        self.path = error.path
        self.errno = error.errno
        self.message = error.errnoText
    }

    init(_ step: Step, _ generation: Int64, message: String) {
        self.step = step
        self.generation = generation
        self.path = ""
        self.errno = nil
        self.message = message
    }
}

/// A damaged snapshot moved to quarantine or deleted, or an old quarantined file dropped (§6.5). Log each at WARN
/// (`event=snapshot.quarantined`, file, reason, size).
public struct QuarantineEvent: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        /// Moved to this path under `quarantine/`.
        case quarantined(to: String)
        /// Deleted at once (`quarantine_keep` = 0).
        case deleted
        /// An older quarantined file deleted to stay within `quarantine_keep`.
        case droppedFromQuarantine
        /// Could not be moved or deleted; it stays where it is (and is skipped).
        case failed(FileSystemError)
    }

    /// The file's path before the action.
    public let file: String
    /// The §6.4 reason (parsed from the name for `droppedFromQuarantine`; `unreadable` for a read error).
    public let reason: String
    /// Details (the validation message).
    public let detail: String
    public let size: Int64
    public let action: Action
}

/// The outcome of the boot scan (§6.4).
public enum SnapshotLoadOutcome: Sendable, Equatable {
    /// The newest generation that passed.
    case valid(envelope: SnapshotEnvelope, generation: Int64, rawBytes: Int, compressedBytes: Int)
    /// No candidate file.
    case none
    /// Candidates existed and none passed (all quarantined).
    case invalid
}

public struct SnapshotLoadResult: Sendable, Equatable {
    public let outcome: SnapshotLoadOutcome
    /// Every file moved, deleted or dropped, in order; log each at WARN.
    public let events: [QuarantineEvent]
}

/// What `prepareDirectories` did.
public struct PrepareResult: Sendable, Equatable {
    /// Directories created (each with its parent fsynced).
    public let createdDirectories: [String]
    /// Stray temporary files deleted.
    public let removedTemporaryFiles: [String]
}

/// An archive made by a golden reset or a rejected restore (§6.5).
public struct ArchiveResult: Sendable, Equatable {
    /// `archive/<yyyyMMddTHHmmss.SSSZ>-<label>`.
    public let directory: String
    /// File names moved.
    public let files: [String]
}

/// The snapshot generations of one processor. All operations that change files are serialized by an internal
/// lock; read-only inspection goes through `reader`. Generation numbers are allocated as 1 + the high-water mark
/// (the larger of the one given at init, everything scanned, and every generation allocated), never reused even
/// after a failed write.
public final class SnapshotStore: Sendable {
    public let layout: SnapshotLayout
    public let processorID: String
    public let keep: Int
    public let compressionLevel: Int
    public let maxRawBytes: Int
    public let quarantineKeep: Int
    public let fileSystem: any FileSystem
    public let reader: SnapshotReader

    private struct Mutable {
        var highWaterMark: Int64
        var scanned = false
    }

    private let mutable: Mutex<Mutable>
    /// Quarantine stamps strictly increase within a process, so "oldest" is well defined within one millisecond.
    private let lastQuarantineMillis = Atomic<Int64>(0)

    /// - Parameters:
    ///   - keep: `snapshot_keep` (≥ 1).
    ///   - compressionLevel: `snapshot_level` (0–9).
    ///   - maxRawBytes: `snapshot_max_bytes`.
    ///   - quarantineKeep: `quarantine_keep` (0 = delete damaged files).
    ///   - generationHighWaterMark: the journal's high-water mark (§7), if known.
    public init(processorDirectory: String, processorID: String, keep: Int, compressionLevel: Int, maxRawBytes: Int,
                quarantineKeep: Int, generationHighWaterMark: Int64 = 0, fileSystem: any FileSystem = SystemFileSystem()) {
        self.layout = SnapshotLayout(processorDirectory: processorDirectory)
        self.processorID = processorID
        self.keep = max(1, keep)
        self.compressionLevel = compressionLevel
        self.maxRawBytes = maxRawBytes
        self.quarantineKeep = max(0, quarantineKeep)
        self.fileSystem = fileSystem
        self.reader = SnapshotReader(processorDirectory: processorDirectory, processorID: processorID,
                                     maxRawBytes: maxRawBytes, fileSystem: fileSystem)
        self.mutable = Mutex(Mutable(highWaterMark: max(0, generationHighWaterMark)))
    }

    // MARK: - Directories

    /// Creates the processor directory (and missing parents), `snapshots/` and `quarantine/` with mode 0700,
    /// fsyncing the parent of each created directory; then deletes stray `.<name>.tmp.<random>` files in the
    /// processor directory, `snapshots/`, `quarantine/` and every directory under `events/` (never `archive/`).
    public func prepareDirectories() throws(FileSystemError) -> PrepareResult {
        try mutable.withLock { _ throws(FileSystemError) -> PrepareResult in
            var created: [String] = []
            try makeDirectory(layout.processorDirectory, created: &created)
            try makeDirectory(layout.snapshotsDirectory, created: &created)
            try makeDirectory(layout.quarantineDirectory, created: &created)
            var removed: [String] = []
            for dir in [layout.processorDirectory, layout.snapshotsDirectory, layout.quarantineDirectory] {
                try removeTemporaryFiles(in: dir, recursive: false, removed: &removed)
            }
            if try fileSystem.status(layout.eventsDirectory)?.isDirectory == true {
                try removeTemporaryFiles(in: layout.eventsDirectory, recursive: true, removed: &removed)
            }
            return PrepareResult(createdDirectories: created, removedTemporaryFiles: removed)
        }
    }

    /// mkdir -p with 0700, fsyncing the parent of every directory it creates.
    private func makeDirectory(_ path: String, created: inout [String]) throws(FileSystemError) {
        if let st = try fileSystem.status(path) {
            if st.isDirectory { return }
            throw FileSystemError(operation: "mkdir", path: path, errno: ENOTDIR)
        }
        let parent = Self.parent(of: path)
        if parent != path { try makeDirectory(parent, created: &created) }
        do throws(FileSystemError) {
            try fileSystem.mkdir(path, mode: 0o700)
        } catch where error.errno == EEXIST {
            return
        }
        created.append(path)
        try fileSystem.fsyncDirectory(parent)
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    private func removeTemporaryFiles(in dir: String, recursive: Bool, removed: inout [String]) throws(FileSystemError) {
        let names: [String]
        do throws(FileSystemError) {
            names = try fileSystem.readDirectory(dir)
        } catch where error.errno == ENOENT {
            return
        }
        for name in names {
            let path = dir + "/" + name
            if SnapshotLayout.isTemporaryFileName(name), try fileSystem.status(path)?.isDirectory != true {
                do throws(FileSystemError) {
                    try fileSystem.unlink(path)
                    removed.append(path)
                } catch where error.errno == ENOENT {}
            } else if recursive, try fileSystem.status(path)?.isDirectory == true {
                try removeTemporaryFiles(in: path, recursive: true, removed: &removed)
            }
        }
    }

    // MARK: - Generations

    /// Scans `snapshots/`, `quarantine/` and `archive/*/` for the highest generation named anywhere, raises the
    /// high-water mark to it, and returns it (0 when none).
    @discardableResult
    public func scanHighWaterMark() throws(FileSystemError) -> Int64 {
        try mutable.withLock { m throws(FileSystemError) -> Int64 in
            let highest = try scanNames()
            m.highWaterMark = max(m.highWaterMark, highest)
            m.scanned = true
            return highest
        }
    }

    private func scanNames() throws(FileSystemError) -> Int64 {
        var highest: Int64 = 0
        func names(_ dir: String) throws(FileSystemError) -> [String] {
            do throws(FileSystemError) {
                return try fileSystem.readDirectory(dir)
            } catch where error.errno == ENOENT {
                return []
            }
        }
        for name in try names(layout.snapshotsDirectory) + names(layout.quarantineDirectory) {
            if let g = SnapshotLayout.generation(prefixOf: name) { highest = max(highest, g) }
        }
        for sub in try names(layout.archiveDirectory) {
            let dir = layout.archiveDirectory + "/" + sub
            guard try fileSystem.status(dir)?.isDirectory == true else { continue }
            for name in try names(dir) {
                if let g = SnapshotLayout.generation(prefixOf: name) { highest = max(highest, g) }
            }
        }
        return highest
    }

    /// Raises the high-water mark (e.g. to the journal's `generation_hwm`); never lowers it.
    public func raiseHighWaterMark(to generation: Int64) {
        mutable.withLock { $0.highWaterMark = max($0.highWaterMark, generation) }
    }

    /// The highest generation allocated, scanned or given; the next write uses this + 1.
    public var highWaterMark: Int64 { mutable.withLock { $0.highWaterMark } }

    // MARK: - Load (§6.4)

    /// Tries generations newest first; each damaged one is quarantined (or deleted with `quarantine_keep` 0)
    /// before the next older one is tried. Never reports a damaged file as "no state".
    public func loadNewestValid() -> SnapshotLoadResult {
        mutable.withLock { _ -> SnapshotLoadResult in
            var events: [QuarantineEvent] = []
            let generations: [Int64]
            do throws(FileSystemError) {
                generations = try reader.generations()
            } catch {
                if error.errno == ENOENT { return SnapshotLoadResult(outcome: .none, events: []) }
                return SnapshotLoadResult(outcome: .invalid, events: [
                    QuarantineEvent(file: layout.snapshotsDirectory, reason: "unreadable", detail: error.description,
                                    size: 0, action: .failed(error)),
                ])
            }
            var candidates = 0
            for generation in generations {
                let report = reader.inspect(generation: generation)
                switch report.result {
                case .missing:
                    continue
                case .valid(let envelope, let rawBytes):
                    return SnapshotLoadResult(
                        outcome: .valid(envelope: envelope, generation: generation, rawBytes: rawBytes,
                                        compressedBytes: report.compressedBytes ?? 0),
                        events: events)
                case .unreadable(let error):
                    candidates += 1
                    events.append(QuarantineEvent(file: report.path, reason: "unreadable", detail: error.description,
                                                  size: 0, action: .failed(error)))
                case .damaged(let error):
                    candidates += 1
                    events.append(contentsOf: quarantine(report, error))
                }
            }
            return SnapshotLoadResult(outcome: candidates == 0 ? .none : .invalid, events: events)
        }
    }

    /// Moves a damaged file to `quarantine/<file>.<reason>.<unix ms>` (or deletes it with keep 0), then drops the
    /// oldest quarantined files beyond `quarantine_keep`.
    private func quarantine(_ report: SnapshotFileReport, _ defect: SnapshotValidationError) -> [QuarantineEvent] {
        let size = Int64(report.compressedBytes ?? 0)
        let fileName = SnapshotLayout.fileName(generation: report.generation)
        if quarantineKeep == 0 {
            do throws(FileSystemError) {
                try fileSystem.unlink(report.path)
                try? fileSystem.fsyncDirectory(layout.snapshotsDirectory)
                return [QuarantineEvent(file: report.path, reason: defect.reason, detail: defect.message, size: size,
                                        action: .deleted)]
            } catch {
                return [QuarantineEvent(file: report.path, reason: defect.reason, detail: defect.message,
                                        size: size, action: .failed(error))]
            }
        }
        let stamp = max(WallClock.nowMillis(), lastQuarantineMillis.load(ordering: .relaxed) + 1)
        lastQuarantineMillis.store(stamp, ordering: .relaxed)
        let target = layout.quarantineDirectory + "/" + fileName + "." + defect.reason + "." + String(stamp)
        var events: [QuarantineEvent] = []
        do throws(FileSystemError) {
            var created: [String] = []
            try makeDirectory(layout.quarantineDirectory, created: &created)
            try fileSystem.rename(report.path, to: target)
            try? fileSystem.fsyncDirectory(layout.quarantineDirectory)
            try? fileSystem.fsyncDirectory(layout.snapshotsDirectory)
            events.append(QuarantineEvent(file: report.path, reason: defect.reason, detail: defect.message, size: size,
                                          action: .quarantined(to: target)))
        } catch {
            return [QuarantineEvent(file: report.path, reason: defect.reason, detail: defect.message, size: size,
                                    action: .failed(error))]
        }
        events.append(contentsOf: pruneQuarantine())
        return events
    }

    private func pruneQuarantine() -> [QuarantineEvent] {
        guard let names = try? fileSystem.readDirectory(layout.quarantineDirectory) else { return [] }
        // Oldest first by the `.<unix ms>` suffix, then by name.
        let entries = names.map { name -> (ms: Int64, name: String) in
            let suffix = name.split(separator: ".").last.flatMap { Int64($0) } ?? 0
            return (suffix, name)
        }.sorted { $0.ms != $1.ms ? $0.ms < $1.ms : $0.name < $1.name }
        guard entries.count > quarantineKeep else { return [] }
        var events: [QuarantineEvent] = []
        for entry in entries.prefix(entries.count - quarantineKeep) {
            let path = layout.quarantineDirectory + "/" + entry.name
            let size = (try? fileSystem.status(path))??.size ?? 0
            let parts = entry.name.split(separator: ".")
            let reason = parts.count >= 2 ? String(parts[parts.count - 2]) : ""
            do throws(FileSystemError) {
                try fileSystem.unlink(path)
                events.append(QuarantineEvent(file: path, reason: reason, detail: "beyond quarantine_keep \(quarantineKeep)",
                                              size: size, action: .droppedFromQuarantine))
            } catch {
                events.append(QuarantineEvent(file: path, reason: reason, detail: error.description, size: size,
                                              action: .failed(error)))
            }
        }
        return events
    }

    // MARK: - Write (§6.3)

    /// Writes `content` as the next generation through the full protocol: encode (over `maxRawBytes` →
    /// `too_large`), hash, compress, `O_EXCL` temp file in `snapshots/`, write all, fsync, close, rename, fsync
    /// the directory, then prune beyond `keep` (never the file just written). On failure the temp file is unlinked
    /// and the generation is not used again.
    public func write(_ content: SnapshotContent, savedAtMillis: Int64? = nil) throws(SnapshotWriteError)
        -> SnapshotWriteResult
    {
        try mutable.withLock { m throws(SnapshotWriteError) -> SnapshotWriteResult in
            let start = Self.monotonicMillis()
            if !m.scanned, let highest = try? scanNames() {
                m.highWaterMark = max(m.highWaterMark, highest)
                m.scanned = true
            }
            m.highWaterMark += 1
            let generation = m.highWaterMark
            let savedAt = WallClock.rfc3339(millis: savedAtMillis ?? WallClock.nowMillis())
            let envelope = SnapshotEnvelope(
                processorID: processorID, podName: content.podName, namespace: content.namespace,
                generation: generation, savedAt: savedAt, reason: content.reason, restartCount: content.restartCount,
                strategy: content.strategy, state: content.state, bootID: content.bootID,
                dorydVersion: content.dorydVersion)

            let raw: [UInt8]
            let stateHash: String
            do throws(JSONEncodeError) {
                (raw, stateHash) = try envelope.encoded(stateBytes: content.encodedState)
            } catch {
                throw SnapshotWriteError(.encode, generation, message: error.message)
            }
            guard raw.count <= maxRawBytes else {
                throw SnapshotWriteError(.tooLarge, generation,
                                         message: "\(raw.count) bytes over snapshot_max_bytes \(maxRawBytes)")
            }
            let compressed: [UInt8]
            do throws(GzipError) {
                compressed = try Gzip.compress(raw, level: compressionLevel)
            } catch {
                throw SnapshotWriteError(.compress, generation, message: error.description)
            }

            let finalPath = layout.snapshotPath(generation: generation)
            do throws(AtomicFile.Failure) {
                try AtomicFile.write(
                    compressed, to: finalPath,
                    tempName: SnapshotLayout.temporaryFileName(for: SnapshotLayout.paddedGeneration(generation)),
                    fileSystem: fileSystem)
            } catch {
                throw SnapshotWriteError(error.step, generation, error.error)
            }

            let (pruned, pruneErrors) = prune(keeping: generation)
            return SnapshotWriteResult(
                generation: generation, path: finalPath, rawBytes: raw.count, compressedBytes: compressed.count,
                stateHash: stateHash, savedAt: savedAt, durationMillis: Self.monotonicMillis() - start,
                pruned: pruned, pruneErrors: pruneErrors)
        }
    }

    /// Deletes generations beyond `keep`, oldest first, never `justWritten`.
    private func prune(keeping justWritten: Int64) -> ([Int64], [FileSystemError]) {
        guard let generations = try? reader.generations(), generations.count > keep else { return ([], []) }
        var pruned: [Int64] = []
        var errors: [FileSystemError] = []
        for generation in generations.dropFirst(keep).reversed() where generation != justWritten {
            do throws(FileSystemError) {
                try fileSystem.unlink(layout.snapshotPath(generation: generation))
                pruned.append(generation)
            } catch where error.errno == ENOENT {
            } catch {
                errors.append(error)
            }
        }
        return (pruned, errors)
    }

    /// fsyncs a generation's file and `snapshots/` (to trust a file this boot did not write, §6.6 reuse rule).
    public func confirm(generation: Int64) throws(FileSystemError) {
        try mutable.withLock { _ throws(FileSystemError) in
            let file = try fileSystem.open(layout.snapshotPath(generation: generation), flags: O_RDONLY, mode: 0)
            do throws(FileSystemError) {
                try fileSystem.fsync(file)
            } catch {
                try? fileSystem.close(file)
                throw error
            }
            try fileSystem.close(file)
            try fileSystem.fsyncDirectory(layout.snapshotsDirectory)
        }
    }

    // MARK: - Archive (§6.5)

    /// Moves every file of `snapshots/` into `archive/<UTC yyyyMMddTHHmmss.SSSZ>-<label>/` and fsyncs both
    /// directories. Nothing (nil) when `snapshots/` is empty.
    public func archiveAll(label: String, nowMillis: Int64? = nil) throws(FileSystemError) -> ArchiveResult? {
        try mutable.withLock { _ throws(FileSystemError) -> ArchiveResult? in
            let names: [String]
            do throws(FileSystemError) {
                names = try fileSystem.readDirectory(layout.snapshotsDirectory).sorted()
            } catch where error.errno == ENOENT {
                return nil
            }
            return try archive(names: names, label: label, nowMillis: nowMillis)
        }
    }

    /// Moves one generation's file into a new archive directory (a rejected restore). Nil when it does not exist.
    public func archive(generation: Int64, label: String, nowMillis: Int64? = nil) throws(FileSystemError)
        -> ArchiveResult?
    {
        try mutable.withLock { _ throws(FileSystemError) -> ArchiveResult? in
            guard try fileSystem.status(layout.snapshotPath(generation: generation)) != nil else { return nil }
            return try archive(names: [SnapshotLayout.fileName(generation: generation)], label: label,
                               nowMillis: nowMillis)
        }
    }

    private func archive(names: [String], label: String, nowMillis: Int64?) throws(FileSystemError) -> ArchiveResult? {
        guard !names.isEmpty else { return nil }
        var created: [String] = []
        try makeDirectory(layout.archiveDirectory, created: &created)
        let directory = layout.archiveDirectory + "/"
            + SnapshotLayout.compactUTC(millis: nowMillis ?? WallClock.nowMillis()) + "-" + label
        try makeDirectory(directory, created: &created)
        var moved: [String] = []
        for name in names {
            do throws(FileSystemError) {
                try fileSystem.rename(layout.snapshotsDirectory + "/" + name, to: directory + "/" + name)
                moved.append(name)
            } catch where error.errno == ENOENT {}
        }
        try fileSystem.fsyncDirectory(directory)
        try fileSystem.fsyncDirectory(layout.snapshotsDirectory)
        return ArchiveResult(directory: directory, files: moved)
    }

    // MARK: - Helpers

    static func monotonicMillis() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1e6
    }
}

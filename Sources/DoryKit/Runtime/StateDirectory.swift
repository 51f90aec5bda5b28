import DoryState
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `<state_dir>/<processor_id>/` for one boot (spec §6.2, §7): the lock, the snapshot store and the restart journal.
/// Everything here is blocking file I/O, called from the Supervisor during initializing or from the snapshot queue.
final class StateDirectory: @unchecked Sendable {
    // Set in init and `prepare()` (initializing, one caller), then only read.
    let store: SnapshotStore
    let fileSystem: any FileSystem
    let settings: RuntimeSettings
    private var lock: ProcessorLock?
    private var journal: RestartJournalFile?
    /// WARN lines for the Supervisor to log (temp files removed, torn journal lines cut).
    var notes: [(message: String, metadata: Logger.Metadata)] = []

    init(settings: RuntimeSettings) {
        self.settings = settings
        var fileSystem: any FileSystem = SystemFileSystem()
        #if DEBUG
        if let fault = settings.testFault, let rule = try? FaultRule.parse(fault) {
            fileSystem = FaultInjectingFileSystem(base: fileSystem, rules: [rule])
        }
        #endif
        self.fileSystem = fileSystem
        let config = settings.config
        store = SnapshotStore(
            processorDirectory: settings.processorDirectory, processorID: settings.processorId, keep: config.snapshotKeep,
            compressionLevel: config.snapshotLevel, maxRawBytes: config.snapshotMaxBytes, quarantineKeep: config.quarantineKeep,
            fileSystem: fileSystem)
    }

    /// Step (f): create the directory, take its lock, delete stray temp files.
    func prepare() throws {
        try fileSystem.makeDirectories(settings.processorDirectory)
        do {
            lock = try ProcessorLock.acquire(processorDirectory: settings.processorDirectory, fileSystem: fileSystem)
        } catch {
            throw StateDirectoryError(message: "\(error)")
        }
        let prepared = try store.prepareDirectories()
        for file in prepared.removedTemporaryFiles {
            notes.append(("stray temporary file removed", ["event": "snapshot.temp_removed", "file": .string(file)]))
        }
    }


    // MARK: Journal (§7)

    /// Step (g): repair and compact the journal, append this boot's record, and summarize the history before it.
    func appendBootRecord(bootId: String, version: String) throws -> JournalSummary {
        let hwm = try store.scanHighWaterMark()
        let journal = RestartJournalFile(settings: settings, fileSystem: fileSystem)
        self.journal = journal
        let summary = try journal.openAndAppendBoot(bootId: bootId, version: version, snapshotHighWaterMark: hwm)
        notes.append(contentsOf: journal.notes)
        store.raiseHighWaterMark(to: summary.generationHighWaterMark)
        return summary
    }

    func appendHealthyRecord(bootId: String) {
        journal?.appendHealthy(bootId: bootId)
    }

    /// Step 7: the end record (fsync, at most about a second); a failure is logged only.
    func appendEndRecord(bootId: String, exitCode: Int32, clean: Bool, errors: [String], child: ChildEnd? = nil) {
        journal?.appendEnd(bootId: bootId, exitCode: exitCode, clean: clean, errors: errors, child: child)
    }

    // MARK: Snapshots

    struct Scan {
        enum Newest {
            case valid(generation: UInt64, state: JSONObject, savedAtMillis: Int64, rawBytes: Int, compressedBytes: Int)
            case none
        }
        let outcome: RecoveryDecision.ScanOutcome
        let newest: Newest
        let quarantined: [QuarantineNote]
    }

    /// Step (h): newest valid generation first, quarantining damaged files (§6.4).
    func scan() throws -> Scan {
        let result = store.loadNewestValid()
        let events = result.events.map { event -> QuarantineNote in
            switch event.action {
            case .quarantined(let to):
                QuarantineNote(message: "snapshot quarantined", event: "snapshot.quarantined", file: event.file, reason: event.reason, size: event.size,
                               detail: "moved to \(to)", countsAsQuarantined: true)
            case .deleted:
                QuarantineNote(message: "damaged snapshot deleted (quarantine_keep is 0)", event: "snapshot.quarantined", file: event.file, reason: event.reason,
                               size: event.size, detail: event.detail, countsAsQuarantined: true)
            case .droppedFromQuarantine:
                QuarantineNote(message: "old quarantined file deleted (over quarantine_keep)", event: "quarantine.dropped", file: event.file, reason: event.reason,
                               size: event.size, detail: event.detail, countsAsQuarantined: false)
            case .failed(let error):
                QuarantineNote(message: "damaged snapshot could not be moved; skipped", event: "snapshot.quarantine_failed", file: event.file, reason: event.reason,
                               size: event.size, detail: "\(error)", countsAsQuarantined: false)
            }
        }
        switch result.outcome {
        case .valid(let envelope, let generation, let raw, let compressed):
            let savedAt = WallClock.parseRFC3339(envelope.savedAt) ?? WallClock.nowMillis()
            return Scan(outcome: .valid, newest: .valid(generation: UInt64(generation), state: envelope.state,
                                                        savedAtMillis: savedAt, rawBytes: raw, compressedBytes: compressed),
                        quarantined: events)
        case .none:
            return Scan(outcome: .none, newest: .none, quarantined: events)
        case .invalid:
            return Scan(outcome: .invalid, newest: .none, quarantined: events)
        }
    }

    /// Golden reset: archive every snapshot. Returns the archive directory, nil when there was nothing.
    func archiveAll() throws -> String? {
        try store.archiveAll(label: String(settings.bootId.prefix(8)))?.directory
    }

    /// A rejected restore: archive that generation.
    func archive(generation: UInt64) throws -> String? {
        try store.archive(generation: Int64(generation), label: String(settings.bootId.prefix(8)))?.directory
    }
}

/// One WARN line of the boot scan (§6.4, §6.5).
struct QuarantineNote: Sendable {
    let message: String
    let event: String
    let file: String
    let reason: String
    let size: Int64
    let detail: String
    /// A damaged file moved to quarantine or deleted: counted in `dory_snapshots_quarantined_total`.
    let countsAsQuarantined: Bool
}

struct StateDirectoryError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// The restart history before this boot, as the decision needs it.
struct JournalSummary: Sendable {
    let restartCount: Int
    let crashesInWindow: Int
    let generationHighWaterMark: Int64
}

/// Writes snapshots through the store with the envelope fields of this boot (spec §6.1).
struct StoreWriter: SnapshotWriting {
    let storage: StateDirectory
    let settings: RuntimeSettings
    let decision: RecoveryDecision

    func writeSnapshot(state: JSONObject, encodedState: [UInt8], reason: String, savedAtMillis: Int64) throws(SnapshotWriteFailure) -> WrittenSnapshot {
        let content = SnapshotContent(
            podName: settings.identity.podName, namespace: settings.identity.namespace, reason: reason,
            restartCount: Int64(decision.restartCount), strategy: decision.strategy.rawValue, state: state,
            bootID: settings.bootId, dorydVersion: settings.version, encodedState: encodedState)
        do throws(SnapshotWriteError) {
            let result = try storage.store.write(content, savedAtMillis: savedAtMillis)
            return WrittenSnapshot(generation: UInt64(result.generation), rawBytes: result.rawBytes, compressedBytes: result.compressedBytes)
        } catch {
            throw SnapshotWriteFailure(step: error.step.rawValue, message: error.errnoText)
        }
    }

    func confirmSnapshot(generation: UInt64) throws(SnapshotWriteFailure) {
        do throws(FileSystemError) {
            try storage.store.confirm(generation: Int64(generation))
        } catch {
            throw SnapshotWriteFailure(step: "fsync", message: error.errnoText)
        }
    }
}

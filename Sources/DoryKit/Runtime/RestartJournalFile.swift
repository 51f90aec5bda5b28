import DoryState
import Logging

/// This boot's view of `boots.jsonl` (spec §7): repair at open, the boot record, then healthy and end records.
final class RestartJournalFile: @unchecked Sendable {
    // Set once in `openAndAppendBoot` (initializing), then used from the Supervisor only.
    private var journal: RestartJournal?
    private let settings: RuntimeSettings
    private let fileSystem: any FileSystem
    /// WARN lines for the Supervisor (torn tail cut, lines skipped, compaction).
    var notes: [(message: String, metadata: Logger.Metadata)] = []

    init(settings: RuntimeSettings, fileSystem: any FileSystem) {
        self.settings = settings
        self.fileSystem = fileSystem
    }

    /// Opens (repairing and compacting), summarizes the earlier boots, and appends this boot's record with the
    /// generation high-water mark (the larger of the journal's and the highest generation named on disk).
    func openAndAppendBoot(bootId: String, version: String, snapshotHighWaterMark: Int64) throws -> JournalSummary {
        let config = settings.config
        let (journal, report) = try RestartJournal.open(
            path: settings.processorDirectory + "/boots.jsonl", maxBytes: config.journalMaxBytes,
            minimumBoots: config.rapidRestartThreshold + 1, fileSystem: fileSystem)
        self.journal = journal
        if let torn = report.tornTail {
            notes.append(("torn journal line cut", [
                "event": "journal.torn_tail", "offset": .stringConvertible(torn.offset), "bytes": .stringConvertible(torn.bytesRemoved),
            ]))
        }
        for skipped in report.skippedLines {
            notes.append(("unparsable journal line skipped", [
                "event": "journal.line_skipped", "line": .stringConvertible(skipped.lineNumber), "offset": .stringConvertible(skipped.offset),
            ]))
        }
        if let compaction = report.compaction {
            notes.append(("journal compacted", [
                "event": "journal.compacted", "bytes_before": .stringConvertible(compaction.bytesBefore),
                "bytes_after": .stringConvertible(compaction.bytesAfter), "records_dropped": .stringConvertible(compaction.recordsDropped),
            ]))
        }
        let now = WallClock.nowMillis()
        let history = RestartHistory.analyze(
            records: report.records, currentBootID: bootId, nowMillis: now, podUID: settings.identity.podUID,
            windowMillis: Int64(config.rapidRestartWindowSec * 1000), threshold: config.rapidRestartThreshold,
            restartCountOverride: config.restartCountOverride)
        let hwm = max(history.generationHighWaterMark, snapshotHighWaterMark)
        try journal.append(.boot(BootRecord(
            bootID: bootId, podName: settings.identity.podName, podUID: settings.identity.podUID, startedAtMillis: now,
            version: version, generationHighWaterMark: hwm)))
        return JournalSummary(restartCount: history.restartCount, crashesInWindow: history.crashesInWindow, generationHighWaterMark: hwm)
    }

    func appendHealthy(bootId: String) {
        append(.healthy(HealthyRecord(bootID: bootId, atMillis: WallClock.nowMillis())))
    }

    func appendEnd(bootId: String, exitCode: Int32, clean: Bool, errors: [String], child: ChildEnd? = nil) {
        append(.end(EndRecord(bootID: bootId, endedAtMillis: WallClock.nowMillis(), exitCode: Int(exitCode), clean: clean,
                              errors: errors, child: child)))
        journal?.close()
        journal = nil
    }

    private func append(_ record: JournalRecord) {
        guard let journal else { return }
        do throws(JournalError) {
            try journal.append(record)
        } catch {
            Logger(label: "doryd.journal").error("journal append failed", metadata: [
                "event": "journal.append_failed", "error": .errorValue(type: "journal", message: error.description),
            ])
        }
    }
}

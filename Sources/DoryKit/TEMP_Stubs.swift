import DoryState
import Logging
// TEMPORARY: replaced when DoryState's restart journal lands.
final class RestartJournalFile: @unchecked Sendable {
    var notes: [(message: String, metadata: Logger.Metadata)] = []
    init(settings: RuntimeSettings, fileSystem: any FileSystem) throws {}
    func openAndAppendBoot(bootId: String, version: String, snapshotHighWaterMark: Int64) throws -> JournalSummary {
        JournalSummary(restartCount: 0, crashesInWindow: 0, generationHighWaterMark: snapshotHighWaterMark)
    }
    func appendHealthy(bootId: String) {}
    func appendEnd(bootId: String, exitCode: Int32, clean: Bool, errors: [String]) {}
}

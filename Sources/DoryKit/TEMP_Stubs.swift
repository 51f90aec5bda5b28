import Logging
import DoryState
// TEMPORARY compile stubs; replaced when DoryState's store and DoryHTTP land.
final class StateDirectory: @unchecked Sendable {
    struct Note { let message: String; let metadata: Logger.Metadata }
    var notes: [Note] = []
    struct Quarantined { let file: String; let reason: String; let size: Int }
    enum Newest { case valid(UInt64, JSONObject, Int64, Int, Int), none, invalid }
    struct Scan { let outcome: RecoveryDecision.ScanOutcome; let newest: Newest; let quarantined: [Quarantined] }
    init(settings: RuntimeSettings) throws {}
    func prepare() throws {}
    func appendBootRecord(bootId: String, version: String) throws -> JournalSummary { JournalSummary(restartCount: 0, crashesInWindow: 0) }
    func scan() throws -> Scan { Scan(outcome: .none, newest: .none, quarantined: []) }
    func archiveAll() throws -> String? { nil }
    func archive(generation: UInt64) throws -> String? { nil }
    func appendEndRecord(bootId: String, exitCode: Int32, clean: Bool, errors: [String]) {}
    func appendHealthyRecord(bootId: String) {}
}
struct JournalSummary { let restartCount: Int; let crashesInWindow: Int }
struct StoreWriter: SnapshotWriting {
    init(storage: StateDirectory, settings: RuntimeSettings, decision: RecoveryDecision) {}
    func writeSnapshot(state: JSONObject, reason: String, savedAtMillis: Int64) throws(SnapshotWriteFailure) -> WrittenSnapshot { throw SnapshotWriteFailure(step: "x", message: "x") }
    func confirmSnapshot(generation: UInt64) throws(SnapshotWriteFailure) {}
}
enum FaultInjection { static func parse(_ s: String) -> Int? { nil } }

import DoryState
import Synchronization

/// Writes the workload state as one new durable snapshot generation with reason `api` and returns its generation;
/// throws (an error whose description says why) when nothing was saved. Never coalesced with or reused for another
/// request (§7.1). The host wires it to its snapshot writer.
public typealias EventStatePersist = @Sendable (_ state: JSONObject) async throws -> UInt64

/// The tag-commit writer of a hosted event workload (§7.1 "Tag commits and the snapshot writer"): captures the state
/// with the new map in place of the committed one, persists it through `persist`, then swaps the map in.
///
/// While a commit is in flight its map is also what ``captureForSnapshot()`` returns, so a snapshot the host's
/// serial writer takes right after the commit's generation (before this writer resumed to swap in) can never carry
/// the older map. The price: if the commit's own write then fails, a capture taken during the attempt may already
/// hold the new map (the pipeline still reports `TagCommitError`). The exact rule (swap inside the writer's serial
/// section) needs a hook in the host's snapshot writer.
public final class SnapshotTagCommitWriter: TagCommitWriter {
    private let state: EventState
    private let persist: EventStatePersist
    private let inFlight = Mutex<TagMap?>(nil)
    /// Generations written by commits (tests, logs).
    public let commits = Atomic<Int>(0)

    public init(state: EventState, persist: @escaping EventStatePersist) {
        self.state = state
        self.persist = persist
    }

    public func writeTagCommit(_ newTagMap: TagMap, swapIn: @Sendable () -> Void) async throws {
        inFlight.withLock { $0 = newTagMap }
        let captured = state.capture(tagValues: newTagMap)
        do {
            _ = try await persist(captured)
        } catch {
            inFlight.withLock { $0 = nil }
            throw error
        }
        swapIn()
        inFlight.withLock { $0 = nil }
        commits.add(1, ordering: .relaxed)
    }

    /// The workload state for a snapshot of any reason: the committed map, or the map of a commit in flight.
    public func captureForSnapshot() -> JSONObject {
        state.capture(tagValues: inFlight.withLock { $0 })
    }
}

import DoryState
import Synchronization

/// The state doryd holds for the child (spec/supervise.md §8.1): the latest JSON object it pushed (or the restored
/// state), with the sequence number of the PUT that set it and the durable generation holding exactly it.
public final class StateSlot: Sendable {
    /// A consistent view of the slot.
    public struct Contents: Sendable, Equatable {
        /// The state, or nil (JSON null) before any PUT or restore.
        public var state: JSONObject?
        /// The sequence number of the accepted PUT that set it; 0 for a restored state or none.
        public var sequence: UInt64
        /// The durable generation holding exactly this state; nil while it exists only in memory.
        public var generation: UInt64?
    }

    private struct Storage {
        var contents = Contents(state: nil, sequence: 0, generation: nil)
        var nextSequence: UInt64 = 1
        /// A PUT was accepted in this boot (run mode's definition of state-bound).
        var stateBound = false
        var finalSaveStarted = false
    }

    private let storage = Mutex(Storage())

    public init() {}

    /// Fills the slot from the restore source at the start of starting (§8.1): a state and its generation, or nil.
    public func fill(state: JSONObject?, generation: UInt64?) {
        storage.withLock { $0.contents = Contents(state: state, sequence: 0, generation: state == nil ? nil : generation) }
    }

    /// Accepts a PUT: replaces the slot (the newest wins), makes doryd state-bound; returns its sequence number.
    @discardableResult
    public func accept(_ state: JSONObject) -> UInt64 {
        storage.withLock { s in
            let sequence = s.nextSequence
            s.nextSequence += 1
            s.contents = Contents(state: state, sequence: sequence, generation: nil)
            s.stateBound = true
            return sequence
        }
    }

    public func read() -> Contents { storage.withLock { $0.contents } }

    /// Records that `generation` durably holds the slot as it was at `sequence`; the slot shows it as its
    /// generation only while no newer PUT replaced that state. Call it for writes of any reason.
    public func markDurable(generation: UInt64, sequence: UInt64) {
        storage.withLock { s in
            if s.contents.sequence == sequence && s.contents.state != nil { s.contents.generation = generation }
        }
    }

    /// Whether a PUT was accepted in this boot (else saves confirm the newest valid generation).
    public var isStateBound: Bool { storage.withLock { $0.stateBound } }

    /// From the start of the final save, PUTs answer 409 `final_save_started` (§5.1 step 5).
    public func beginFinalSave() { storage.withLock { $0.finalSaveStarted = true } }
    public var finalSaveStarted: Bool { storage.withLock { $0.finalSaveStarted } }
}

/// The result of making the slot durable, as the snapshot coordinator reports it.
public enum PersistOutcome: Sendable, Equatable {
    /// Durable in `generation`; `reused` when an existing generation of this boot had the same hash.
    case durable(generation: UInt64, reused: Bool)
    /// A failed write: `step` (`open`, `write`, `fsync`, …) and the errno text.
    case failed(step: String, message: String)
    /// No durable generation within `final_save_timeout_sec`.
    case timedOut
}

/// Durable PUTs (spec/supervise.md §6.4 "Coalescing"): at most one write runs; PUTs arriving meanwhile only replace
/// the slot, and when the write ends one more writes the newest slot and answers every PUT waiting. So N concurrent
/// durable PUTs cause at most two writes, and each caller learns that its state or a newer one is on disk.
public actor DurableWrites {
    private let slot: StateSlot
    private let persist: @Sendable (StateSlot.Contents) async -> PersistOutcome
    private var waiting: [(sequence: UInt64, continuation: CheckedContinuation<PersistOutcome, Never>)] = []
    private var writing = false
    /// Writes performed (for tests and metrics).
    public private(set) var writes = 0

    /// `persist` writes the given contents with reason `api` through the runtime's snapshot coordinator (reuse rule,
    /// bounded by `final_save_timeout_sec`) and reports the outcome.
    public init(slot: StateSlot, persist: @escaping @Sendable (StateSlot.Contents) async -> PersistOutcome) {
        self.slot = slot
        self.persist = persist
    }

    /// Waits until a write holding the PUT `sequence` (or a newer one) is durable, or fails.
    public func waitDurable(sequence: UInt64) async -> PersistOutcome {
        await withCheckedContinuation { continuation in
            waiting.append((sequence, continuation))
            if !writing {
                writing = true
                Task { await self.writeLoop() }
            }
        }
    }

    private func writeLoop() async {
        while !waiting.isEmpty {
            let contents = slot.read()
            writes += 1
            let outcome = await persist(contents)
            if case .durable(let generation, _) = outcome {
                slot.markDurable(generation: generation, sequence: contents.sequence)
            }
            // Answer every PUT this write contains; later ones wait for the next write.
            var still: [(sequence: UInt64, continuation: CheckedContinuation<PersistOutcome, Never>)] = []
            for waiter in waiting {
                if waiter.sequence <= contents.sequence { waiter.continuation.resume(returning: outcome) } else { still.append(waiter) }
            }
            waiting = still
        }
        writing = false
    }
}

@preconcurrency import Dispatch
import DoryState
import Logging

/// Why a snapshot is taken (spec §6.6).
enum SnapshotReason: String, Sendable {
    case startup, sigusr1, prestop, shutdown, interval, transfer, api

    /// `sigusr1`, `interval` and `api` share the coalescer: at most one in flight and one pending (§5.4).
    var coalesces: Bool { self == .sigusr1 || self == .interval || self == .api }
    /// Unchanged state is skipped rather than reused.
    var skipsUnchanged: Bool { self == .sigusr1 || self == .interval }
}

/// The outcome of one snapshot request.
enum SnapshotOutcome: Sendable {
    /// Durable on disk. `reused`: an existing generation of this boot with the same state hash.
    case saved(generation: UInt64, reused: Bool, rawBytes: Int, compressedBytes: Int, durationMs: Int)
    case skipped(generation: UInt64?)
    /// `step` names what failed (`capture`, `encode`, `open`, `write`, `fsync`, `rename`, `fsync_dir`, `too_large`).
    case failed(step: String, message: String)
    case timedOut

    var generation: UInt64? {
        switch self {
        case .saved(let g, _, _, _, _): g
        case .skipped(let g): g
        default: nil
        }
    }
}

/// What the coordinator needs from the snapshot store: one blocking, durable write.
protocol SnapshotWriting: Sendable {
    /// Writes the next generation through the §6.3 protocol and returns it once durable.
    /// `encodedState` is `state` encoded compactly with sorted keys (already hashed by the caller).
    func writeSnapshot(state: JSONObject, encodedState: [UInt8], reason: String, savedAtMillis: Int64) throws(SnapshotWriteFailure) -> WrittenSnapshot
    /// fsyncs an existing generation's file and directory (`/prestop` when not state-bound).
    func confirmSnapshot(generation: UInt64) throws(SnapshotWriteFailure)
}

struct WrittenSnapshot: Sendable {
    let generation: UInt64
    let rawBytes: Int
    let compressedBytes: Int
}

struct SnapshotWriteFailure: Error, Sendable {
    let step: String
    let message: String
}

/// The one serial snapshot writer (spec §5.4, §6.3, §6.6): coalesces `sigusr1`/`interval`/`api` requests, skips or
/// reuses unchanged state, and writes on its own queue, off the probe-serving path.
actor SnapshotCoordinator {
    private let writer: any SnapshotWriting
    private let capture: @Sendable () async throws -> JSONObject
    private let metrics: Metrics
    private let logger = Logger(label: "doryd.snapshot")
    private let ioQueue = DispatchQueue(label: "doryd.snapshot.io", qos: .userInitiated)

    /// Hash of the newest durable generation, and whether this boot wrote it through the full protocol.
    private var newest: (generation: UInt64, hash: [UInt8], ownWrite: Bool)?
    private var tail: Task<Void, Never>?
    private var queued: (id: UInt64, task: Task<SnapshotOutcome, Never>)?
    private var nextID: UInt64 = 0
    private var dropCoalescable = false
    /// When the last snapshot attempt ended: the interval timer restarts from it (§6.6).
    private(set) var lastCompletedAt = ContinuousClock.now

    /// Told the generation whenever a *captured* state (not a given one) is durable, written or reused.
    private let onCapturedDurable: (@Sendable (UInt64) -> Void)?

    init(
        writer: any SnapshotWriting, metrics: Metrics, onCapturedDurable: (@Sendable (UInt64) -> Void)? = nil,
        capture: @escaping @Sendable () async throws -> JSONObject
    ) {
        self.writer = writer
        self.metrics = metrics
        self.onCapturedDurable = onCapturedDurable
        self.capture = capture
    }

    /// Records the generation found at boot (restored or newest valid): unchanged state reuses nothing of it.
    func noteExisting(generation: UInt64, state: JSONObject) {
        newest = (generation, Self.hash(state), false)
    }

    var newestGeneration: UInt64? { newest?.generation }

    /// The shutdown sequence supersedes pending `sigusr1`/`interval`/`api` requests.
    func dropPendingCoalescable() { dropCoalescable = true }

    /// Requests a snapshot. `state`: a transferred state to persist instead of a capture (`transfer`).
    /// `captureTimeoutSec` bounds the capture; the write itself is not abandoned once started.
    func request(_ reason: SnapshotReason, state: JSONObject? = nil, captureTimeoutSec: Double) async -> SnapshotOutcome {
        // Only captures coalesce: a request that brings its own state (a child's PUT, a tag commit) is written as it is.
        let coalesces = reason.coalesces && state == nil
        if coalesces, let queued { return await queued.task.value }
        let previous = tail
        nextID += 1
        let id = nextID
        let task = Task { () -> SnapshotOutcome in
            await previous?.value
            self.started(id)
            if coalesces, self.dropCoalescable {
                self.metrics.snapshotAttempt(reason: reason.rawValue, result: "skipped", durationSec: nil)
                self.lastCompletedAt = ContinuousClock.now
                return .skipped(generation: self.newestGeneration)
            }
            let outcome = await self.perform(reason, state: state, captureTimeoutSec: captureTimeoutSec)
            self.lastCompletedAt = ContinuousClock.now
            return outcome
        }
        if coalesces { queued = (id, task) }
        tail = Task { _ = await task.value }
        return await task.value
    }

    /// fsyncs the newest generation (for `/prestop` before the processor is state-bound).
    func confirmNewest() async -> SnapshotOutcome {
        guard let generation = newest?.generation else { return .skipped(generation: nil) }
        let writer = self.writer
        return await withCheckedContinuation { continuation in
            ioQueue.async {
                do throws(SnapshotWriteFailure) {
                    try writer.confirmSnapshot(generation: generation)
                    continuation.resume(returning: .saved(generation: generation, reused: true, rawBytes: 0, compressedBytes: 0, durationMs: 0))
                } catch {
                    continuation.resume(returning: .failed(step: error.step, message: error.message))
                }
            }
        }
    }

    private func started(_ id: UInt64) {
        if queued?.id == id { queued = nil }
    }

    private func perform(_ reason: SnapshotReason, state given: JSONObject?, captureTimeoutSec: Double) async -> SnapshotOutcome {
        let start = ContinuousClock.now
        let state: JSONObject
        if let given {
            state = given
        } else {
            switch await Deadline.run(seconds: captureTimeoutSec, capture) {
            case .value(let captured): state = captured
            case .failure(let error):
                return fail(reason, step: "capture", message: "\(error)", start: start)
            case .timedOut:
                metrics.snapshotAttempt(reason: reason.rawValue, result: "error", durationSec: Self.seconds(since: start))
                logger.error("snapshot capture timed out", metadata: ["event": "snapshot.failed", "reason": .string(reason.rawValue)])
                return .timedOut
            }
        }
        // Encode and hash once; the write reuses these bytes.
        let encoded: [UInt8]
        do throws(JSONEncodeError) {
            encoded = try JSON.encode(.object(state), sortedKeys: true)
        } catch {
            return fail(reason, step: "encode", message: error.message, start: start)
        }
        let hash = SHA256.hash(encoded)
        if reason != .transfer, let newest, newest.hash == hash {
            if reason.skipsUnchanged || reason == .startup {
                metrics.snapshotAttempt(reason: reason.rawValue, result: "skipped", durationSec: nil)
                return .skipped(generation: newest.generation)
            }
            if newest.ownWrite {
                if given == nil { onCapturedDurable?(newest.generation) }
                metrics.snapshotAttempt(reason: reason.rawValue, result: "ok", durationSec: Self.seconds(since: start))
                return .saved(generation: newest.generation, reused: true, rawBytes: 0, compressedBytes: 0, durationMs: Self.ms(since: start))
            }
        }
        let writer = self.writer
        let savedAt = WallClock.nowMillis()
        let result: Result<WrittenSnapshot, SnapshotWriteFailure> = await withCheckedContinuation { continuation in
            ioQueue.async {
                do throws(SnapshotWriteFailure) {
                    continuation.resume(returning: .success(try writer.writeSnapshot(state: state, encodedState: encoded, reason: reason.rawValue, savedAtMillis: savedAt)))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        switch result {
        case .failure(let failure):
            return fail(reason, step: failure.step, message: failure.message, start: start)
        case .success(let written):
            let durationMs = Self.ms(since: start)
            newest = (written.generation, hash, true)
            if given == nil { onCapturedDurable?(written.generation) }
            metrics.snapshotAttempt(reason: reason.rawValue, result: "ok", durationSec: Self.seconds(since: start))
            metrics.snapshotDurable(generation: written.generation, rawBytes: written.rawBytes, compressedBytes: written.compressedBytes, savedAtMillis: savedAt)
            logger.info("snapshot saved", metadata: [
                "event": "snapshot.saved", "generation": .stringConvertible(written.generation), "reason": .string(reason.rawValue),
                "raw_bytes": .stringConvertible(written.rawBytes), "compressed_bytes": .stringConvertible(written.compressedBytes), "duration_ms": .stringConvertible(durationMs),
            ])
            return .saved(generation: written.generation, reused: false, rawBytes: written.rawBytes, compressedBytes: written.compressedBytes, durationMs: durationMs)
        }
    }

    private func fail(_ reason: SnapshotReason, step: String, message: String, start: ContinuousClock.Instant) -> SnapshotOutcome {
        metrics.snapshotAttempt(reason: reason.rawValue, result: "error", durationSec: Self.seconds(since: start))
        logger.error("snapshot failed", metadata: [
            "event": "snapshot.failed", "reason": .string(reason.rawValue), "step": .string(step),
            "error": .errorValue(type: step == "capture" ? "capture_failed" : "save_failed", message: message),
        ])
        return .failed(step: step, message: "\(step): \(message)")
    }

    static func hash(_ state: JSONObject) -> [UInt8] {
        (try? SHA256.hash(JSON.encode(.object(state), sortedKeys: true))) ?? []
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    static func ms(since start: ContinuousClock.Instant) -> Int { Int(seconds(since: start) * 1000) }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
@preconcurrency import Dispatch
import DoryState
import Synchronization

/// Where a queued event came from (`src`).
public enum EventSourceKind: String, Sendable, Equatable {
    case http
    case schedule
}

/// An event handed to the queue: the processor event (token already removed) and its ids.
public struct NewQueuedEvent: Sendable, Equatable {
    public var invocationId: String
    public var source: EventSourceKind
    public var requestId: String?
    public var subscriptionId: String?
    public var event: JSONObject

    public init(invocationId: String = UUIDv7.make(), source: EventSourceKind, requestId: String? = nil,
                subscriptionId: String? = nil, event: JSONObject)
    {
        self.invocationId = invocationId
        self.source = source
        self.requestId = requestId
        self.subscriptionId = subscriptionId
        self.event = event
    }
}

/// A pending event (an `enq` without `done`).
public struct QueuedEvent: Sendable, Equatable {
    public var invocationId: String
    /// `at` of the `enq` record (wall ms).
    public var enqueuedAt: Int64
    public var source: EventSourceKind
    public var requestId: String?
    public var subscriptionId: String?
    public var event: JSONObject
    /// Number of durable `start` records: the attempts so far. Greater than 0 at its turn → a replay (§2.4).
    public var attempts: Int
}

/// The answer to an enqueue (§2.2 rows 10 and after).
public enum EnqueueResult: Sendable, Equatable {
    /// Durable: the `enq` records' round was fsynced. Ids in the order given.
    case accepted([String])
    /// 429 `queue_full`: pending + new would exceed `event_queue_max`; nothing queued.
    case queueFull
    /// 503 `queue_write_failed`: the round failed and was cut back; nothing queued. Carries the errno text.
    case writeFailed(String)
    /// 503 `queue_unavailable`: the queue stopped after a failed truncation.
    case unavailable
}

/// What opening the queue found (for the WARNING lines of §2.4).
public struct QueueRecovery: Sendable, Equatable {
    /// The byte offset where a torn or corrupt tail was cut off; nil when the file was whole.
    public var truncatedAt: Int64?
    /// Pending events rebuilt.
    public var pending: Int
    /// Events among them whose `start` was durable (replays).
    public var replays: Int
    /// A compaction failure at open (the old file stays in use).
    public var compactionError: String?
}

/// A queue failure at open.
public struct EventQueueError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// The durable event queue (§2.4): `<dir>/queue.log`, one `crc32hex SP json LF` record per line, group-committed by
/// one writer (a serial dispatch queue): each round writes everything waiting with one `write` and one `fsync`, then
/// releases its producers. `enq` is acknowledged and `start` returns only after their round's `fsync`; `done` rides
/// the next round, or a round started by a 10 ms timer when the worker is idle.
public final class EventQueue: Sendable {
    public static let fileName = "queue.log"
    /// Compaction threshold (§2.4): the file exceeds this size and more than half its `enq` records are done.
    public static let compactionBytes: Int64 = 8 << 20

    private enum Kind { case enq, start, done }

    private struct Submission {
        var kind: Kind
        var bytes: [UInt8]
        /// The ids of the `enq` records in this submission (for the pending list).
        var entries: [Entry]
        var completion: (@Sendable (Outcome) -> Void)?
    }

    enum Outcome: Sendable { case durable, failed(String), stopped }

    struct Entry: Sendable {
        var event: QueuedEvent
        var enqLine: [UInt8]
        var claimed = false
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var order: [String] = []
        var head = 0
        /// `enq` records in flight (not yet durable): counted against the bound.
        var reserved = 0
        var waiting: [Submission] = []
        var roundScheduled = false
        var timerScheduled = false
        var stopped = false
        var closed = false
        var enqInFile = 0
        var doneInFile = 0
        var fileBytes: Int64 = 0
        var workerWaiter: CheckedContinuation<Void, Never>?
    }

    public let path: String
    public let directory: String
    public let maxPending: Int
    private let fileSystem: any FileSystem
    private let metrics: EventMetrics?
    private let clock: @Sendable () -> Int64
    private let writer = DispatchQueue(label: "doryd.events.queue")
    private let state = Mutex(State())
    /// Owned by the writer queue.
    private let descriptor = Mutex<OpenFile?>(nil)
    private let warnings: @Sendable (String) -> Void
    private let recoveryState: Mutex<QueueRecovery>
    /// What the open found.
    public var recovery: QueueRecovery { recoveryState.withLock { $0 } }

    /// Opens (creating) `<directory>/queue.log`: recovery, then compaction (§2.4).
    public init(directory: String, maxPending: Int = 10_000, fileSystem: any FileSystem = SystemFileSystem(),
                metrics: EventMetrics? = nil, clock: @escaping @Sendable () -> Int64 = { WallClock.nowMillis() },
                warnings: @escaping @Sendable (String) -> Void = { _ in }) throws(EventQueueError)
    {
        self.directory = directory
        self.path = directory + "/" + EventQueue.fileName
        self.maxPending = maxPending
        self.fileSystem = fileSystem
        self.metrics = metrics
        self.clock = clock
        self.warnings = warnings
        var recovery = QueueRecovery(truncatedAt: nil, pending: 0, replays: 0, compactionError: nil)
        var s = State()
        do throws(FileSystemError) {
            if try fileSystem.status(path) != nil {
                let bytes = try fileSystem.readWholeFile(path, maxBytes: Int.max - 1)
                let (valid, entries, order, enqCount, doneCount) = EventQueue.replay(bytes)
                if valid < bytes.count {
                    recovery.truncatedAt = Int64(valid)
                    let f = try fileSystem.open(path, flags: O_WRONLY, mode: 0)
                    defer { try? fileSystem.close(f) }
                    try fileSystem.ftruncate(f, length: Int64(valid))
                    try fileSystem.fsync(f)
                    metrics?.queueFsyncs.add(1, ordering: .relaxed)
                    warnings("event queue truncated at byte \(valid)")
                }
                s.entries = entries
                s.order = order
                s.enqInFile = enqCount
                s.doneInFile = doneCount
                s.fileBytes = Int64(valid)
            }
        } catch {
            throw EventQueueError(message: "event queue \(path): \(error)")
        }
        recovery.pending = s.entries.count
        recovery.replays = s.entries.values.filter { $0.event.attempts > 0 }.count
        state.withLock { $0 = s }
        recoveryState = Mutex(recovery)
        if let error = compact() {
            recoveryState.withLock { $0.compactionError = error }
            warnings("event queue compaction failed: \(error)")
        }
        do throws(FileSystemError) {
            let fd = try fileSystem.open(path, flags: O_WRONLY | O_APPEND | O_CREAT, mode: 0o600)
            descriptor.withLock { $0 = fd }
            let size = try fileSystem.fstat(fd).size
            state.withLock { $0.fileBytes = size }
        } catch {
            throw EventQueueError(message: "event queue \(path): \(error)")
        }
    }

    deinit {
        if let fd = descriptor.withLock({ $0 }) { try? fileSystem.close(fd) }
    }

    // MARK: Records

    static func line(_ record: JSONValue) -> [UInt8] {
        let json = (try? JSON.encode(record)) ?? []
        let crc = CRC32.checksum(json)
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(json.count + 10)
        for shift in stride(from: 28, through: 0, by: -4) { out.append(hex[Int((crc >> UInt32(shift)) & 15)]) }
        out.append(0x20)
        out.append(contentsOf: json)
        out.append(0x0A)
        return out
    }

    /// Reads records in order until the first incomplete, corrupt or unknown line. Returns the valid length and the
    /// pending entries.
    static func replay(_ bytes: [UInt8]) -> (Int, [String: Entry], [String], Int, Int) {
        var entries: [String: Entry] = [:]
        var order: [String] = []
        var enqCount = 0
        var doneCount = 0
        var offset = 0
        while offset < bytes.count {
            guard let nl = bytes[offset...].firstIndex(of: 0x0A) else { break }
            let lineBytes = bytes[offset..<nl]
            guard lineBytes.count > 9, lineBytes[offset + 8] == 0x20,
                  let crc = UInt32(String(decoding: lineBytes.prefix(8), as: UTF8.self), radix: 16),
                  String(decoding: lineBytes.prefix(8), as: UTF8.self).utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) })
            else { break }
            let json = Array(lineBytes[(offset + 9)...])
            guard CRC32.checksum(json) == crc, case .object(let r)? = try? JSON.parse(json),
                  case .string(let kind)? = r["k"], case .string(let id)? = r["id"]
            else { break }
            switch kind {
            case "enq":
                guard case .object(let ev)? = r["ev"], case .int(let at)? = r["at"],
                      case .string(let src)? = r["src"], let source = EventSourceKind(rawValue: src)
                else { return (offset, entries, order, enqCount, doneCount) }
                var req: String?
                if case .string(let s)? = r["req"] { req = s }
                var sub: String?
                if case .string(let s)? = r["sub"] { sub = s }
                enqCount += 1
                if entries[id] == nil { order.append(id) }
                entries[id] = Entry(event: QueuedEvent(invocationId: id, enqueuedAt: at, source: source, requestId: req,
                                                       subscriptionId: sub, event: ev, attempts: 0),
                                    enqLine: Array(bytes[offset...nl]))
            case "start":
                entries[id]?.event.attempts += 1
            case "done":
                if entries.removeValue(forKey: id) != nil { doneCount += 1 }
            default:
                return (offset, entries, order, enqCount, doneCount)
            }
            offset = nl + 1
        }
        order = order.filter { entries[$0] != nil }
        return (offset, entries, order, enqCount, doneCount)
    }

    private func startLine(_ id: String) -> [UInt8] {
        EventQueue.line(.object(["k": "start", "id": .string(id), "at": .int(clock())]))
    }

    // MARK: Producers

    /// Appends `enq` records for `events` (all or none) and returns once they are durable (§2.2).
    public func enqueue(_ events: [NewQueuedEvent]) async -> EnqueueResult {
        guard !events.isEmpty else { return .accepted([]) }
        let now = clock()
        var bytes: [UInt8] = []
        var entries: [Entry] = []
        for e in events {
            let record: JSONValue = .object([
                "k": "enq", "id": .string(e.invocationId), "at": .int(now), "src": .string(e.source.rawValue),
                "req": e.requestId.map(JSONValue.string) ?? .null, "sub": e.subscriptionId.map(JSONValue.string) ?? .null,
                "ev": .object(Envelope.removingToken(e.event)),
            ])
            let line = EventQueue.line(record)
            bytes.append(contentsOf: line)
            entries.append(Entry(event: QueuedEvent(invocationId: e.invocationId, enqueuedAt: now, source: e.source,
                                                    requestId: e.requestId, subscriptionId: e.subscriptionId,
                                                    event: Envelope.removingToken(e.event), attempts: 0),
                                 enqLine: line))
        }
        let admitted = state.withLock { s -> EnqueueResult? in
            if s.stopped { return .unavailable }
            if s.entries.count + s.reserved + events.count > maxPending { return .queueFull }
            s.reserved += events.count
            return nil
        }
        if let admitted { return admitted }
        let outcome = await submit(Submission(kind: .enq, bytes: bytes, entries: entries, completion: nil))
        switch outcome {
        case .durable: return .accepted(events.map(\.invocationId))
        case .failed(let text): return .writeFailed(text)
        case .stopped: return .unavailable
        }
    }

    /// Writes the `start` record and returns true once it is durable; false when the queue stopped. A failed round
    /// writes it again in the next one.
    public func markStarted(_ invocationId: String) async -> Bool {
        while true {
            switch await submit(Submission(kind: .start, bytes: startLine(invocationId), entries: [], completion: nil)) {
            case .durable:
                state.withLock { $0.entries[invocationId]?.event.attempts += 1 }
                return true
            case .stopped: return false
            case .failed: continue
            }
        }
    }

    /// Hands over the `done` record: the event leaves the pending list now; the record rides the next round.
    public func markDone(_ invocationId: String, status: InvocationStatus) {
        let line = EventQueue.line(.object(["k": "done", "id": .string(invocationId), "at": .int(clock()),
                                            "status": .string(status.rawValue)]))
        let scheduleTimer = state.withLock { s -> Bool in
            s.entries.removeValue(forKey: invocationId)
            while s.head < s.order.count, s.entries[s.order[s.head]] == nil { s.head += 1 }
            if s.head > 1024, s.head * 2 > s.order.count {
                s.order.removeFirst(s.head)
                s.head = 0
            }
            s.waiting.append(Submission(kind: .done, bytes: line, entries: [], completion: nil))
            if s.roundScheduled || s.timerScheduled { return false }
            s.timerScheduled = true
            return true
        }
        if scheduleTimer {
            writer.asyncAfter(deadline: .now() + .milliseconds(10)) { [self] in
                let run = state.withLock { s -> Bool in
                    s.timerScheduled = false
                    if s.roundScheduled || s.waiting.isEmpty { return false }
                    s.roundScheduled = true
                    return true
                }
                if run { round() }
            }
        }
    }

    /// Writes whatever is waiting (e.g. a last `done`) in one final round; call before the final save.
    public func flush() async {
        let empty = state.withLock { $0.waiting.isEmpty && !$0.roundScheduled }
        if empty { return }
        _ = await submit(Submission(kind: .done, bytes: [], entries: [], completion: nil))
    }

    private func submit(_ submission: Submission) async -> Outcome {
        await withCheckedContinuation { (c: CheckedContinuation<Outcome, Never>) in
            var sub = submission
            sub.completion = { c.resume(returning: $0) }
            let (start, stopped) = state.withLock { s -> (Bool, Bool) in
                if s.stopped { return (false, true) }
                s.waiting.append(sub)
                if s.roundScheduled { return (false, false) }
                s.roundScheduled = true
                return (true, false)
            }
            if stopped {
                if sub.kind == .enq { state.withLock { $0.reserved -= sub.entries.count } }
                c.resume(returning: .stopped)
            } else if start {
                writer.async { [self] in round() }
            }
        }
    }

    // MARK: The writer

    /// One round (on the writer queue): take everything waiting, one write, one fsync, release the producers.
    private func round() {
        let batch = state.withLock { s -> [Submission] in
            let b = s.waiting
            s.waiting = []
            return b
        }
        var bytes: [UInt8] = []
        for sub in batch { bytes.append(contentsOf: sub.bytes) }
        var failure: FileSystemError?
        if !bytes.isEmpty, let fd = descriptor.withLock({ $0 }) {
            do throws(FileSystemError) {
                try fileSystem.writeAll(fd, bytes)
                metrics?.queueFsyncs.add(1, ordering: .relaxed)
                try fileSystem.fsync(fd)
            } catch {
                failure = error
            }
        } else if !bytes.isEmpty {
            failure = FileSystemError(operation: "write", path: path, errno: EBADF)
        }
        if let failure {
            handleFailure(batch: batch, error: failure)
            return
        }
        var enqAdded = 0
        var doneAdded = 0
        let wake = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.fileBytes += Int64(bytes.count)
            for sub in batch {
                switch sub.kind {
                case .enq:
                    s.reserved -= sub.entries.count
                    for e in sub.entries {
                        s.entries[e.event.invocationId] = e
                        s.order.append(e.event.invocationId)
                    }
                    enqAdded += sub.entries.count
                case .done:
                    if !sub.bytes.isEmpty { doneAdded += 1 }
                case .start: break
                }
            }
            s.enqInFile += enqAdded
            s.doneInFile += doneAdded
            let w = enqAdded > 0 ? s.workerWaiter : nil
            if w != nil { s.workerWaiter = nil }
            return w
        }
        for sub in batch { sub.completion?(.durable) }
        wake?.resume()
        if let error = compactIfNeeded() { warnings("event queue compaction failed: \(error)") }
        continueOrIdle()
    }

    private func continueOrIdle() {
        let again = state.withLock { s -> Bool in
            if s.waiting.contains(where: { $0.completion != nil }) { return true }
            if s.waiting.isEmpty {
                s.roundScheduled = false
                return false
            }
            // Only `done` records wait: leave them to the timer or the next round.
            s.roundScheduled = false
            if !s.timerScheduled {
                s.timerScheduled = true
                writer.asyncAfter(deadline: .now() + .milliseconds(10)) { [self] in
                    let run = state.withLock { s -> Bool in
                        s.timerScheduled = false
                        if s.roundScheduled || s.waiting.isEmpty { return false }
                        s.roundScheduled = true
                        return true
                    }
                    if run { round() }
                }
            }
            return false
        }
        if again { writer.async { [self] in round() } }
    }

    /// A failed round: cut the file back to its durable length, fsync, reopen; refuse the round's `enq`s, retry its
    /// `start`/`done` records. If that fails too, the queue stops.
    private func handleFailure(batch: [Submission], error: FileSystemError) {
        warnings("queue write failed: \(error.errnoText)")
        let durable = state.withLock { $0.fileBytes }
        var recovered = false
        if let fd = descriptor.withLock({ $0 }) {
            do throws(FileSystemError) {
                try fileSystem.ftruncate(fd, length: durable)
                metrics?.queueFsyncs.add(1, ordering: .relaxed)
                try fileSystem.fsync(fd)
                try? fileSystem.close(fd)
                let fresh = try fileSystem.open(path, flags: O_WRONLY | O_APPEND | O_CREAT, mode: 0o600)
                descriptor.withLock { $0 = fresh }
                recovered = true
            } catch {
                descriptor.withLock { $0 = nil }
            }
        }
        if !recovered {
            warnings("event queue stopped")
            let (all, waiter) = state.withLock { s -> ([Submission], CheckedContinuation<Void, Never>?) in
                s.stopped = true
                s.roundScheduled = false
                let w = s.waiting
                s.waiting = []
                s.reserved = 0
                let waiter = s.workerWaiter
                s.workerWaiter = nil
                return (w, waiter)
            }
            for sub in batch + all { sub.completion?(.stopped) }
            waiter?.resume()
            return
        }
        let text = error.errnoText
        var retry: [Submission] = []
        for sub in batch {
            switch sub.kind {
            case .enq:
                state.withLock { $0.reserved -= sub.entries.count }
                sub.completion?(.failed(text))
            case .start:
                // The producer retries it (markStarted loops); do not write it twice.
                sub.completion?(.failed(text))
            case .done:
                retry.append(sub)
            }
        }
        state.withLock { s in s.waiting.insert(contentsOf: retry, at: 0) }
        continueOrIdle()
    }

    // MARK: Compaction

    private func compactIfNeeded() -> String? {
        let needed = state.withLock { s in
            s.fileBytes > EventQueue.compactionBytes && s.doneInFile * 2 > s.enqInFile
        }
        return needed ? compact() : nil
    }

    /// Rewrites the pending `enq` and `start` records to a temporary file, fsyncs, renames it over the log and
    /// fsyncs the directory. On failure the old file stays in use. Runs at open and on the writer queue.
    private func compact() -> String? {
        let (bytes, count) = state.withLock { s -> ([UInt8], Int) in
            var out: [UInt8] = []
            var n = 0
            for id in s.order[s.head...] {
                guard let e = s.entries[id] else { continue }
                out.append(contentsOf: e.enqLine)
                for _ in 0..<e.event.attempts { out.append(contentsOf: startLine(id)) }
                n += 1
            }
            return (out, n)
        }
        do throws(AtomicFile.Failure) {
            try AtomicFile.write(bytes, to: path, fileSystem: fileSystem)
        } catch {
            return "\(error.step): \(error.error)"
        }
        metrics?.queueFsyncs.add(1, ordering: .relaxed)
        if let fd = descriptor.withLock({ $0 }) {
            try? fileSystem.close(fd)
            descriptor.withLock { $0 = try? fileSystem.open(path, flags: O_WRONLY | O_APPEND | O_CREAT, mode: 0o600) }
        }
        state.withLock { s in
            s.fileBytes = Int64(bytes.count)
            s.enqInFile = count
            s.doneInFile = 0
            s.order = Array(s.order[s.head...]).filter { s.entries[$0] != nil }
            s.head = 0
        }
        return nil
    }

    // MARK: The worker's view

    /// Pending events (queued and running).
    public var pendingCount: Int { state.withLock { $0.entries.count } }

    /// The `enq` time of the oldest pending event.
    public var oldestEnqueuedAt: Int64? {
        state.withLock { s in
            for id in s.order[s.head...] { if let e = s.entries[id] { return e.event.enqueuedAt } }
            return nil
        }
    }

    /// Whether the queue stopped after a failed truncation (`custom:event_queue` fails).
    public var isStopped: Bool { state.withLock { $0.stopped } }

    /// Every pending event in queue order (tests, `/state` views).
    public var pending: [QueuedEvent] {
        state.withLock { s in s.order[s.head...].compactMap { s.entries[$0]?.event } }
    }

    /// Whether an earlier fire of this schedule is still queued and not started (coalescing, §2.5).
    public func hasUnstartedFire(scheduleId: String) -> Bool {
        state.withLock { s in
            s.entries.values.contains { e in
                !e.claimed && e.event.source == .schedule && e.event.attempts == 0
                    && e.event.event["d"]?.objectValue?["schedule_id"] == .string(scheduleId)
            }
        }
    }

    /// The next event for the worker, in queue order; waits until one is durable. Nil when the queue stopped or
    /// closed. The worker then: replay checks (`attempts > 0`), ``markStarted(_:)``, `runApp`, ``markDone(_:status:)``.
    public func next() async -> QueuedEvent? {
        while true {
            let found = state.withLock { s -> QueuedEvent?? in
                if s.stopped || s.closed { return .some(nil) }
                var i = s.head
                while i < s.order.count {
                    let id = s.order[i]
                    if var e = s.entries[id], !e.claimed {
                        e.claimed = true
                        s.entries[id] = e
                        return .some(e.event)
                    }
                    i += 1
                }
                return nil
            }
            if let found { return found }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { s -> Bool in
                    if s.stopped || s.closed || s.order[s.head...].contains(where: { s.entries[$0]?.claimed == false }) {
                        return true
                    }
                    s.workerWaiter = c
                    return false
                }
                if ready { c.resume() }
            }
        }
    }

    /// Releases a claimed event without marking it done (an abandoned invocation: it runs again next start).
    public func release(_ invocationId: String) {
        state.withLock { $0.entries[invocationId]?.claimed = false }
    }

    /// Wakes a waiting ``next()`` with nil; later calls return nil.
    public func close() {
        let w = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.closed = true
            let w = s.workerWaiter
            s.workerWaiter = nil
            return w
        }
        w?.resume()
    }
}

extension JSONValue {
    var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }
}

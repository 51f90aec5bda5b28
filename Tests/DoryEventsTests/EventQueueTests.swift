#if canImport(Glibc)
import Glibc
#endif
import DoryState
import Synchronization
import Testing
@testable import DoryEvents

private func event(_ n: Int) -> NewQueuedEvent {
    NewQueuedEvent(source: .http, event: ["op": "on_manual_invoke", "token": "secret-xyz",
                                          "d": ["organisation_id": 2, "payload": .int(Int64(n))]])
}

private func fileBytes(_ path: String) throws -> [UInt8] {
    try SystemFileSystem().readWholeFile(path, maxBytes: 1 << 30)
}

private func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    let fs = SystemFileSystem()
    let f = try fs.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
    try fs.writeAll(f, bytes)
    try fs.close(f)
}

@Suite struct EventQueueTests {
    @Test func acknowledgedEventsSurviveReopenWithTheirIdsAndAttempts() async throws {  // C22, C23
        let dir = try TemporaryDirectory()
        let q = try EventQueue(directory: dir.path)
        guard case .accepted(let ids) = await q.enqueue([event(1), event(2), event(3)]) else {
            Issue.record("not accepted")
            return
        }
        let first = await q.next()
        #expect(first?.invocationId == ids[0])
        #expect(await q.markStarted(ids[0]))
        q.markDone(ids[0], status: .success)
        let second = await q.next()
        #expect(second?.invocationId == ids[1] && second?.attempts == 0)
        #expect(await q.markStarted(ids[1]))
        await q.flush()
        // "SIGKILL": drop the queue without any further write and reopen the file.
        let reopened = try EventQueue(directory: dir.path)
        #expect(reopened.pending.map(\.invocationId) == [ids[1], ids[2]])
        #expect(reopened.pending.map(\.attempts) == [1, 0])
        #expect(reopened.recovery.replays == 1)
        #expect(reopened.pending[0].event["d"]?["payload"] == 2)
        // The token is never queued (C20).
        let text = String(decoding: try fileBytes(dir.path + "/queue.log"), as: UTF8.self)
        #expect(!text.contains("secret-xyz"))
        #expect(reopened.pending[0].event["token"] == nil)
    }

    @Test func doneRidesATimerRoundWhenIdle() async throws {
        let dir = try TemporaryDirectory()
        let metrics = EventMetrics()
        let q = try EventQueue(directory: dir.path, metrics: metrics)
        guard case .accepted(let ids) = await q.enqueue([event(1)]) else { Issue.record("refused"); return }
        _ = await q.next()
        #expect(await q.markStarted(ids[0]))
        q.markDone(ids[0], status: .error)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if String(decoding: try fileBytes(dir.path + "/queue.log"), as: UTF8.self).contains(#""k":"done""#) { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(try EventQueue(directory: dir.path).pending.isEmpty)
    }

    @Test func concurrentAppendsShareRounds() async throws {  // C26
        let dir = try TemporaryDirectory()
        let metrics = EventMetrics()
        let q = try EventQueue(directory: dir.path, metrics: metrics)
        let before = metrics.queueFsyncs.load(ordering: .relaxed)
        let accepted = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<300 { group.addTask { if case .accepted = await q.enqueue([event(i)]) { true } else { false } } }
            var n = 0
            for await ok in group where ok { n += 1 }
            return n
        }
        #expect(accepted == 300)
        let rounds = metrics.queueFsyncs.load(ordering: .relaxed) - before
        #expect(rounds < 300)
        #expect(q.pendingCount == 300)
        #expect(try EventQueue(directory: dir.path).pendingCount == 300)
    }

    @Test func boundedQueue() async throws {  // C15
        let dir = try TemporaryDirectory()
        let q = try EventQueue(directory: dir.path, maxPending: 3)
        #expect(await q.enqueue([event(1), event(2)]) != .queueFull)
        #expect(await q.enqueue([event(3), event(4)]) == .queueFull)
        #expect(q.pendingCount == 2)
        if case .accepted = await q.enqueue([event(3)]) {} else { Issue.record("one free slot refused") }
        #expect(await q.enqueue([event(5)]) == .queueFull)
    }

    @Test func tornAndCorruptTailsAreCutAtRandomOffsets() async throws {  // C25
        let dir = try TemporaryDirectory()
        let q = try EventQueue(directory: dir.path)
        var ids: [String] = []
        for i in 0..<20 {
            if case .accepted(let got) = await q.enqueue([event(i)]) { ids += got }
        }
        for id in ids.prefix(5) {
            _ = await q.next()
            _ = await q.markStarted(id)
            q.markDone(id, status: .success)
        }
        await q.flush()
        let full = try fileBytes(dir.path + "/queue.log")
        var rng = SeededGenerator(seed: 0x5eed)
        for _ in 0..<40 {
            let cut = Int.random(in: 0...full.count, using: &rng)
            var bytes = Array(full[0..<cut])
            let corrupt = Bool.random(using: &rng) && cut > 20
            if corrupt { bytes[cut - 5] ^= 0x01 }
            let d2 = try TemporaryDirectory()
            try writeFile(d2.path + "/queue.log", bytes)
            // Expected: the records of the whole, intact lines before the first bad one.
            let (valid, entries, _, _, _) = EventQueue.replay(bytes)
            let reopened = try EventQueue(directory: d2.path)
            #expect(Set(reopened.pending.map(\.invocationId)) == Set(entries.keys))
            let lastNewline = bytes.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
            if !corrupt { #expect(valid == lastNewline) } else { #expect(valid <= lastNewline) }
            if valid < bytes.count { #expect(reopened.recovery.truncatedAt == Int64(valid)) }
            // Order is kept: pending ids are a subsequence of the enqueue order.
            let order = reopened.pending.map(\.invocationId)
            #expect(order == ids.filter { Set(order).contains($0) })
            // Nothing done in the cut file is pending again, nothing acknowledged before the cut is lost.
            #expect(order.allSatisfy { ids.contains($0) })
        }
    }

    @Test func oneFailedFsyncRoundIsCutBackAndRefused() async throws {  // C134
        let dir = try TemporaryDirectory()
        let failures = Atomic<Int>(0)
        let fs = FaultInjectingFileSystem(base: SystemFileSystem()) { op, path in
            op == .fsync && path.hasSuffix("queue.log") && failures.load(ordering: .relaxed) == 1
                && failures.compareExchange(expected: 1, desired: 2, ordering: .relaxed).exchanged
        }
        let q = try EventQueue(directory: dir.path, fileSystem: fs)
        guard case .accepted = await q.enqueue([event(1)]) else { Issue.record("refused"); return }
        let durable = try fileBytes(dir.path + "/queue.log").count
        failures.store(1, ordering: .relaxed)
        let failed = await q.enqueue([event(2)])
        guard case .writeFailed(let text) = failed else { Issue.record("expected writeFailed, got \(failed)"); return }
        #expect(text == "Input/output error")
        #expect(try fileBytes(dir.path + "/queue.log").count == durable)
        #expect(q.pendingCount == 1)
        guard case .accepted = await q.enqueue([event(3)]) else { Issue.record("refused after recovery"); return }
        let payloads = try EventQueue(directory: dir.path).pending.map { $0.event["d"]?["payload"] }
        #expect(payloads == [1, 3])
    }

    @Test func everyFsyncFailingStopsTheQueue() async throws {  // C135
        let dir = try TemporaryDirectory()
        let broken = Atomic<Bool>(false)
        let fs = FaultInjectingFileSystem(base: SystemFileSystem()) { op, path in
            op == .fsync && path.hasSuffix("queue.log") && broken.load(ordering: .relaxed)
        }
        let q = try EventQueue(directory: dir.path, fileSystem: fs)
        guard case .accepted = await q.enqueue([event(1)]) else { Issue.record("refused"); return }
        broken.store(true, ordering: .relaxed)
        #expect(await q.enqueue([event(2)]) == .unavailable)
        #expect(q.isStopped)
        #expect(await q.enqueue([event(3)]) == .unavailable)
        #expect(await q.next() == nil)
        #expect(try EventQueue(directory: dir.path).pending.map { $0.event["d"]?["payload"] } == [1])
    }

    @Test func compactionAtOpenKeepsPendingAndAttempts() async throws {
        let dir = try TemporaryDirectory()
        let q = try EventQueue(directory: dir.path)
        var ids: [String] = []
        for i in 0..<50 { if case .accepted(let got) = await q.enqueue([event(i)]) { ids += got } }
        for id in ids.prefix(49) {
            _ = await q.next()
            _ = await q.markStarted(id)
            q.markDone(id, status: .success)
        }
        _ = await q.next()
        _ = await q.markStarted(ids[49])
        await q.flush()
        let before = try fileBytes(dir.path + "/queue.log").count
        let reopened = try EventQueue(directory: dir.path)
        let after = try fileBytes(dir.path + "/queue.log").count
        #expect(after < before / 10)
        #expect(reopened.pending.map(\.invocationId) == [ids[49]])
        #expect(reopened.pending.first?.attempts == 1)
    }

    @Test func workerWaitsForTheNextEvent() async throws {
        let dir = try TemporaryDirectory()
        let q = try EventQueue(directory: dir.path)
        let waiter = Task { await q.next() }
        try await Task.sleep(for: .milliseconds(20))
        guard case .accepted(let ids) = await q.enqueue([event(7)]) else { Issue.record("refused"); return }
        #expect(await waiter.value?.invocationId == ids[0])
        let closed = Task { await q.next() }
        q.close()
        #expect(await closed.value == nil)
    }

    @Test func lineFormat() {
        let line = EventQueue.line(["k": "start", "id": "x", "at": 1])
        let text = String(decoding: line, as: UTF8.self)
        #expect(text.hasSuffix("\n"))
        let json = Array(line[9..<(line.count - 1)])
        let crc = CRC32.checksum(json)
        #expect(String(text.prefix(8)) == String(crc, radix: 16).leftPadded(8))
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
    }
}

extension String {
    func leftPadded(_ n: Int) -> String { String(repeating: "0", count: max(0, n - count)) + self }
}

/// SplitMix64, for seeded tests.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct ReplayTests {
    @Test func deliveredSummaryIsFoundInTheTargets() async {  // C125 at this layer
        let f = Fixture()
        let request = InvocationRequest()
        let s = await f.run(Full(), Examples.schedule, request: request)
        let found = Replay.deliveredSummary(invocationId: request.invocationId, event: Examples.schedule.objectValue!,
                                            runtime: f.runtime)
        #expect(found == s)
        #expect(Replay.deliveredSummary(invocationId: "other", event: Examples.schedule.objectValue!,
                                        runtime: f.runtime) == nil)
        // Delivered to an upgrade's app id: found through the resolved list.
        let upgraded = json(#"{"op": "on_schedule", "d": {"schedule_id": 1, "upgrade": {"deployment_config": {"APP_ID": "77"}}}}"#)
        let r2 = InvocationRequest()
        _ = await f.run(Full(), upgraded, request: r2)
        #expect(Replay.deliveredSummary(invocationId: r2.invocationId, event: upgraded.objectValue!, runtime: f.runtime) != nil)
    }

    @Test func noTargetsMeansRerun() async {  // C126 at this layer
        let f = Fixture(processorConfig: ProcessorConfig(invTargets: []))
        let request = InvocationRequest()
        _ = await f.run(Full(), Examples.schedule, request: request)
        #expect(Replay.deliveredSummary(invocationId: request.invocationId, event: Examples.schedule.objectValue!,
                                        runtime: f.runtime) == nil)
    }

    @Test func exhaustedAttempts() {  // C24 at this layer
        let f = Fixture()
        let q = QueuedEvent(invocationId: "id-1", enqueuedAt: 0, source: .http, requestId: nil, subscriptionId: nil,
                            event: Examples.schedule.objectValue!, attempts: 3)
        let s = Replay.finishExhausted(q, runtime: f.runtime)
        #expect(s.error == EventErrorInfo(type: "AttemptsExhausted", message: "event started 3 times without completing"))
        #expect(f.messages(1, "dv-proc-inv-42").first?["invocation_id"] == "id-1")
        #expect(f.runtime.metrics.value("replays_total", "exhausted") == 1)
    }
}

import DoryKit
import DoryState
import Synchronization
import Testing
@testable import DoryEvents

/// What ``OrderedApp`` saw: handler calls in order, the schedule events, and whether two calls ever overlapped.
/// Static because the workload makes its one instance with `init()`; the suite is serialized and resets it.
enum OrderLog {
    struct Entry: Sendable, Equatable {
        var op: String
        var tag: String?
    }

    static let entries = Mutex<[Entry]>([])
    static let schedules = Mutex<[ScheduleEvent]>([])
    /// Handler calls running right now; more than one at any moment is an overlap.
    static let running = Atomic<Int>(0)
    static let overlapped = Atomic<Bool>(false)
    /// While true, a manual invoke whose payload has `"block": true` waits inside its handler.
    static let blocking = Atomic<Bool>(false)
    /// Set while a blocking handler is inside its wait.
    static let blockedInside = Atomic<Bool>(false)

    static func reset() {
        entries.withLock { $0 = [] }
        schedules.withLock { $0 = [] }
        running.store(0, ordering: .relaxed)
        overlapped.store(false, ordering: .relaxed)
        blocking.store(false, ordering: .relaxed)
        blockedInside.store(false, ordering: .relaxed)
    }

    static var calls: [Entry] { entries.withLock { $0 } }
    static var isBlockedInside: Bool { blockedInside.load(ordering: .acquiring) }
}

/// Records each handler call in ``OrderLog`` and notices overlapping calls. A manual invoke's payload
/// `{"tag": T, "block": true}` is recorded with tag T and, while ``OrderLog/blocking`` holds, waits in its handler.
struct OrderedApp: Application {
    init() {}

    var implementedHandlers: Set<EventOp> { [.onSchedule, .onManualInvoke] }

    func onSchedule(_ event: ScheduleEvent) async throws {
        try await record("on_schedule", tag: nil) { OrderLog.schedules.withLock { $0.append(event) } }
    }

    func onManualInvoke(_ event: ManualInvokeEvent) async throws {
        let payload = event.payload.objectValue ?? [:]
        let tag: String? = if case .string(let t)? = payload["tag"] { t } else { nil }
        let block = payload["block"] == .bool(true)
        try await record("on_manual_invoke", tag: tag) {}
        if block {
            OrderLog.blockedInside.store(true, ordering: .releasing)
            while OrderLog.blocking.load(ordering: .acquiring) { try await Task.sleep(for: .milliseconds(2)) }
            OrderLog.blockedInside.store(false, ordering: .releasing)
        }
        OrderLog.running.subtract(1, ordering: .acquiringAndReleasing)
    }

    /// Enters (counting overlap), records, and for schedules leaves again at once.
    private func record(_ op: String, tag: String?, _ extra: () -> Void) async throws {
        if OrderLog.running.add(1, ordering: .acquiringAndReleasing).newValue > 1 {
            OrderLog.overlapped.store(true, ordering: .releasing)
        }
        OrderLog.entries.withLock { $0.append(OrderLog.Entry(op: op, tag: tag)) }
        extra()
        // Give a concurrent call every chance to show up while this one is inside.
        try await Task.sleep(for: .milliseconds(5))
        if op == "on_schedule" { OrderLog.running.subtract(1, ordering: .acquiringAndReleasing) }
    }
}

/// A workload running ``OrderedApp`` over `dir`, with captured logs, not yet started.
private func orderedWorkload(_ dir: String, logs: LogCapture, schedules: String, queueMax: Int = 100,
                             rateScale: Double = 1) -> EventWorkload
{
    let stream = LogStream(output: .capture({ logs.add($0) }), threshold: .info)
    return EventWorkload(settings: hostSettings(dir, schedules: schedules, queueMax: queueMax),
                         application: OrderedApp.self, persist: GenerationLog().persist, logStream: stream,
                         metrics: EventMetrics(), fileSystem: SystemFileSystem(), clock: { WallClock.nowMillis() },
                         flushCapturedOutput: nil, rateScale: rateScale)
}

private func manual(_ tag: String, block: Bool = false) -> JSONObject {
    json(#"{"op": "on_manual_invoke", "d": {"organisation_id": 2, "payload": {"tag": "\#(tag)", "block": \#(block)}}}"#)
        .objectValue!
}

/// §2.5 schedules and their place in the queue (§2.1, §2.4), driven through the workload's own `ScheduleRunner`:
/// fires are made by calling its `fire` directly (deterministic), or by a `rate` timer scaled down (C112).
@Suite(.serialized) struct ScheduleFireTests {
    /// C27: HTTP event A (its handler blocks the worker), a schedule fire S, then HTTP event B, enqueued in that order
    /// → processed A, S, B; handler calls never overlap.
    @Test func c27_httpScheduleHttpRunInQueueOrderWithoutOverlap() async throws {
        OrderLog.reset()
        let dir = try tempDir()
        let logs = LogCapture()
        // A schedule that never fires by itself within the test: the fire is made by hand.
        let workload = orderedWorkload(dir.path, logs: logs, schedules: #"[{"id": "poll", "rate": "every 1d"}]"#)
        let running = try await RunningWorkload(workload)
        let queue = try #require(workload.queue)
        let spec = try #require(workload.settings.events.schedules.first)
        let runner = try #require(workload.opened?.schedules)

        OrderLog.blocking.store(true, ordering: .releasing)
        guard case .accepted(let a) = await queue.enqueue([NewQueuedEvent(source: .http, event: manual("A", block: true))])
        else { Issue.record("A not accepted"); return }
        #expect(await eventually { OrderLog.isBlockedInside }, "A never started")
        await runner.fire(spec, scheduledAt: WallClock.nowMillis())
        guard case .accepted(let b) = await queue.enqueue([NewQueuedEvent(source: .http, event: manual("B"))])
        else { Issue.record("B not accepted"); return }
        // A still runs; S and B wait behind it.
        #expect(queue.pendingCount == 3)
        #expect(OrderLog.calls.count == 1)
        OrderLog.blocking.store(false, ordering: .releasing)

        #expect(await eventually { deliveredSummaries(workload).count == 3 })
        let summaries = deliveredSummaries(workload)
        #expect(summaries.map { $0["event_type"] } == ["on_manual_invoke", "on_schedule", "on_manual_invoke"])
        #expect(summaries[0]["invocation_id"] == .string(a[0]) && summaries[2]["invocation_id"] == .string(b[0]))
        #expect(summaries.allSatisfy { $0["status"] == "success" }, "\(summaries)")
        #expect(OrderLog.calls == [.init(op: "on_manual_invoke", tag: "A"), .init(op: "on_schedule", tag: nil),
                                   .init(op: "on_manual_invoke", tag: "B")])
        let overlapped = OrderLog.overlapped.load(ordering: .acquiring)
        #expect(!overlapped, "two handler calls overlapped")
        // The summaries' time spans do not overlap either: each starts after the previous one ended.
        let spans = summaries.compactMap { s -> (Int64, Int64)? in
            guard case .int(let start)? = s["started_at"], case .int(let ms)? = s["duration_ms"] else { return nil }
            return (start, start + ms)
        }
        #expect(spans.count == 3 && zip(spans, spans.dropFirst()).allSatisfy { $0.1 <= $1.0 }, "\(spans)")
        try await running.stop()
    }

    /// C112: `{id: poll, rate: every 30s}` → on_schedule events every 30 s from 30 s after start (the rate timer runs
    /// on a scaled clock here: 30 s → 150 ms); `d.schedule_id` "poll"; summaries `schedule_id` "poll",
    /// `subscription_id` null.
    @Test func c112_rateScheduleFiresEveryIntervalFromOneIntervalAfterStart() async throws {
        OrderLog.reset()
        let dir = try tempDir()
        let logs = LogCapture()
        let scale = 0.005
        let intervalMillis: Int64 = 150  // 30 s × 0.005
        let workload = orderedWorkload(dir.path, logs: logs, schedules: #"[{"id": "poll", "rate": "every 30s"}]"#,
                                       rateScale: scale)
        let before = WallClock.nowMillis()
        let running = try await RunningWorkload(workload)
        let after = WallClock.nowMillis()
        #expect(await eventually(within: 10) { OrderLog.schedules.withLock { $0.count } >= 3 })
        try await running.stop()

        let events = OrderLog.schedules.withLock { $0 }
        #expect(events.allSatisfy { $0.scheduleId == "poll" && $0.organisationId == "2" }, "\(events)")
        let fireTimes = events.compactMap(\.scheduledAt)
        #expect(fireTimes.count == events.count, "a fire without scheduled_at")
        // Fire n comes n intervals after the schedules started, never earlier (allowing 10 ms between the wall clock
        // and the monotonic timer): the first one not at once, and no bunching. The k-th event seen is fire n ≥ k (a
        // coalesced fire is not seen), so it cannot be earlier than k intervals after the start.
        for (k, at) in fireTimes.enumerated() {
            #expect(at - before >= Int64(k + 1) * intervalMillis - 10, "fire \(k + 1) at +\(at - before) ms: \(fireTimes)")
        }
        if let first = fireTimes.first { #expect(first - after <= 5_000, "first fire came \(first - after) ms after start") }
        #expect(zip(fireTimes, fireTimes.dropFirst()).allSatisfy { $0 < $1 }, "\(fireTimes)")
        let summaries = deliveredSummaries(workload).filter { $0["event_type"] == "on_schedule" }
        #expect(summaries.count >= 3)
        for summary in summaries {
            #expect(summary["schedule_id"] == "poll", "\(summary)")
            #expect(summary["subscription_id"] == .null)
            #expect(summary["status"] == "success")
            #expect(summary["requestId"] == summary["invocation_id"])
        }
        #expect(workload.metrics.value("schedule_fires_total", "poll|queued") == UInt64(summaries.count))
    }

    /// C114: a fire while the previous fire of the same schedule is still queued and not started → coalesced,
    /// `schedule_fires_total{outcome="coalesced"}` +1; once that fire has started, the next one is queued again; another
    /// schedule is not affected.
    @Test func c114_fireWhileTheLastOneWaitsUnstartedIsCoalesced() async throws {
        OrderLog.reset()
        let dir = try tempDir()
        let logs = LogCapture()
        let workload = orderedWorkload(dir.path, logs: logs,
                                       schedules: #"[{"id": "poll", "rate": "every 1d"}, {"id": "other", "rate": "every 1d"}]"#)
        try await workload.startup()  // no worker yet: fires stay queued, unstarted
        let queue = try #require(workload.queue)
        let runner = try #require(workload.opened?.schedules)
        let poll = try #require(workload.settings.events.schedules.first { $0.id == "poll" })
        let other = try #require(workload.settings.events.schedules.first { $0.id == "other" })
        let m = workload.metrics

        await runner.fire(poll, scheduledAt: 1)
        #expect(m.value("schedule_fires_total", "poll|queued") == 1)
        #expect(m.value("schedule_fires_total", "poll|coalesced") == 0)
        await runner.fire(poll, scheduledAt: 2)
        #expect(m.value("schedule_fires_total", "poll|coalesced") == 1)
        #expect(m.value("schedule_fires_total", "poll|queued") == 1)
        #expect(queue.pendingCount == 1)
        #expect(workload.metricsText().contains(#"dory_event_schedule_fires_total{schedule_id="poll",outcome="coalesced"} 1"#))
        // Another schedule's fire is its own.
        await runner.fire(other, scheduledAt: 3)
        #expect(m.value("schedule_fires_total", "other|queued") == 1)
        #expect(queue.pendingCount == 2)

        // Started (the worker runs it and blocks on nothing): a new fire of poll is queued again.
        let task = Task { try? await workload.run() }
        #expect(await eventually { deliveredSummaries(workload).count == 2 })
        await runner.fire(poll, scheduledAt: 4)
        #expect(m.value("schedule_fires_total", "poll|queued") == 2)
        #expect(m.value("schedule_fires_total", "poll|coalesced") == 1)
        #expect(await eventually { deliveredSummaries(workload).count == 3 })
        let ran = OrderLog.schedules.withLock { $0 }.map(\.scheduledAt)
        #expect(ran == [1, 3, 4], "the coalesced fire (2) ran: \(ran)")
        workload.beginStopping()
        try await workload.shutdown()
        await task.value
    }

    /// C116: queue full at fire time → the fire is dropped with a WARNING; outcome `dropped`; nothing queued.
    @Test func c116_fireIntoAFullQueueIsDroppedWithAWarning() async throws {
        OrderLog.reset()
        let dir = try tempDir()
        let logs = LogCapture()
        let workload = orderedWorkload(dir.path, logs: logs, schedules: #"[{"id": "poll", "rate": "every 1d"}]"#,
                                       queueMax: 1)
        try await workload.startup()  // no worker: the HTTP event keeps the queue full
        let queue = try #require(workload.queue)
        let runner = try #require(workload.opened?.schedules)
        let poll = try #require(workload.settings.events.schedules.first)
        guard case .accepted = await queue.enqueue([NewQueuedEvent(source: .http, event: manual("A"))]) else {
            Issue.record("A not accepted")
            return
        }
        await runner.fire(poll, scheduledAt: 1)
        let m = workload.metrics
        #expect(m.value("schedule_fires_total", "poll|dropped") == 1)
        #expect(m.value("schedule_fires_total", "poll|queued") == 0)
        #expect(m.value("accepted_total", "schedule") == 0)
        #expect(queue.pendingCount == 1)
        #expect(!queue.hasUnstartedFire(scheduleId: "poll"))
        let warnings = logs.messages("schedule fire dropped")
        #expect(warnings.count == 1, "\(logs.records)")
        #expect(warnings.first?["level"] == "warning")
        #expect(warnings.first?["schedule_id"] == "poll")
        #expect(warnings.first?["reason"] == "queue_full")
        #expect(workload.metricsText().contains(#"dory_event_schedule_fires_total{schedule_id="poll",outcome="dropped"} 1"#))
        try await workload.shutdown()
    }
}

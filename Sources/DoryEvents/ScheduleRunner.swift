import DoryState
import Logging
import Synchronization

/// Fires the configured schedules (§2.5) into the queue: `rate` on the monotonic clock (first fire one interval after
/// ``start()``), `cron` at each `nextFire` in its zone. A fire is dropped as `coalesced` while an earlier fire of the
/// same schedule waits unstarted, as `dropped` (WARNING) when the queue is full or failed. No catch-up.
final class ScheduleRunner: Sendable {
    private let schedules: [ScheduleSpec]
    private let queue: EventQueue
    private let organisationId: String?
    private let metrics: EventMetrics
    private let logger: Logger
    private let clock: @Sendable () -> Int64
    /// Multiplies rate intervals (tests use a fraction of a second per configured second).
    private let rateScale: Double
    private let tasks = Mutex<[Task<Void, Never>]>([])
    private let stopped = Atomic<Bool>(false)

    init(schedules: [ScheduleSpec], queue: EventQueue, organisationId: String?, metrics: EventMetrics, logger: Logger,
         clock: @escaping @Sendable () -> Int64, rateScale: Double = 1)
    {
        self.schedules = schedules
        self.queue = queue
        self.organisationId = organisationId
        self.metrics = metrics
        self.logger = logger
        self.clock = clock
        self.rateScale = rateScale
    }

    /// Starts one timer task per schedule.
    func start() {
        metrics.registerSchedules(ids: schedules.map(\.id))
        let started = schedules.map { spec in
            Task { [self] in
                switch spec.timing {
                case .rate(let seconds): await runRate(spec, seconds: seconds)
                case .cron(let expression, let zone): await runCron(spec, expression: expression, zone: zone)
                }
            }
        }
        tasks.withLock { $0 = started }
    }

    /// Stops firing (stopping phase, queue stopped): no fire after this returns.
    func stop() {
        stopped.store(true, ordering: .releasing)
        for task in tasks.withLock({ $0 }) { task.cancel() }
    }

    private var isStopped: Bool { stopped.load(ordering: .acquiring) || Task.isCancelled }

    private func runRate(_ spec: ScheduleSpec, seconds: Int64) async {
        let interval = Duration.nanoseconds(Int64(Double(seconds) * rateScale * 1e9))
        let clock = ContinuousClock()
        var next = clock.now + interval
        while !isStopped {
            do { try await clock.sleep(until: next) } catch { return }
            if isStopped { return }
            await fire(spec, scheduledAt: self.clock())
            // No catch-up: a fire that ran late moves the next one, it never bunches fires.
            next = max(next + interval, clock.now)
        }
    }

    private func runCron(_ spec: ScheduleSpec, expression: CronExpression, zone: TimeZoneRules) async {
        var after = clock()
        while !isStopped {
            guard let due = expression.nextFire(afterMillis: after, zone: zone) else { return }
            // Sleep on the wall clock in bounded steps, so a clock step is noticed within a minute.
            while !isStopped {
                let left = due - clock()
                if left <= 0 { break }
                do { try await Task.sleep(for: .milliseconds(min(left, 60_000))) } catch { return }
            }
            if isStopped { return }
            await fire(spec, scheduledAt: due)
            after = max(due, clock())
        }
    }

    /// One fire: coalesce, else enqueue durably.
    func fire(_ spec: ScheduleSpec, scheduledAt: Int64) async {
        if queue.isStopped { return }
        if queue.hasUnstartedFire(scheduleId: spec.id) {
            metrics.scheduleFire(id: spec.id, outcome: "coalesced")
            return
        }
        let event = NewQueuedEvent(source: .schedule, event: spec.fireEvent(organisationId: organisationId,
                                                                            scheduledAt: scheduledAt))
        switch await queue.enqueue([event]) {
        case .accepted:
            metrics.scheduleFire(id: spec.id, outcome: "queued")
            metrics.accepted(source: "schedule")
        case .queueFull:
            metrics.scheduleFire(id: spec.id, outcome: "dropped")
            logger.warning("schedule fire dropped", metadata: ["schedule_id": .string(spec.id), "reason": "queue_full"])
        case .writeFailed(let text):
            metrics.scheduleFire(id: spec.id, outcome: "dropped")
            logger.warning("schedule fire dropped", metadata: [
                "schedule_id": .string(spec.id), "reason": "queue_write_failed", "error": .string(text),
            ])
        case .unavailable:
            metrics.scheduleFire(id: spec.id, outcome: "dropped")
        }
    }
}

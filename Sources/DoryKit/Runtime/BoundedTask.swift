import Synchronization

/// A hook running in its own task, whose waiter gives up at the earliest of any deadlines set on it —
/// including deadlines set later by a signal (spec §2.3, §5.2). Giving up cancels the task and never awaits it again.
final class BoundedTask<Value: Sendable>: Sendable {
    private let box = OnceBox<Bounded<Value>>()
    private let task: Task<Void, Never>
    private let timers = TimerList()

    init(_ operation: @escaping @Sendable () async throws -> Value) {
        let box = self.box
        task = Task {
            do { box.resume(.value(try await operation())) } catch { box.resume(.failure(error)) }
        }
        box.onResolve { [timers] in timers.cancelAll() }
    }

    /// Stop waiting at `instant` (the earliest of all deadlines set wins).
    func expire(at instant: ContinuousClock.Instant) {
        let box = self.box
        let task = self.task
        let timer = Task {
            try? await Task.sleep(until: instant, clock: .continuous)
            if !Task.isCancelled, box.resume(.timedOut) { task.cancel() }
        }
        timers.add(timer)
    }

    /// Stop waiting now.
    func expireNow() {
        if box.resume(.timedOut) { task.cancel() }
    }

    /// The result, or `.timedOut` once a deadline passed. Any number of callers may wait.
    func result() async -> Bounded<Value> {
        await withCheckedContinuation { continuation in box.set(continuation) }
    }
}

/// Deadline timers of one bounded task, cancelled together once it resolves.
private final class TimerList: Sendable {
    private let tasks = Mutex<[Task<Void, Never>]>([])
    func add(_ task: Task<Void, Never>) { tasks.withLock { $0.append(task) } }
    func cancelAll() { for task in tasks.withLock({ $0 }) { task.cancel() } }
}

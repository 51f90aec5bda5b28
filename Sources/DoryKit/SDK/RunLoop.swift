import Logging
import Synchronization

/// `runLoop(interval:)`: yields 0, 1, 2, … (the first at once), sleeping `interval` after each iteration body,
/// and finishes without yielding once shutdown is requested. The sleep ends early on shutdown or cancellation.
public struct RunLoopSequence: AsyncSequence, Sendable {
    public typealias Element = Int
    let context: ExecutionContext
    let interval: Duration

    public struct AsyncIterator: AsyncIteratorProtocol {
        let context: ExecutionContext
        let interval: Duration
        var next = 0

        public mutating func next() async -> Int? {
            if next > 0 {
                if interval == .zero {
                    await Task.yield()
                } else {
                    await context.shutdownSignal.sleep(for: interval)
                }
            }
            if context.isMigrationImminent, context.markMigrationLogged() {
                // doryd's own logger, so `event` stays doryd's key (a processor logger would write `x_event`).
                RunLoopSequence.logger.info("migration imminent", metadata: ["event": "runloop.migration_imminent"])
            }
            guard !context.isShutdownRequested, !Task.isCancelled else { return nil }
            defer { next += 1 }
            return next
        }
    }

    static let logger = Logger(label: "doryd.runloop")

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(context: context, interval: interval)
    }
}

/// A one-shot event that sleepers wait on with a timeout: fired once, it wakes every current and future sleeper.
final class ShutdownSignal: Sendable {
    private struct State {
        var fired = false
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var timers: [UInt64: Task<Void, Never>] = [:]
        var nextID: UInt64 = 0
    }
    private let state = Mutex(State())

    func fire() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            guard !s.fired else { return [] }
            s.fired = true
            defer { s.waiters.removeAll(); s.timers.removeAll() }
            for timer in s.timers.values { timer.cancel() }
            return Array(s.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    var isFired: Bool { state.withLock { $0.fired } }

    /// Sleeps `duration`, returning early when fired or when the task is cancelled.
    func sleep(for duration: Duration) async {
        let id = state.withLock { s -> UInt64 in s.nextID += 1; return s.nextID }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let cancelled = Task.isCancelled
                let registered = state.withLock { s -> Bool in
                    if s.fired || cancelled { return false }
                    s.waiters[id] = continuation
                    s.timers[id] = Task {
                        try? await Task.sleep(for: duration)
                        self.wake(id)
                    }
                    return true
                }
                guard registered else { continuation.resume(); return }
            }
        } onCancel: {
            self.wake(id)
        }
    }

    private func wake(_ id: UInt64) {
        let (waiter, timer) = state.withLock { ($0.waiters.removeValue(forKey: id), $0.timers.removeValue(forKey: id)) }
        timer?.cancel()
        waiter?.resume()
    }
}

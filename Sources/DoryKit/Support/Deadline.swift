import Synchronization

/// The outcome of work bounded by a deadline.
enum Bounded<Value: Sendable>: Sendable {
    case value(Value)
    case failure(any Error)
    case timedOut
}

/// Runs work in its own task and stops waiting at a deadline: on overrun the task is cancelled and never awaited
/// again, so a hook that ignores cancellation cannot hold doryd past its bounds (spec §5.2).
enum Deadline {
    static func run<Value: Sendable>(
        seconds: Double, _ operation: @escaping @Sendable () async throws -> Value
    ) async -> Bounded<Value> {
        await run(until: .now + .milliseconds(Int64((max(0, seconds) * 1000).rounded())), operation)
    }

    static func run<Value: Sendable>(
        until deadline: ContinuousClock.Instant, _ operation: @escaping @Sendable () async throws -> Value
    ) async -> Bounded<Value> {
        let box = OnceBox<Bounded<Value>>()
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bounded<Value>, Never>) in
            box.set(continuation)
            let work = Task {
                do { box.resume(.value(try await operation())) } catch { box.resume(.failure(error)) }
            }
            let timer = Task {
                try? await Task.sleep(until: deadline, clock: .continuous)
                if box.resume(.timedOut) { work.cancel() }
            }
            box.onResolve { timer.cancel() }
        }
    }
}

/// A value resolved exactly once, whoever comes first; every waiter (before or after) receives it.
final class OnceBox<Value: Sendable>: Sendable {
    private struct State {
        var waiters: [CheckedContinuation<Value, Never>] = []
        var value: Value?
        var onResolve: [@Sendable () -> Void] = []
    }
    private let state = Mutex(State())

    /// Adds a waiter; resumed at once when the value is already there.
    func set(_ continuation: CheckedContinuation<Value, Never>) {
        let ready = state.withLock { s -> Value? in
            if let v = s.value { return v }
            s.waiters.append(continuation)
            return nil
        }
        if let ready { continuation.resume(returning: ready) }
    }

    func onResolve(_ action: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { s -> Bool in
            if s.value != nil { return true }
            s.onResolve.append(action)
            return false
        }
        if runNow { action() }
    }

    /// Returns true if this call resolved the box.
    @discardableResult
    func resume(_ value: Value) -> Bool {
        let taken = state.withLock { s -> ([CheckedContinuation<Value, Never>], [@Sendable () -> Void])? in
            guard s.value == nil else { return nil }
            s.value = value
            defer { s.waiters.removeAll(); s.onResolve.removeAll() }
            return (s.waiters, s.onResolve)
        }
        guard let (waiters, actions) = taken else { return false }
        for waiter in waiters { waiter.resume(returning: value) }
        for action in actions { action() }
        return true
    }
}

@preconcurrency import Dispatch
import Synchronization

/// One deadline slot per runtime (invocations are serialised, so at most one app phase or `close()` is timed at a
/// time). A repeating 25 ms timer, started on first use, fires the armed action once its deadline has passed:
/// arming and disarming are two lock operations, with no task or timer created per invocation.
final class Watchdog: Sendable {
    private struct Slot {
        var token: UInt64 = 0
        var deadline: UInt64 = 0
        var action: (@Sendable () -> Void)?
    }

    private let slot = Mutex(Slot())
    private let timer = Mutex<(any DispatchSourceTimer)?>(nil)
    private let queue = DispatchQueue(label: "doryd.events.watchdog")

    /// Arms `action` for `seconds` from now; returns the token to disarm with.
    func arm(seconds: Double, _ action: @escaping @Sendable () -> Void) -> UInt64 {
        startIfNeeded()
        let deadline = MonotonicClock.nanos() &+ UInt64(seconds * 1e9)
        return slot.withLock { s in
            s.token &+= 1
            s.deadline = deadline
            s.action = action
            return s.token
        }
    }

    func disarm(_ token: UInt64) {
        slot.withLock { s in
            if s.token == token { s.action = nil }
        }
    }

    private func startIfNeeded() {
        timer.withLock { t in
            guard t == nil else { return }
            let source = DispatchSource.makeTimerSource(queue: queue)
            source.schedule(deadline: .now() + .milliseconds(25), repeating: .milliseconds(25), leeway: .milliseconds(5))
            source.setEventHandler { [weak self] in self?.check() }
            source.resume()
            t = source
        }
    }

    private func check() {
        let now = MonotonicClock.nanos()
        let action = slot.withLock { s -> (@Sendable () -> Void)? in
            guard let a = s.action, now >= s.deadline else { return nil }
            s.action = nil
            return a
        }
        action?()
    }

    deinit {
        timer.withLock { $0?.cancel() }
    }
}

import Glibc

/// Monotonic time and polling with deadlines (the only place the tests sleep).
enum Poll {
    static func now() -> ContinuousClock.Instant { ContinuousClock.now }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    static func nap(_ duration: Duration) {
        let nanos = duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
        var request = timespec(tv_sec: Int(nanos / 1_000_000_000), tv_nsec: Int(nanos % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }

    /// Evaluates `condition` every `interval` until it holds (true) or `timeout` passes (false).
    @discardableResult
    static func until(timeout: Duration, interval: Duration = .milliseconds(20), _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            if try condition() { return true }
            if ContinuousClock.now >= deadline { return false }
            nap(interval)
        }
    }

    /// Like `until`, but returns the first non-nil value.
    static func value<T>(timeout: Duration, interval: Duration = .milliseconds(20), _ produce: () throws -> T?) rethrows -> T? {
        var result: T?
        _ = try until(timeout: timeout, interval: interval) {
            result = try produce()
            return result != nil
        }
        return result
    }
}

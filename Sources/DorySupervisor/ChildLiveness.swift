import Glibc
import Synchronization

/// The result of one check at probe time (spec/supervise.md §7.4).
public struct ChildCheck: Sendable, Equatable {
    public var passed: Bool
    /// The text after `ok:` / `failed:` on `?verbose` lines.
    public var detail: String
}

/// Readiness and liveness of the current child (spec/supervise.md §7), readable from atomics without blocking,
/// so probes never wait on the child.
public final class ChildLiveness: Sendable {
    public let mode: ReadyMode
    /// 0 = off.
    public let heartbeatTimeoutMillis: Int64
    private let events: ChildEvents?
    private let origin = ContinuousClock.now

    private let pid = Atomic<Int32>(0)            // 0: no child up
    private let ready = Atomic<Bool>(false)
    private let stoppingSent = Atomic<Bool>(false)
    private let spawnedAt = Atomic<Int64>(0)      // ms since origin
    private let readyAt = Atomic<Int64>(0)
    private let lastHeartbeat = Atomic<Int64>(-1) // -1: none for this child
    private let everHeartbeat = Atomic<Int64>(-1) // for dory_child_heartbeat_age_seconds
    private let statusText = Mutex<String?>(nil)
    /// An in-pod restart waiting for its spawn (§9 step 3): when (ms since origin), its number and the budget.
    private let pendingRestart = Mutex<(at: Int64, number: Int, budget: Int)?>(nil)

    public init(mode: ReadyMode, heartbeatTimeoutMillis: Int = 0, events: ChildEvents? = nil) {
        self.mode = mode
        self.heartbeatTimeoutMillis = Int64(heartbeatTimeoutMillis)
        self.events = events
    }

    /// Milliseconds on this object's monotonic clock.
    public func now() -> Int64 { Int64(ChildController.millis(origin.duration(to: .now))) }

    /// A new child was spawned: its readiness and heartbeat deadlines start anew (§9 step 4). With `--ready=started`
    /// it is ready at once.
    public func childStarted(pid newPID: pid_t) {
        let t = now()
        ready.store(false, ordering: .releasing)
        stoppingSent.store(false, ordering: .releasing)
        lastHeartbeat.store(-1, ordering: .releasing)
        spawnedAt.store(t, ordering: .releasing)
        statusText.withLock { $0 = nil }
        pendingRestart.withLock { $0 = nil }
        pid.store(newPID, ordering: .releasing)
        if mode == .started { markReady(via: .started) }
    }

    /// The child was reaped: the `child` readiness check fails until the next one is ready.
    public func childEnded() {
        pid.store(0, ordering: .releasing)
        ready.store(false, ordering: .releasing)
    }

    /// An in-pod restart is due in `delayMillis` (§9): the `child` readiness check reads
    /// `restarting in Ns (restart k of n)` until the next child is spawned or `restartCancelled()`.
    public func restartPending(inMillis delayMillis: Int64, number: Int, of budget: Int) {
        let at = now() + delayMillis
        pendingRestart.withLock { $0 = (at, number, budget) }
    }

    /// The stop began during a restart delay: no child follows.
    public func restartCancelled() {
        pendingRestart.withLock { $0 = nil }
    }

    /// The child met the condition of `via` (`POST /v1/ready` for api, `READY=1` for notify). Only the configured
    /// mode counts; emits `.ready` once per child. Returns whether this call made it ready.
    @discardableResult
    public func markReady(via: ReadyMode) -> Bool {
        let current = pid.load(ordering: .acquiring)
        guard via == mode, current != 0 else { return false }
        // Only the first READY=1 (or POST) of a child dates its readiness: a repeated one is no heartbeat.
        guard !ready.load(ordering: .acquiring) else { return false }
        readyAt.store(now(), ordering: .releasing)
        guard ready.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return false }
        events?.yield(.ready(pid: current, mode: mode))
        return true
    }

    /// `POST /v1/heartbeat` or `WATCHDOG=1`.
    public func heartbeat() {
        let t = now()
        lastHeartbeat.store(t, ordering: .releasing)
        everHeartbeat.store(t, ordering: .releasing)
        events?.yield(.heartbeat)
    }

    /// `STOPPING=1`: the `child` readiness check fails for this child from now on.
    public func noteStopping() {
        stoppingSent.store(true, ordering: .releasing)
        events?.yield(.notifyStopping)
    }

    /// `STATUS=` text (already cut to one line of at most 512 bytes).
    public func setStatus(_ text: String) {
        statusText.withLock { $0 = text }
        events?.yield(.notifyStatus(text))
    }

    public var status: String? { statusText.withLock { $0 } }
    public var childPID: pid_t? { let p = pid.load(ordering: .acquiring); return p == 0 ? nil : p }
    /// Whether the current child met its readiness condition.
    public var isChildReady: Bool { pid.load(ordering: .acquiring) != 0 && ready.load(ordering: .acquiring) }
    /// Milliseconds until the heartbeat deadline (nil when off or not armed yet).
    public func heartbeatDeadlineInMillis() -> Int64? {
        guard heartbeatTimeoutMillis > 0, isChildReady else { return nil }
        let since = max(readyAt.load(ordering: .acquiring), lastHeartbeat.load(ordering: .acquiring))
        return since + heartbeatTimeoutMillis - now()
    }
    /// Seconds since the last heartbeat of any child (`dory_child_heartbeat_age_seconds`), nil before the first.
    public var heartbeatAgeSeconds: Double? {
        let t = everHeartbeat.load(ordering: .acquiring)
        return t < 0 ? nil : Double(now() - t) / 1000
    }

    /// The readiness check `child`: a child is up, met its condition and has not sent `STOPPING=1`.
    public func readinessCheck(startupTimeoutSeconds: Double) -> ChildCheck {
        let p = pid.load(ordering: .acquiring)
        guard p != 0 else {
            if let pending = pendingRestart.withLock({ $0 }) {
                let seconds = (max(0, pending.at - now()) + 999) / 1000
                return ChildCheck(passed: false, detail: "restarting in \(seconds)s (restart \(pending.number) of \(pending.budget))")
            }
            return ChildCheck(passed: false, detail: "no child running")
        }
        if stoppingSent.load(ordering: .acquiring) { return ChildCheck(passed: false, detail: "pid=\(p) sent STOPPING=1") }
        if ready.load(ordering: .acquiring) {
            return ChildCheck(passed: true, detail: "pid=\(p) ready=\(mode.rawValue)" + statusSuffix())
        }
        let waited = Double(now() - spawnedAt.load(ordering: .acquiring)) / 1000
        let what = mode == .notify ? "READY=1" : "POST /v1/ready"
        return ChildCheck(passed: false, detail: "waiting for \(what) (\(Self.seconds(waited)) of \(Self.seconds(startupTimeoutSeconds, decimals: false)))")
    }

    /// The liveness check `child`: always passes (information).
    public func livenessInfo() -> ChildCheck {
        let p = pid.load(ordering: .acquiring)
        guard p != 0 else { return ChildCheck(passed: true, detail: "no child running") }
        let up = Int((now() - spawnedAt.load(ordering: .acquiring)) / 1000)
        let text = up >= 60 ? "\(up / 60)m\(up % 60)s" : "\(up)s"
        return ChildCheck(passed: true, detail: "pid=\(p) up=\(text)" + statusSuffix())
    }

    /// The liveness check `child_heartbeat` (§7.3). `evaluated`: the phase is running or draining; outside that,
    /// before the child is ready and with the timeout off it passes.
    public func heartbeatCheck(evaluated: Bool) -> ChildCheck {
        guard heartbeatTimeoutMillis > 0, evaluated, isChildReady else { return ChildCheck(passed: true, detail: "ok") }
        let since = max(readyAt.load(ordering: .acquiring), lastHeartbeat.load(ordering: .acquiring))
        let age = now() - since
        if age > heartbeatTimeoutMillis {
            return ChildCheck(passed: false, detail: "no heartbeat for \(Self.seconds(Double(age) / 1000)) (timeout \(Self.seconds(Double(heartbeatTimeoutMillis) / 1000, decimals: false)))")
        }
        return ChildCheck(passed: true, detail: "last heartbeat \(Self.seconds(Double(age) / 1000)) ago")
    }

    private func statusSuffix() -> String {
        guard let status else { return "" }
        var quoted = "\""
        for c in status { quoted += c == "\"" ? "\\\"" : String(c) }
        return " status=\(quoted)\""
    }

    static func seconds(_ value: Double, decimals: Bool = true) -> String {
        if !decimals && value == value.rounded() { return "\(Int(value))s" }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)s"
    }
}

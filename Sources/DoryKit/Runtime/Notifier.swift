import CSystemd

#if canImport(Glibc)
import Glibc
#endif

/// systemd notification through libsystemd (spec §9.1). With `NOTIFY_SOCKET` unset every call is a no-op.
final class Notifier: Sendable {
    let enabled: Bool
    /// The watchdog timeout when `sd_watchdog_enabled` reports one for this process.
    let watchdogUsec: UInt64?

    init() {
        let socket = getenv("NOTIFY_SOCKET").map { String(cString: $0) } ?? ""
        enabled = !socket.isEmpty
        var usec: UInt64 = 0
        if sd_watchdog_enabled(0, &usec) > 0, usec > 0 { watchdogUsec = usec } else { watchdogUsec = nil }
    }

    /// The heartbeat period: min(1 s, WATCHDOG_USEC/2), and 1 s without a watchdog.
    var heartbeatPeriodMs: Int {
        guard let usec = watchdogUsec else { return 1000 }
        return max(1, min(1000, Int(usec / 2000)))
    }

    func send(_ message: String) {
        guard enabled else { return }
        _ = sd_notify(0, message)
    }

    func status(_ text: String) { send("STATUS=\(text)") }
    func ready(status text: String) { send("READY=1\nSTATUS=\(text)") }
    func stopping() { send("STOPPING=1\nSTATUS=stopping") }
    func watchdog() { if watchdogUsec != nil { send("WATCHDOG=1") } }
}

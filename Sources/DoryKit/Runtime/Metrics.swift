import DoryState
import Synchronization

/// The Prometheus families of spec §4.6, updated by the runtime and rendered in text format 0.0.4.
public final class Metrics: Sendable {
    /// Values the scrape reads from the runtime at render time.
    struct Snapshot: Sendable {
        var version: String
        var processorId: String
        var pod: String
        var namespace: String
        var phase: Phase
        var ready: Bool
        var restartCount: Int
        var crashesInWindow: Int
        var strategy: String
        var reason: String
        var backoffSec: Double
    }

    private struct Store {
        var snapshots: [LabelPair: Double] = [:]
        var durationBuckets = [UInt64](repeating: 0, count: Metrics.durationBounds.count)
        var durationCount: UInt64 = 0
        var durationSum: Double = 0
        var rawBytes: Double?
        var compressedBytes: Double?
        var lastSavedAtMillis: Int64?
        var lastGeneration: UInt64?
        var quarantined: [String: Double] = [:]
        var signals: [String: Double] = [:]
        var requests: [LabelPair: Double] = [:]
        var checkFailures: [LabelPair: Double] = [:]
        var transfers: [LabelPair: Double] = [:]
    }

    struct LabelPair: Hashable, Sendable {
        let a: String
        let b: String
    }

    static let durationBounds: [Double] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    static let snapshotReasons = ["startup", "sigusr1", "prestop", "shutdown", "interval", "transfer", "api"]
    static let snapshotResults = ["ok", "error", "skipped"]
    /// Signals counted in every mode; run mode adds its own.
    let signalNames: [String]

    private let store = Mutex(Store())
    let processStartMillis: Int64
    private let startInstant = ContinuousClock.now

    init(signalNames: [String] = ["SIGTERM", "SIGINT", "SIGUSR1", "SIGHUP"]) {
        self.signalNames = signalNames
        processStartMillis = WallClock.nowMillis()
        store.withLock { s in
            for reason in Metrics.snapshotReasons {
                for result in Metrics.snapshotResults { s.snapshots[LabelPair(a: reason, b: result)] = 0 }
            }
            for name in signalNames { s.signals[name] = 0 }
            // Quarantine reasons are a closed set (§6.4): emitted from start with zeros.
            for defect in SnapshotDefect.allCases { s.quarantined[defect.rawValue] = 0 }
        }
    }

    func snapshotAttempt(reason: String, result: String, durationSec: Double?) {
        store.withLock { s in
            s.snapshots[LabelPair(a: reason, b: result), default: 0] += 1
            if let d = durationSec {
                s.durationCount += 1
                s.durationSum += d
                for (i, bound) in Metrics.durationBounds.enumerated() where d <= bound { s.durationBuckets[i] += 1 }
            }
        }
    }

    func snapshotDurable(generation: UInt64, rawBytes: Int, compressedBytes: Int, savedAtMillis: Int64) {
        store.withLock { s in
            s.lastGeneration = generation
            s.rawBytes = Double(rawBytes)
            s.compressedBytes = Double(compressedBytes)
            s.lastSavedAtMillis = savedAtMillis
        }
    }

    func quarantined(reason: String) { store.withLock { $0.quarantined[reason, default: 0] += 1 } }
    func signal(_ name: String) { store.withLock { $0.signals[name, default: 0] += 1 } }
    func request(route: String, code: Int) {
        store.withLock { $0.requests[LabelPair(a: route, b: String(code)), default: 0] += 1 }
    }
    func checkFailure(probe: String, check: String) {
        store.withLock { $0.checkFailures[LabelPair(a: probe, b: check), default: 0] += 1 }
    }
    func stateTransfer(op: String, result: String) {
        store.withLock { $0.transfers[LabelPair(a: op, b: result), default: 0] += 1 }
    }

    /// Requests served since start (`request_count` of `/state`).
    var requestCount: Int { store.withLock { Int($0.requests.values.reduce(0, +)) } }

    /// The Prometheus text exposition.
    func render(_ live: Snapshot) -> String {
        let s = store.withLock { $0 }
        var out = ""
        out.reserveCapacity(4096)
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
            out += name
            if !labels.isEmpty {
                out += "{" + labels.map { "\($0.0)=\"\(Metrics.escape($0.1))\"" }.joined(separator: ",") + "}"
            }
            out += " " + Metrics.format(value) + "\n"
        }
        family("dory_info", "gauge", "doryd build and identity.")
        sample("dory_info", [("version", live.version), ("processor_id", live.processorId), ("pod", live.pod), ("namespace", live.namespace)], 1)
        family("dory_process_start_time_seconds", "gauge", "Unix time the process started.")
        sample("dory_process_start_time_seconds", [], Double(processStartMillis) / 1000)
        family("dory_uptime_seconds", "gauge", "Seconds since the process started.")
        let elapsed = ContinuousClock.now - startInstant
        sample("dory_uptime_seconds", [], Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        family("dory_ready", "gauge", "1 exactly when /ready answers 200.")
        sample("dory_ready", [], live.ready ? 1 : 0)
        family("dory_phase", "gauge", "1 for the current lifecycle phase.")
        for phase in Phase.allCases { sample("dory_phase", [("phase", phase.description)], phase == live.phase ? 1 : 0) }
        family("dory_restart_count", "gauge", "Restart count of this boot.")
        sample("dory_restart_count", [], Double(live.restartCount))
        family("dory_crashes_in_window", "gauge", "Crashes counted for the recovery decision.")
        sample("dory_crashes_in_window", [], Double(live.crashesInWindow))
        family("dory_recovery_strategy_info", "gauge", "The recovery decision of this boot.")
        sample("dory_recovery_strategy_info", [("strategy", live.strategy), ("reason", live.reason)], 1)
        family("dory_recovery_backoff_seconds", "gauge", "Backoff applied in this boot.")
        sample("dory_recovery_backoff_seconds", [], live.backoffSec)
        family("dory_snapshots_total", "counter", "Snapshot attempts by reason and result.")
        for (key, value) in s.snapshots.sorted(by: { ($0.key.a, $0.key.b) < ($1.key.a, $1.key.b) }) {
            sample("dory_snapshots_total", [("reason", key.a), ("result", key.b)], value)
        }
        family("dory_snapshot_duration_seconds", "histogram", "Capture to directory fsync.")
        for (i, bound) in Metrics.durationBounds.enumerated() {
            sample("dory_snapshot_duration_seconds_bucket", [("le", Metrics.format(bound))], Double(s.durationBuckets[i]))
        }
        sample("dory_snapshot_duration_seconds_bucket", [("le", "+Inf")], Double(s.durationCount))
        sample("dory_snapshot_duration_seconds_sum", [], s.durationSum)
        sample("dory_snapshot_duration_seconds_count", [], Double(s.durationCount))
        family("dory_snapshot_bytes", "gauge", "Sizes of the newest durable snapshot.")
        if let raw = s.rawBytes, let compressed = s.compressedBytes {
            sample("dory_snapshot_bytes", [("kind", "raw")], raw)
            sample("dory_snapshot_bytes", [("kind", "compressed")], compressed)
        }
        if let saved = s.lastSavedAtMillis {
            family("dory_last_snapshot_age_seconds", "gauge", "Age of the newest durable generation.")
            sample("dory_last_snapshot_age_seconds", [], max(0, Double(WallClock.nowMillis() - saved) / 1000))
        }
        if let generation = s.lastGeneration {
            family("dory_last_snapshot_generation", "gauge", "The newest durable generation.")
            sample("dory_last_snapshot_generation", [], Double(generation))
        }
        family("dory_snapshots_quarantined_total", "counter", "Files moved to quarantine.")
        for (reason, value) in s.quarantined.sorted(by: { $0.key < $1.key }) {
            sample("dory_snapshots_quarantined_total", [("reason", reason)], value)
        }
        family("dory_signals_received_total", "counter", "Signal deliveries reported by the signal sources.")
        for (name, value) in s.signals.sorted(by: { $0.key < $1.key }) {
            sample("dory_signals_received_total", [("signal", name)], value)
        }
        family("dory_http_requests_total", "counter", "HTTP responses by route template and code.")
        for (key, value) in s.requests.sorted(by: { ($0.key.a, $0.key.b) < ($1.key.a, $1.key.b) }) {
            sample("dory_http_requests_total", [("route", key.a), ("code", key.b)], value)
        }
        family("dory_health_check_failures_total", "counter", "Failing evaluations of custom checks by the check timer.")
        for (key, value) in s.checkFailures.sorted(by: { ($0.key.a, $0.key.b) < ($1.key.a, $1.key.b) }) {
            sample("dory_health_check_failures_total", [("probe", key.a), ("check", key.b)], value)
        }
        family("dory_state_transfers_total", "counter", "/state requests past routing.")
        for (key, value) in s.transfers.sorted(by: { ($0.key.a, $0.key.b) < ($1.key.a, $1.key.b) }) {
            sample("dory_state_transfers_total", [("op", key.a), ("result", key.b)], value)
        }
        return out
    }

    /// Label value escaping of the Prometheus text format: backslash, double quote, newline.
    public static func escape(_ value: String) -> String {
        guard value.contains(where: { $0 == "\\" || $0 == "\"" || $0 == "\n" }) else { return value }
        var out = ""
        for ch in value {
            switch ch {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(ch)
            }
        }
        return out
    }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}

import DoryKit
import Synchronization

/// The event workload's Prometheus families (§11), counted here and rendered in text format 0.0.4 for the
/// runtime's `/metrics` (which appends ``render(queueDepth:oldestAgeSeconds:)`` to its own output). Closed label
/// sets are emitted from the start with zeros.
public final class EventMetrics: Sendable {
    static let durationBounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]
    static let ops = EventOp.allCases.map(\.rawValue) + ["unknown"]
    static let rejectReasons = ["disabled", "unauthorized", "not_ready", "shutting_down", "too_large",
                                "unsupported_media_type", "bad_request", "queue_full", "write_failed"]
    static let commitOutcomes = ["written", "message_only", "noop", "failed", "discarded"]
    static let replayOutcomes = ["rerun", "summary_found", "exhausted"]

    struct Histogram {
        var buckets = [UInt64](repeating: 0, count: EventMetrics.durationBounds.count)
        var count: UInt64 = 0
        var sum: Double = 0

        mutating func observe(_ seconds: Double) {
            count += 1
            sum += seconds
            for i in 0..<EventMetrics.durationBounds.count where seconds <= EventMetrics.durationBounds[i] {
                buckets[i] += 1
            }
        }
    }

    struct Store {
        var invocations: [String: UInt64] = [:]  // "op|status"
        var skips: [String: UInt64] = [:]
        var durations: [String: Histogram] = [:]
        var accepted: [String: UInt64] = ["http": 0, "schedule": 0]
        var rejected: [String: UInt64] = [:]
        var deliveryFailures: [String: UInt64] = [:]
        var tagCommits: [String: UInt64] = [:]
        var replays: [String: UInt64] = [:]
        var scheduleFires: [String: UInt64] = [:]  // "id|outcome"
    }

    private let store: Mutex<Store>
    /// `dory_event_queue_fsyncs_total`, counted by the queue writer.
    public let queueFsyncs = Atomic<UInt64>(0)

    public init() {
        var s = Store()
        for op in EventMetrics.ops {
            for st in InvocationStatus.allCases { s.invocations[op + "|" + st.rawValue] = 0 }
            s.durations[op] = Histogram()
        }
        for r in SkipReason.allCases { s.skips[r.rawValue] = 0 }
        for r in EventMetrics.rejectReasons { s.rejected[r] = 0 }
        for o in EventMetrics.commitOutcomes { s.tagCommits[o] = 0 }
        for o in EventMetrics.replayOutcomes { s.replays[o] = 0 }
        store = Mutex(s)
    }

    /// One summary (§5.2 step 4).
    public func invocationFinished(op: String?, status: InvocationStatus, skipReason: SkipReason?, durationMs: Int64) {
        let label = EventOp.metricLabel(op)
        let seconds = Double(durationMs) / 1000
        store.withLock { s in
            s.invocations[label + "|" + status.rawValue, default: 0] += 1
            if let skipReason { s.skips[skipReason.rawValue, default: 0] += 1 }
            s.durations[label, default: Histogram()].observe(seconds)
        }
    }

    public func accepted(source: String, count: Int = 1) { store.withLock { $0.accepted[source, default: 0] += UInt64(count) } }
    public func rejected(reason: String) { store.withLock { $0.rejected[reason, default: 0] += 1 } }
    public func summaryDeliveryFailed(channel: String) { store.withLock { $0.deliveryFailures[channel, default: 0] += 1 } }
    public func tagCommit(_ outcome: String) { store.withLock { $0.tagCommits[outcome, default: 0] += 1 } }
    public func replay(_ outcome: String) { store.withLock { $0.replays[outcome, default: 0] += 1 } }
    public func scheduleFire(id: String, outcome: String) {
        store.withLock { s in
            for o in ["queued", "coalesced", "dropped"] where s.scheduleFires[id + "|" + o] == nil { s.scheduleFires[id + "|" + o] = 0 }
            s.scheduleFires[id + "|" + outcome, default: 0] += 1
        }
    }

    /// Emits `dory_event_schedule_fires_total` for these schedules from the start, with zeros.
    public func registerSchedules(ids: [String]) {
        store.withLock { s in
            for id in ids {
                for o in ["queued", "coalesced", "dropped"] where s.scheduleFires[id + "|" + o] == nil {
                    s.scheduleFires[id + "|" + o] = 0
                }
            }
        }
    }

    /// A counter's value, for tests: `family` without the `dory_event_` prefix, labels joined with `|`.
    public func value(_ family: String, _ labels: String) -> UInt64 {
        store.withLock { s in
            switch family {
            case "invocations_total": s.invocations[labels] ?? 0
            case "skips_total": s.skips[labels] ?? 0
            case "accepted_total": s.accepted[labels] ?? 0
            case "rejected_total": s.rejected[labels] ?? 0
            case "summary_delivery_failures_total": s.deliveryFailures[labels] ?? 0
            case "tag_commits_total": s.tagCommits[labels] ?? 0
            case "replays_total": s.replays[labels] ?? 0
            case "schedule_fires_total": s.scheduleFires[labels] ?? 0
            case "invocation_duration_seconds_count": s.durations[labels]?.count ?? 0
            default: 0
            }
        }
    }


    private static func number(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
    }

    /// The families of §11 in Prometheus text format. The gauges come from the queue.
    public func render(queueDepth: Int, oldestAgeSeconds: Double) -> String {
        let s = store.withLock { $0 }
        var out = ""
        func counter(_ name: String, _ help: String, _ rows: [(String, UInt64)]) {
            out += "# HELP dory_event_\(name) \(help)\n# TYPE dory_event_\(name) counter\n"
            for (labels, v) in rows.sorted(by: { $0.0 < $1.0 }) { out += "dory_event_\(name)\(labels) \(v)\n" }
        }
        func pairs(_ dict: [String: UInt64], _ a: String, _ b: String) -> [(String, UInt64)] {
            dict.map { key, v in
                let parts = key.split(separator: "|", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                return ("{\(a)=\"\(Metrics.escape(parts[0]))\",\(b)=\"\(Metrics.escape(parts.count > 1 ? parts[1] : ""))\"}", v)
            }
        }
        func single(_ dict: [String: UInt64], _ a: String) -> [(String, UInt64)] {
            dict.map { ("{\(a)=\"\(Metrics.escape($0.key))\"}", $0.value) }
        }
        counter("invocations_total", "Finished invocations (one per summary).", pairs(s.invocations, "op", "status"))
        counter("skips_total", "Skipped invocations by skip reason.", single(s.skips, "reason"))
        out += "# HELP dory_event_invocation_duration_seconds Invocation duration.\n"
        out += "# TYPE dory_event_invocation_duration_seconds histogram\n"
        for op in s.durations.keys.sorted() {
            let h = s.durations[op]!
            for (i, bound) in EventMetrics.durationBounds.enumerated() {
                out += "dory_event_invocation_duration_seconds_bucket{op=\"\(op)\",le=\"\(EventMetrics.number(bound))\"} \(h.buckets[i])\n"
            }
            out += "dory_event_invocation_duration_seconds_bucket{op=\"\(op)\",le=\"+Inf\"} \(h.count)\n"
            out += "dory_event_invocation_duration_seconds_sum{op=\"\(op)\"} \(h.sum)\n"
            out += "dory_event_invocation_duration_seconds_count{op=\"\(op)\"} \(h.count)\n"
        }
        out += "# HELP dory_event_queue_depth Pending events (queued and running).\n"
        out += "# TYPE dory_event_queue_depth gauge\ndory_event_queue_depth \(queueDepth)\n"
        out += "# HELP dory_event_queue_oldest_age_seconds Age of the oldest pending event.\n"
        out += "# TYPE dory_event_queue_oldest_age_seconds gauge\ndory_event_queue_oldest_age_seconds \(oldestAgeSeconds)\n"
        counter("accepted_total", "Events durably queued.", single(s.accepted, "source"))
        counter("rejected_total", "HTTP intake refusals.", single(s.rejected, "reason"))
        counter("summary_delivery_failures_total", "Failed summary target writes.",
                single(s.deliveryFailures, "channel"))
        counter("tag_commits_total", "Tag commits.", single(s.tagCommits, "outcome"))
        counter("replays_total", "Replays after a restart.", single(s.replays, "outcome"))
        out += "# HELP dory_event_queue_fsyncs_total fsync calls on the queue file.\n"
        out += "# TYPE dory_event_queue_fsyncs_total counter\n"
        out += "dory_event_queue_fsyncs_total \(queueFsyncs.load(ordering: .relaxed))\n"
        counter("schedule_fires_total", "Schedule fires.", pairs(s.scheduleFires, "schedule_id", "outcome"))
        return out
    }
}

import Testing
@testable import DoryKit

@Suite("Metrics text format (spec §4.6)")
struct MetricsTests {
    func live(pod: String = "p") -> Metrics.Snapshot {
        Metrics.Snapshot(version: "1", processorId: "x", pod: pod, namespace: "ns", phase: .running, ready: true,
                         restartCount: 2, crashesInWindow: 1, strategy: "restore", reason: "normal_restart", backoffSec: 0)
    }

    @Test func everyFamilyHasHelpAndTypeAndTheTextEndsWithANewline() {
        let m = Metrics()
        m.snapshotAttempt(reason: "sigusr1", result: "ok", durationSec: 0.003)
        m.snapshotDurable(generation: 4, rawBytes: 100, compressedBytes: 50, savedAtMillis: 0)
        m.quarantined(reason: "truncated")
        m.request(route: "/healthz", code: 200)
        m.checkFailure(probe: "liveness", check: "custom:db")
        m.stateTransfer(op: "get", result: "ok")
        let text = m.render(live())
        for family in ["dory_info", "dory_process_start_time_seconds", "dory_uptime_seconds", "dory_ready", "dory_phase",
                       "dory_restart_count", "dory_crashes_in_window", "dory_recovery_strategy_info",
                       "dory_recovery_backoff_seconds", "dory_snapshots_total", "dory_snapshot_duration_seconds",
                       "dory_snapshot_bytes", "dory_last_snapshot_age_seconds", "dory_last_snapshot_generation",
                       "dory_snapshots_quarantined_total", "dory_signals_received_total", "dory_http_requests_total",
                       "dory_health_check_failures_total", "dory_state_transfers_total"] {
            #expect(text.contains("# HELP \(family) "), "\(family)")
            #expect(text.contains("# TYPE \(family) "), "\(family)")
        }
        #expect(text.hasSuffix("\n"))
        #expect(text.contains("dory_snapshots_total{reason=\"sigusr1\",result=\"ok\"} 1\n"))
        #expect(text.contains("dory_snapshots_total{reason=\"interval\",result=\"skipped\"} 0\n"))
        #expect(text.contains("dory_snapshot_duration_seconds_bucket{le=\"0.005\"} 1\n"))
        #expect(text.contains("dory_snapshot_duration_seconds_bucket{le=\"0.001\"} 0\n"))
        #expect(text.contains("dory_phase{phase=\"running\"} 1\n"))
        #expect(text.contains("dory_phase{phase=\"backoff\"} 0\n"))
        #expect(text.contains("dory_signals_received_total{signal=\"SIGTERM\"} 0\n"))
        #expect(text.contains("dory_last_snapshot_generation 4\n"))
    }

    @Test func labelValuesAreEscaped() {
        let text = Metrics().render(live(pod: "a\"b\\c\nd"))
        #expect(text.contains("pod=\"a\\\"b\\\\c\\nd\""))
    }

    @Test func countersEndInTotal() {
        let text = Metrics().render(live())
        for line in text.split(separator: "\n") where line.hasPrefix("# TYPE") && line.hasSuffix("counter") {
            #expect(line.split(separator: " ")[2].hasSuffix("_total"))
        }
    }
}

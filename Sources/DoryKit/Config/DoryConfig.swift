import DoryState
import Logging

/// Every setting of spec/dory-runtime.md §10, after precedence (flags > `DORY_*` env > YAML > defaults)
/// and validation. Durations are seconds as `Double` (millisecond resolution).
public struct DoryConfig: Sendable, Equatable {
    public var configFile: String? = nil
    public var healthPort: Int = 8080
    /// nil means all interfaces (dual-stack `[::]`, else `0.0.0.0`).
    public var healthHost: String? = nil
    public var stateDir: String = "./.dory"
    /// Explicit processor id (flag, `DORY_PROCESSOR_ID`, YAML). nil: `PROCESSOR_ID`, then derived from the pod name.
    public var processorId: String? = nil
    public var logLevel: LogLevelSetting = .info
    public var startupTimeoutSec: Double = 30
    public var shutdownTimeoutSec: Double = 20
    public var finalSaveTimeoutSec: Double = 5
    public var stateCaptureTimeoutSec: Double = 25
    public var stateMaxBytes: Int = 8_388_608
    public var stateToken: String? = nil
    public var controlToken: String? = nil
    /// nil: `<state_dir>/<processor_id>/control.sock`.
    public var controlSocket: String? = nil
    public var prestopDrainSec: Double = 0
    /// 0 = off.
    public var snapshotIntervalSec: Double = 60
    public var snapshotKeep: Int = 3
    public var snapshotLevel: Int = 1
    public var snapshotMaxBytes: Int = 67_108_864
    public var quarantineKeep: Int = 5
    public var rapidRestartThreshold: Int = 3
    public var rapidRestartWindowSec: Double = 60
    public var healthyAfterSec: Double = 600
    public var backoffBaseSec: Double = 10
    public var backoffMaxSec: Double = 300
    public var journalMaxBytes: Int = 65_536
    public var checkTimeoutMs: Int = 500
    /// The raw `events:` section of the YAML file (only `doryd events` / `doryd invoke` accept it). Plain scalars
    /// follow the YAML 1.2 core schema (`true`/`false`, `null`/`~`/empty, decimal integers and floats); quoted ones
    /// stay strings.
    public var eventsSection: JSONValue? = nil
    /// `RESTART_COUNT` (environment only, validated as a non-negative decimal integer): counts as crashes (§7).
    public var restartCountOverride: Int? = nil

    // Flat settings the event workload adds (event-pipeline.md §9.1); read only when the loader allows events.
    public var eventQueueMax: Int = 10_000
    public var eventMaxBytes: Int = 1_048_576
    /// 0 = no limit.
    public var eventTimeoutSec: Double = 300
    public var eventMaxAttempts: Int = 3
    public var channelMaxBytes: Int = 4_194_304

    /// A workload's own settings found in the YAML file (``ConfigLoader/workloadKeys``), as written.
    public var workloadSettings: [String: WorkloadSettingText] = [:]

    public init() {}

    /// Warnings about accepted values (§10: a token shorter than 16 characters), one line each, to log at WARN.
    public var warnings: [String] {
        var lines: [String] = []
        if let token = stateToken, token.utf8.count < 16 {
            lines.append("state_token is shorter than 16 characters")
        }
        if let token = controlToken, token.utf8.count < 16 {
            lines.append("control_token is shorter than 16 characters")
        }
        return lines
    }
}

/// `log_level`: trace, debug, info, notice, warning (or warn), error, critical, in any case.
public enum LogLevelSetting: String, Sendable, Equatable, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
}

extension LogLevelSetting {
    /// The swift-log level of the same name.
    public var loggerLevel: Logger.Level {
        switch self {
        case .trace: .trace
        case .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warning: .warning
        case .error: .error
        case .critical: .critical
        }
    }
}

/// A workload setting's YAML value, unvalidated, and where it was written (`file.yaml:3`) for messages.
public struct WorkloadSettingText: Sendable, Equatable {
    public var text: String
    public var source: String
    public init(text: String, source: String) {
        self.text = text
        self.source = source
    }
}

import DoryState

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
    /// The raw `events:` section of the YAML file (only `doryd events` / `doryd invoke` accept it).
    public var eventsSection: JSONValue? = nil

    public init() {}
}

/// `log_level`: trace, debug, info, notice, warning (or warn), error, critical, in any case.
public enum LogLevelSetting: String, Sendable, Equatable, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
}

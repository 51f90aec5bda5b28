import DoryState

/// Everything the Supervisor needs to know before it starts, resolved by the entry point.
public struct RuntimeSettings: Sendable {
    public var config: DoryConfig
    /// The environment at start.
    public var environment: [String: String]
    public var identity: PodIdentity
    public var processorId: String
    public var bootId: String
    public var version: String
    /// `RESTART_COUNT`, when set (already validated).
    public var restartCountOverride: Int?
    /// `DORY_TEST_FAULT` in a debug build.
    public var testFault: String?

    /// `<state_dir>/<processor_id>`.
    public var processorDirectory: String {
        SnapshotLayout.processorDirectory(stateDir: config.stateDir, processorId: processorId)
    }
}

/// One row of the settings table of spec/dory-runtime.md §10 (and event-pipeline.md §9.1): its name (also the YAML
/// key), variable, flag, syntax and where the parsed value goes in ``DoryConfig``.
struct ConfigSetting {
    /// The syntax and range of a setting's value.
    enum Kind {
        /// Decimal integer in the range.
        case integer(ClosedRange<Int>)
        /// Decimal seconds, range in milliseconds; `zeroMeaning` (e.g. "off") also accepts 0.
        case seconds(ClosedRange<Int64>, zeroMeaning: String?)
        case logLevel
        case token
        case path
        case processorId
        case host
    }

    /// A validated value.
    enum Value {
        case integer(Int)
        case milliseconds(Int64)
        case logLevel(LogLevelSetting)
        case text(String)
        /// A host; nil = all interfaces.
        case host(String?)
    }

    let name: String
    /// The flag, or nil when the setting is kept off the command line (tokens).
    let flag: String?
    let kind: Kind
    /// Only read by commands that accept the `events:` section (event-pipeline.md §9.1).
    let eventsOnly: Bool
    let apply: (inout DoryConfig, Value) -> Void

    /// `DORY_` + the upper-cased name.
    var variable: String { "DORY_" + name.uppercased() }

    init(_ name: String, flag: String? = "", _ kind: Kind, eventsOnly: Bool = false,
         apply: @escaping (inout DoryConfig, Value) -> Void)
    {
        self.name = name
        // "" = the default flag: `--` + the kebab-case name.
        self.flag = flag == "" ? "--" + String(name.map { $0 == "_" ? "-" : $0 }) : flag
        self.kind = kind
        self.eventsOnly = eventsOnly
        self.apply = apply
    }

    /// What the setting accepts, for messages.
    var expectedText: String {
        switch kind {
        case .integer(let range):
            return "an integer in \(range.lowerBound)...\(range.upperBound)"
        case .seconds(let range, let zeroMeaning):
            let span = "\(SettingSyntax.secondsText(milliseconds: range.lowerBound))..."
                + SettingSyntax.secondsText(milliseconds: range.upperBound)
            if let zeroMeaning {
                return "0 (\(zeroMeaning)) or a number of seconds in \(span) (millisecond resolution)"
            }
            return "a number of seconds in \(span) (millisecond resolution)"
        case .logLevel:
            return LogLevelSetting.acceptedText
        case .token:
            return "1...4096 visible ASCII characters"
        case .path:
            return "a non-empty path"
        case .processorId:
            return ProcessorID.ruleText
        case .host:
            return "an IP address literal (0.0.0.0 or :: for all interfaces)"
        }
    }

    /// Parses and range-checks `text`; nil when invalid.
    func parse(_ text: String) -> Value? {
        switch kind {
        case .integer(let range):
            guard let value = SettingSyntax.decimalInteger(text), range.contains(value) else { return nil }
            return .integer(value)
        case .seconds(let range, let zeroMeaning):
            guard let millis = SettingSyntax.milliseconds(fromSeconds: text) else { return nil }
            guard range.contains(millis) || (millis == 0 && zeroMeaning != nil) else { return nil }
            return .milliseconds(millis)
        case .logLevel:
            return LogLevelSetting(parsing: text).map(Value.logLevel)
        case .token:
            return SettingSyntax.isValidToken(text) ? .text(text) : nil
        case .path:
            return text.isEmpty || text.utf8.contains(0) ? nil : .text(text)
        case .processorId:
            return ProcessorID.isValid(text) ? .text(text) : nil
        case .host:
            guard SettingSyntax.isIPLiteral(text) else { return nil }
            return .host(SettingSyntax.isUnspecifiedAddress(text) ? nil : text)
        }
    }

    /// Whether values must not be echoed in messages.
    var isSecret: Bool {
        if case .token = kind { return true }
        return false
    }
}

extension ConfigSetting {
    /// Every setting, in the order of the spec's table (the order errors are reported in).
    static var all: [ConfigSetting] {
        func int(_ path: WritableKeyPath<DoryConfig, Int>) -> (inout DoryConfig, Value) -> Void {
            { config, value in if case .integer(let v) = value { config[keyPath: path] = v } }
        }
        func seconds(_ path: WritableKeyPath<DoryConfig, Double>) -> (inout DoryConfig, Value) -> Void {
            { config, value in if case .milliseconds(let ms) = value { config[keyPath: path] = Double(ms) / 1000 } }
        }
        func text(_ path: WritableKeyPath<DoryConfig, String>) -> (inout DoryConfig, Value) -> Void {
            { config, value in if case .text(let v) = value { config[keyPath: path] = v } }
        }
        func optionalText(_ path: WritableKeyPath<DoryConfig, String?>) -> (inout DoryConfig, Value) -> Void {
            { config, value in if case .text(let v) = value { config[keyPath: path] = v } }
        }
        let hour: Int64 = 3_600_000
        let day: Int64 = 86_400_000
        return [
            ConfigSetting("health_port", flag: "--port", .integer(0...65535), apply: int(\.healthPort)),
            ConfigSetting("health_host", flag: "--host", .host) { config, value in
                if case .host(let host) = value { config.healthHost = host }
            },
            ConfigSetting("state_dir", .path, apply: text(\.stateDir)),
            ConfigSetting("processor_id", .processorId, apply: optionalText(\.processorId)),
            ConfigSetting("log_level", .logLevel) { config, value in
                if case .logLevel(let level) = value { config.logLevel = level }
            },
            ConfigSetting("startup_timeout_sec", .seconds(100...hour, zeroMeaning: nil),
                          apply: seconds(\.startupTimeoutSec)),
            ConfigSetting("shutdown_timeout_sec", .seconds(100...300_000, zeroMeaning: nil),
                          apply: seconds(\.shutdownTimeoutSec)),
            ConfigSetting("final_save_timeout_sec", .seconds(100...60_000, zeroMeaning: nil),
                          apply: seconds(\.finalSaveTimeoutSec)),
            ConfigSetting("state_capture_timeout_sec", .seconds(100...300_000, zeroMeaning: nil),
                          apply: seconds(\.stateCaptureTimeoutSec)),
            ConfigSetting("state_max_bytes", .integer(1024...10_485_760), apply: int(\.stateMaxBytes)),
            ConfigSetting("state_token", flag: nil, .token, apply: optionalText(\.stateToken)),
            ConfigSetting("control_token", flag: nil, .token, apply: optionalText(\.controlToken)),
            ConfigSetting("control_socket", .path, apply: optionalText(\.controlSocket)),
            ConfigSetting("prestop_drain_sec", .seconds(0...300_000, zeroMeaning: nil),
                          apply: seconds(\.prestopDrainSec)),
            ConfigSetting("snapshot_interval_sec", .seconds(10...day, zeroMeaning: "off"),
                          apply: seconds(\.snapshotIntervalSec)),
            ConfigSetting("snapshot_keep", .integer(1...100), apply: int(\.snapshotKeep)),
            ConfigSetting("snapshot_level", .integer(0...9), apply: int(\.snapshotLevel)),
            ConfigSetting("snapshot_max_bytes", .integer(1_048_576...1_073_741_824), apply: int(\.snapshotMaxBytes)),
            ConfigSetting("quarantine_keep", .integer(0...100), apply: int(\.quarantineKeep)),
            ConfigSetting("rapid_restart_threshold", .integer(1...100), apply: int(\.rapidRestartThreshold)),
            ConfigSetting("rapid_restart_window_sec", .seconds(100...day, zeroMeaning: nil),
                          apply: seconds(\.rapidRestartWindowSec)),
            ConfigSetting("healthy_after_sec", .seconds(100...day, zeroMeaning: nil), apply: seconds(\.healthyAfterSec)),
            ConfigSetting("backoff_base_sec", .seconds(0...hour, zeroMeaning: nil), apply: seconds(\.backoffBaseSec)),
            ConfigSetting("backoff_max_sec", .seconds(0...hour, zeroMeaning: nil), apply: seconds(\.backoffMaxSec)),
            ConfigSetting("journal_max_bytes", .integer(4096...16_777_216), apply: int(\.journalMaxBytes)),
            ConfigSetting("check_timeout_ms", .integer(10...10_000), apply: int(\.checkTimeoutMs)),
            // event-pipeline.md §9.1
            ConfigSetting("event_queue_max", .integer(1...1_000_000), eventsOnly: true, apply: int(\.eventQueueMax)),
            ConfigSetting("event_max_bytes", .integer(1024...16_777_216), eventsOnly: true,
                          apply: int(\.eventMaxBytes)),
            ConfigSetting("event_timeout_sec", .seconds(1000...day, zeroMeaning: "no limit"), eventsOnly: true,
                          apply: seconds(\.eventTimeoutSec)),
            ConfigSetting("event_max_attempts", .integer(1...100), eventsOnly: true, apply: int(\.eventMaxAttempts)),
            ConfigSetting("channel_max_bytes", .integer(65536...1_073_741_824), eventsOnly: true,
                          apply: int(\.channelMaxBytes)),
        ]
    }
}

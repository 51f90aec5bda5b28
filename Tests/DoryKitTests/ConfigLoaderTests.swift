import DoryState
import Testing
@testable import DoryKit

@Suite struct ConfigLoaderTests {
    // MARK: Defaults and precedence (§12 case 77)

    @Test func defaultsWithNoSource() throws {
        let config = try loadConfig()
        #expect(config == DoryConfig())
        #expect(config.healthPort == 8080)
        #expect(config.stateDir == "./.dory")
        #expect(config.snapshotIntervalSec == 60)
        #expect(config.restartCountOverride == nil)
        #expect(config.configFile == nil)
    }

    @Test func precedenceFlagOverEnvOverYAMLOverDefault() throws {
        let yaml = "health_port: 9000\n"
        let env = ["DORY_HEALTH_PORT": "9100"]
        #expect(try loadConfig(flags: ["health_port": "9200"], env: env, yaml: yaml).healthPort == 9200)
        #expect(try loadConfig(env: env, yaml: yaml).healthPort == 9100)
        #expect(try loadConfig(yaml: yaml).healthPort == 9000)
        #expect(try loadConfig().healthPort == 8080)
    }

    @Test func emptyVariableCountsAsUnset() throws {
        let config = try loadConfig(env: ["DORY_HEALTH_PORT": "", "DORY_STATE_DIR": ""], yaml: "health_port: 9000\n")
        #expect(config.healthPort == 9000)
        #expect(config.stateDir == "./.dory")
    }

    @Test func everySuppliedValueIsValidatedEvenWhenOverridden() {
        let envBad = configError(flags: ["health_port": "9200"], env: ["DORY_HEALTH_PORT": "notaport"])
        #expect(envBad?.description == #"health_port from DORY_HEALTH_PORT="notaport": expected an integer in 0...65535"#)
        let fileBad = configError(env: ["DORY_HEALTH_PORT": "9100"], yaml: "health_port: 0x1F90\n")
        #expect(fileBad?.description == #"health_port from dory.yaml:1="0x1F90": expected an integer in 0...65535"#)
        #expect(fileBad?.source == .file(path: "dory.yaml", line: 1))
    }

    // MARK: §12 case 78: each invalid form, one line naming the source

    @Test func snapshotKeepZeroNamesTheVariable() {
        let error = configError(env: ["DORY_SNAPSHOT_KEEP": "0"])
        #expect(error?.description == #"snapshot_keep from DORY_SNAPSHOT_KEEP="0": expected an integer in 1...100"#)
        #expect(error?.setting == "snapshot_keep")
        #expect(error?.source == .environment("DORY_SNAPSHOT_KEEP"))
    }

    @Test func flagErrorsNameTheFlag() {
        #expect(configError(flags: ["health_port": "x"])?.description
            == #"health_port from --port="x": expected an integer in 0...65535"#)
        #expect(configError(flags: ["health_host": "localhost"])?.description
            == #"health_host from --host="localhost": expected an IP address literal (0.0.0.0 or :: for all interfaces)"#)
        #expect(configError(flags: ["snapshot_keep": "0"])?.description
            == #"snapshot_keep from --snapshot-keep="0": expected an integer in 1...100"#)
        #expect(configError(flags: ["health_port": ""])?.source == .flag("--port"))
    }

    @Test(arguments: ["notaport", "0x1F90", "1_000", "+5", "-5", " 9000", "9000 ", "9000.0", "1e3", "65536",
                      "99999999999999999999999", "٣"])
    func invalidIntegerForms(text: String) {
        for (flags, env, yaml, source) in [
            (["health_port": text], [String: String](), nil as String?, "--port"),
            ([:], ["DORY_HEALTH_PORT": text], nil, "DORY_HEALTH_PORT"),
            ([:], [:], "health_port: '\(text)'\n", "dory.yaml:1"),
        ] {
            let error = configError(flags: flags, env: env, yaml: yaml)
            #expect(error?.setting == "health_port")
            let line = error?.description ?? ""
            #expect(line.hasPrefix("health_port from \(source)="), "\(line)")
            #expect(line.hasSuffix("expected an integer in 0...65535"))
            #expect(!line.contains("\n"))
        }
    }

    @Test(arguments: ["1e3", ".5", "5.", "-1", "+1", "0.0001", "1,5", "inf", "nan", "1 s", "30s", "0x10"])
    func invalidSecondsForms(text: String) {
        let error = configError(env: ["DORY_STARTUP_TIMEOUT_SEC": text])
        #expect(error?.description == "startup_timeout_sec from DORY_STARTUP_TIMEOUT_SEC=\"\(text)\": expected a "
            + "number of seconds in 0.1...3600 (millisecond resolution)")
    }

    @Test func secondsHaveMillisecondResolution() throws {
        #expect(try loadConfig(env: ["DORY_SNAPSHOT_INTERVAL_SEC": "0.05"]).snapshotIntervalSec == 0.05)
        #expect(try loadConfig(env: ["DORY_STARTUP_TIMEOUT_SEC": "1.500000"]).startupTimeoutSec == 1.5)
        #expect(try loadConfig(env: ["DORY_STARTUP_TIMEOUT_SEC": "007"]).startupTimeoutSec == 7)
    }

    @Test func controlCharactersStayOnOneLine() {
        let error = configError(env: ["DORY_SNAPSHOT_KEEP": "1\n2\u{1}"])
        #expect(error?.description == #"snapshot_keep from DORY_SNAPSHOT_KEEP="1\n2\u0001": expected an integer in 1...100"#)
    }

    @Test func longValuesAreCut() {
        let error = configError(env: ["DORY_SNAPSHOT_KEEP": String(repeating: "9", count: 500)])
        #expect((error?.description.count ?? 1000) < 250)
        #expect(error?.description.contains("…") == true)
    }

    // MARK: Every setting's range boundaries

    struct Boundary: Sendable, CustomStringConvertible {
        var name: String
        var valid: [(String, Double)]
        var invalid: [String]
        var read: @Sendable (DoryConfig) -> Double
        var description: String { name }
    }

    static let boundaries: [Boundary] = [
        Boundary(name: "health_port", valid: [("0", 0), ("65535", 65535)], invalid: ["65536"]) { Double($0.healthPort) },
        Boundary(name: "startup_timeout_sec", valid: [("0.1", 0.1), ("3600", 3600)], invalid: ["0.099", "0", "3600.001"]) { $0.startupTimeoutSec },
        Boundary(name: "shutdown_timeout_sec", valid: [("0.1", 0.1), ("300", 300)], invalid: ["0.099", "300.001"]) { $0.shutdownTimeoutSec },
        Boundary(name: "final_save_timeout_sec", valid: [("0.1", 0.1), ("60", 60)], invalid: ["0.099", "60.001"]) { $0.finalSaveTimeoutSec },
        Boundary(name: "state_capture_timeout_sec", valid: [("0.1", 0.1), ("300", 300)], invalid: ["0.099", "300.001"]) { $0.stateCaptureTimeoutSec },
        Boundary(name: "state_max_bytes", valid: [("1024", 1024), ("10485760", 10_485_760)], invalid: ["1023", "10485761"]) { Double($0.stateMaxBytes) },
        Boundary(name: "prestop_drain_sec", valid: [("0", 0), ("300", 300)], invalid: ["300.001"]) { $0.prestopDrainSec },
        Boundary(name: "snapshot_interval_sec", valid: [("0", 0), ("0.01", 0.01), ("86400", 86400)], invalid: ["0.009", "0.001", "86400.001"]) { $0.snapshotIntervalSec },
        Boundary(name: "snapshot_keep", valid: [("1", 1), ("100", 100)], invalid: ["0", "101"]) { Double($0.snapshotKeep) },
        Boundary(name: "snapshot_level", valid: [("0", 0), ("9", 9)], invalid: ["10"]) { Double($0.snapshotLevel) },
        Boundary(name: "snapshot_max_bytes", valid: [("1048576", 1_048_576), ("1073741824", 1_073_741_824)], invalid: ["1048575", "1073741825"]) { Double($0.snapshotMaxBytes) },
        Boundary(name: "quarantine_keep", valid: [("0", 0), ("100", 100)], invalid: ["101"]) { Double($0.quarantineKeep) },
        Boundary(name: "rapid_restart_threshold", valid: [("1", 1), ("100", 100)], invalid: ["0", "101"]) { Double($0.rapidRestartThreshold) },
        Boundary(name: "rapid_restart_window_sec", valid: [("0.1", 0.1), ("86400", 86400)], invalid: ["0.099", "86400.001"]) { $0.rapidRestartWindowSec },
        Boundary(name: "healthy_after_sec", valid: [("0.1", 0.1), ("86400", 86400)], invalid: ["0.099", "86400.001"]) { $0.healthyAfterSec },
        Boundary(name: "backoff_base_sec", valid: [("0", 0), ("300", 300)], invalid: ["3600.001"]) { $0.backoffBaseSec },
        Boundary(name: "backoff_max_sec", valid: [("10", 10), ("3600", 3600)], invalid: ["3600.001"]) { $0.backoffMaxSec },
        Boundary(name: "journal_max_bytes", valid: [("4096", 4096), ("16777216", 16_777_216)], invalid: ["4095", "16777217"]) { Double($0.journalMaxBytes) },
        Boundary(name: "check_timeout_ms", valid: [("10", 10), ("10000", 10000)], invalid: ["9", "10001"]) { Double($0.checkTimeoutMs) },
    ]

    @Test(arguments: boundaries)
    func rangeBoundaries(boundary: Boundary) throws {
        let variable = "DORY_" + boundary.name.uppercased()
        for (text, expected) in boundary.valid {
            let config = try loadConfig(env: [variable: text])
            #expect(boundary.read(config) == expected, "\(boundary.name)=\(text)")
            let fromFile = try loadConfig(yaml: "\(boundary.name): \(text)\n")
            #expect(boundary.read(fromFile) == expected, "\(boundary.name): \(text)")
        }
        for text in boundary.invalid {
            let error = configError(env: [variable: text])
            #expect(error?.setting == boundary.name, "\(boundary.name)=\(text)")
            #expect(error?.description.hasPrefix("\(boundary.name) from \(variable)=\"\(text)\": expected ") == true)
        }
    }

    @Test func expectedTextsOfSecondsSettings() {
        #expect(configError(env: ["DORY_SNAPSHOT_INTERVAL_SEC": "0.001"])?.description
            == #"snapshot_interval_sec from DORY_SNAPSHOT_INTERVAL_SEC="0.001": expected 0 (off) or a number of seconds in 0.01...86400 (millisecond resolution)"#)
        #expect(configError(env: ["DORY_PRESTOP_DRAIN_SEC": "301"])?.description
            == #"prestop_drain_sec from DORY_PRESTOP_DRAIN_SEC="301": expected a number of seconds in 0...300 (millisecond resolution)"#)
    }

    @Test func backoffMaxMustNotBeBelowBase() throws {
        let error = configError(env: ["DORY_BACKOFF_BASE_SEC": "20", "DORY_BACKOFF_MAX_SEC": "10"])
        #expect(error?.setting == "backoff_max_sec")
        #expect(error?.description
            == #"backoff_max_sec from DORY_BACKOFF_MAX_SEC="10": expected a number of seconds ≥ backoff_base_sec (20 from DORY_BACKOFF_BASE_SEC)"#)
        let withDefault = configError(flags: ["backoff_base_sec": "400"])
        #expect(withDefault?.description
            == #"backoff_max_sec from default="300": expected a number of seconds ≥ backoff_base_sec (400 from --backoff-base-sec)"#)
        let equal = try loadConfig(env: ["DORY_BACKOFF_BASE_SEC": "3600", "DORY_BACKOFF_MAX_SEC": "3600"])
        #expect(equal.backoffBaseSec == 3600 && equal.backoffMaxSec == 3600)
    }

    // MARK: Strings: log level, host, paths, tokens, processor id

    @Test(arguments: [("WARNING", LogLevelSetting.warning), ("Warn", .warning), ("warn", .warning),
                      ("TRACE", .trace), ("Debug", .debug), ("info", .info), ("NOTICE", .notice),
                      ("error", .error), ("Critical", .critical)])
    func logLevelIsCaseInsensitive(text: String, level: LogLevelSetting) throws {
        #expect(try loadConfig(env: ["DORY_LOG_LEVEL": text]).logLevel == level)
    }

    @Test func unknownLogLevelIsRejected() {
        #expect(configError(flags: ["log_level": "verbose"])?.description
            == #"log_level from --log-level="verbose": expected one of trace, debug, info, notice, warning, warn, error, critical (any case)"#)
    }

    @Test func hostMustBeAnIPLiteral() throws {
        #expect(try loadConfig(env: ["DORY_HEALTH_HOST": "127.0.0.1"]).healthHost == "127.0.0.1")
        #expect(try loadConfig(env: ["DORY_HEALTH_HOST": "::1"]).healthHost == "::1")
        #expect(try loadConfig(env: ["DORY_HEALTH_HOST": "0.0.0.0"]).healthHost == nil)
        #expect(try loadConfig(env: ["DORY_HEALTH_HOST": "::"]).healthHost == nil)
        #expect(try loadConfig(env: ["DORY_HEALTH_HOST": "0:0::0"]).healthHost == nil)
        for bad in ["localhost", "[::1]", "127.0.0.256", "1.2.3", "fe80::1%eth0"] {
            #expect(configError(env: ["DORY_HEALTH_HOST": bad])?.setting == "health_host", "\(bad)")
        }
    }

    @Test func pathsAndControlSocket() throws {
        let config = try loadConfig(flags: ["state_dir": "/var/lib/dory"], env: ["DORY_CONTROL_SOCKET": "/run/d.sock"])
        #expect(config.stateDir == "/var/lib/dory")
        #expect(config.controlSocket == "/run/d.sock")
        #expect(configError(flags: ["state_dir": ""])?.description
            == #"state_dir from --state-dir="": expected a non-empty path"#)
    }

    @Test func tokensAreValidatedAndNeverEchoed() throws {
        let longest = String(repeating: "a", count: 4096)
        #expect(try loadConfig(env: ["DORY_STATE_TOKEN": longest]).stateToken == longest)
        #expect(try loadConfig(yaml: "control_token: s3cret-token-0123\n").controlToken == "s3cret-token-0123")
        let tooLong = configError(env: ["DORY_STATE_TOKEN": longest + "a"])
        #expect(tooLong?.description
            == "state_token from DORY_STATE_TOKEN (value not shown, 4097 bytes): expected 1...4096 visible ASCII characters")
        let spaced = configError(env: ["DORY_CONTROL_TOKEN": "has space"])
        #expect(spaced?.setting == "control_token")
        #expect(spaced?.description.contains("has space") == false)
        #expect(configError(env: ["DORY_STATE_TOKEN": "é-not-ascii"])?.setting == "state_token")
        #expect(configError(flags: ["state_token": "abc"])?.description
            == "state_token has no flag (kept off the command line): set DORY_STATE_TOKEN or the YAML key state_token")
    }

    @Test func shortTokensWarn() throws {
        let config = try loadConfig(env: ["DORY_STATE_TOKEN": "short", "DORY_CONTROL_TOKEN": "0123456789abcdef"])
        #expect(config.warnings == ["state_token is shorter than 16 characters"])
    }

    @Test func processorIdRule() throws {
        // §12 case 4
        let error = configError(env: ["DORY_PROCESSOR_ID": "../x"])
        #expect(error?.setting == "processor_id")
        #expect(error?.description.hasPrefix(#"processor_id from DORY_PROCESSOR_ID="../x": expected 1...253"#) == true)
        #expect(try loadConfig(flags: ["processor_id": "orders-api"]).processorId == "orders-api")
        #expect(configError(env: ["PROCESSOR_ID": "Bad"])?.source == .environment("PROCESSOR_ID"))
        #expect(try loadConfig(env: ["PROCESSOR_ID": "ok-1"]).processorId == nil)
    }

    @Test func restartCount() throws {
        // §12 case 5
        #expect(try loadConfig(env: ["RESTART_COUNT": "5"]).restartCountOverride == 5)
        #expect(try loadConfig(env: ["RESTART_COUNT": "0"]).restartCountOverride == 0)
        #expect(try loadConfig(env: ["RESTART_COUNT": ""]).restartCountOverride == nil)
        for bad in ["-1", "x", "1.5", "+3"] {
            let error = configError(env: ["RESTART_COUNT": bad])
            #expect(error?.description.hasPrefix("restart_count from RESTART_COUNT=\"\(bad)\": expected a non-negative integer") == true)
        }
    }

    @Test func unknownFlagIsRejected() {
        #expect(configError(flags: ["helth_port": "1"])?.description == #"unknown flag for setting "helth_port""#)
        #expect(configError(flags: ["event_queue_max": "5"])?.setting == "event_queue_max")
    }

    // MARK: Config file location and reading

    @Test func configFileFlagBeatsVariable() throws {
        var loader = ConfigLoader(flags: ["config_file": "flag.yaml"],
                                  environment: ["DORY_CONFIG_FILE": "env.yaml"])
        loader.readFile = { path throws(ConfigFileReadError) in
            guard path == "flag.yaml" else { throw ConfigFileReadError(errno: 2) }
            return Array("health_port: 9300\n".utf8)
        }
        let config = try loader.load()
        #expect(config.healthPort == 9300)
        #expect(config.configFile == "flag.yaml")
    }

    @Test func missingConfigFileNamesTheFlagAndErrno() {
        let path = "/nonexistent-dory-dir/config.yaml"
        let fromFlag = ConfigLoader(flags: ["config_file": path], environment: [:])
        #expect(throws: ConfigError(setting: "config_file", source: .flag("--config"),
                                    description: "config_file from --config=\"\(path)\": cannot read: No such file or directory")) {
            try fromFlag.load()
        }
        let fromEnv = ConfigLoader(environment: ["DORY_CONFIG_FILE": path])
        #expect(throws: ConfigError(setting: "config_file", source: .environment("DORY_CONFIG_FILE"),
                                    description: "config_file from DORY_CONFIG_FILE=\"\(path)\": cannot read: No such file or directory")) {
            try fromEnv.load()
        }
        let directory = ConfigLoader(flags: ["config_file": "/"], environment: [:])
        #expect(throws: ConfigError.self) { try directory.load() }
    }

    @Test func readsARealFile() throws {
        let path = "/tmp/dory-config-test-\(getpid()).yaml"
        let text = "# doryd\nhealth_port: 9400\nsnapshot_keep: 010\n"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        #expect(fd >= 0)
        _ = text.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
        close(fd)
        defer { unlink(path) }
        let config = try ConfigLoader(flags: ["config_file": path], environment: [:]).load()
        #expect(config.healthPort == 9400)
        #expect(config.snapshotKeep == 10)
    }

    // MARK: Event workload settings

    @Test func eventSettingsOnlyWhenAllowed() throws {
        let env = ["DORY_EVENT_QUEUE_MAX": "0"]
        #expect(try loadConfig(env: env).eventQueueMax == 10_000) // not a setting of this command: ignored
        #expect(configError(env: env, allowEvents: true)?.description
            == #"event_queue_max from DORY_EVENT_QUEUE_MAX="0": expected an integer in 1...1000000"#)
        let config = try loadConfig(flags: ["event_timeout_sec": "0"], env: ["DORY_CHANNEL_MAX_BYTES": "65536"],
                                    yaml: "event_max_bytes: 2048\nevent_max_attempts: 7\n", allowEvents: true)
        #expect(config.eventTimeoutSec == 0)
        #expect(config.channelMaxBytes == 65536)
        #expect(config.eventMaxBytes == 2048)
        #expect(config.eventMaxAttempts == 7)
        #expect(configError(yaml: "event_max_bytes: 2048\n")?.description == #"unknown setting "event_max_bytes" in dory.yaml:1"#)
        #expect(configError(env: ["DORY_EVENT_TIMEOUT_SEC": "0.5"], allowEvents: true)?.description
            == #"event_timeout_sec from DORY_EVENT_TIMEOUT_SEC="0.5": expected 0 (no limit) or a number of seconds in 1...86400 (millisecond resolution)"#)
    }
}

#if canImport(Glibc)
import Glibc
#endif

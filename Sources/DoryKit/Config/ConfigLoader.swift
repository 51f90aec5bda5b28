#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds a ``DoryConfig`` from command-line flags, the environment and the YAML file (spec/dory-runtime.md §10).
///
/// Precedence, highest first: flags > `DORY_*` environment > YAML > defaults. Every supplied value is validated,
/// even one a higher source overrides; an empty variable counts as unset, as does an empty YAML value. The first
/// problem found becomes a ``ConfigError`` (exit 2) whose description is one line naming the setting, where the
/// value came from and what is accepted. Problems are looked for in this order: unknown flags, the config file
/// (location, reading, YAML syntax, keys in document order), then each setting in the table's order (flag,
/// variable, file), `RESTART_COUNT`, `PROCESSOR_ID`, and last `backoff_max_sec ≥ backoff_base_sec`.
public struct ConfigLoader {
    /// Flag values keyed by setting name (`health_port` → "9200", `config_file` → the `--config` path,
    /// `log_level` from `DoryApp(configFile:logLevel:)` included), as the CLI layer parsed them.
    public var flags: [String: String]
    /// The process environment.
    public var environment: [String: String]
    /// Whether the `events:` section and the event workload's flat settings are accepted (`doryd events`,
    /// `doryd invoke`); otherwise they are rejected like unknown keys, naming the key.
    public var allowEvents: Bool
    /// YAML keys of a workload's own settings (run mode's options): accepted as flat scalars and handed back raw
    /// in ``DoryConfig/workloadSettings`` for the workload to validate.
    public var workloadKeys: Set<String> = []
    /// Reads the config file; replaceable in tests. Throws the `strerror` text.
    public var readFile: (String) throws(ConfigFileReadError) -> [UInt8]

    /// Largest config file read.
    public static let maxFileBytes = 4 * 1024 * 1024

    public init(flags: [String: String] = [:], environment: [String: String], allowEvents: Bool = false) {
        self.flags = flags
        self.environment = environment
        self.allowEvents = allowEvents
        self.readFile = ConfigLoader.readWholeFile
    }

    /// Loads, validates and merges every source.
    public func load() throws(ConfigError) -> DoryConfig {
        let settings = ConfigSetting.all.filter { allowEvents || !$0.eventsOnly }
        let byName = Dictionary(uniqueKeysWithValues: settings.map { ($0.name, $0) })
        try checkFlagNames(byName)

        var config = DoryConfig()
        let fileValues = try readConfigFile(into: &config, settings: byName)

        for setting in settings {
            var chosen: ConfigSetting.Value?
            if let flag = setting.flag, let text = flags[setting.name] {
                let value = try parse(setting, text, from: .flag(flag))
                chosen = chosen ?? value
            }
            if let text = environment[setting.variable], !text.isEmpty {
                let value = try parse(setting, text, from: .environment(setting.variable))
                chosen = chosen ?? value
            }
            if let (scalar, path) = fileValues[setting.name] {
                let value = try parse(setting, scalar.text, from: .file(path: path, line: scalar.line))
                chosen = chosen ?? value
            }
            if let chosen { setting.apply(&config, chosen) }
        }

        if let text = environment["RESTART_COUNT"], !text.isEmpty {
            guard let count = SettingSyntax.decimalInteger(text), count <= Int(Int32.max) else {
                throw ConfigError.invalid("restart_count", .environment("RESTART_COUNT"), value: text,
                                          expected: "a non-negative integer in 0...\(Int32.max)")
            }
            config.restartCountOverride = count
        }
        if let text = environment["PROCESSOR_ID"], !text.isEmpty, !ProcessorID.isValid(text) {
            throw ConfigError.invalid("processor_id", .environment("PROCESSOR_ID"), value: text,
                                      expected: ProcessorID.ruleText)
        }
        if config.backoffMaxSec < config.backoffBaseSec {
            let maxSource = source(of: "backoff_max_sec", byName, fileValues)
            let baseSource = source(of: "backoff_base_sec", byName, fileValues)
            throw ConfigError(
                setting: "backoff_max_sec", source: maxSource,
                description: "backoff_max_sec from \(maxSource)="
                    + "\(ConfigText.quoted(SettingSyntax.secondsText(milliseconds: Int64(config.backoffMaxSec * 1000))))"
                    + ": expected a number of seconds ≥ backoff_base_sec "
                    + "(\(SettingSyntax.secondsText(milliseconds: Int64(config.backoffBaseSec * 1000))) from \(baseSource))")
        }
        return config
    }

    // MARK: - Steps

    private func checkFlagNames(_ byName: [String: ConfigSetting]) throws(ConfigError) {
        for name in flags.keys.sorted() where name != "config_file" {
            guard let setting = byName[name] else {
                throw ConfigError(setting: name, source: nil,
                                  description: "unknown flag for setting \(ConfigText.quoted(name))")
            }
            guard setting.flag != nil else {
                throw ConfigError(setting: name, source: nil,
                                  description: "\(name) has no flag (kept off the command line): "
                                      + "set \(setting.variable) or the YAML key \(name)")
            }
        }
    }

    /// Finds, reads and parses the YAML file; applies the `events:` section; returns the flat settings' scalars.
    private func readConfigFile(into config: inout DoryConfig, settings: [String: ConfigSetting])
        throws(ConfigError) -> [String: (YAMLScalar, String)]
    {
        let location: (path: String, source: ConfigValueSource)
        if let flagPath = flags["config_file"] {
            guard !flagPath.isEmpty else {
                throw ConfigError.invalid("config_file", .flag("--config"), value: flagPath,
                                          expected: "a readable YAML file")
            }
            location = (flagPath, .flag("--config"))
        } else if let envPath = environment["DORY_CONFIG_FILE"], !envPath.isEmpty {
            location = (envPath, .environment("DORY_CONFIG_FILE"))
        } else {
            return [:]
        }
        config.configFile = location.path
        let prefix = "config_file from \(location.source)=\(ConfigText.quoted(location.path))"

        let bytes: [UInt8]
        do {
            bytes = try readFile(location.path)
        } catch {
            throw ConfigError(setting: "config_file", source: location.source,
                              description: "\(prefix): cannot read: \(error.message)")
        }
        let root: YAMLNode?
        do {
            root = try YAMLDocument.parse(bytes)
        } catch {
            throw ConfigError(setting: "config_file", source: location.source,
                              description: "\(prefix): invalid YAML at \(error)")
        }
        let entries: [YAMLMappingEntry]
        switch root {
        case nil:
            entries = []
        case .scalar(let scalar) where scalar.isPlain && scalar.text.isEmpty:
            entries = []
        case .mapping(let list, _):
            entries = list
        case let node?:
            throw ConfigError(setting: "config_file", source: location.source,
                              description: "\(prefix): the top level must be a mapping of settings, "
                                  + "not \(node.kindDescription) (line \(node.line))")
        }

        let path = location.path
        var values: [String: (YAMLScalar, String)] = [:]
        for entry in entries {
            let key = entry.key.text
            let at = ConfigValueSource.file(path: path, line: entry.key.line)
            if key == "events" {
                guard allowEvents else {
                    throw ConfigError(setting: "events", source: at,
                                      description: "events from \(at): only doryd events and doryd invoke "
                                          + "read an events section")
                }
                do {
                    config.eventsSection = try YAMLCoreSchema.jsonValue(entry.value)
                } catch {
                    throw ConfigError(setting: "events", source: at,
                                      description: "events from \(at): invalid value at \(error)")
                }
                continue
            }
            if key == "config_file" {
                throw ConfigError(setting: key, source: at,
                                  description: "config_file from \(at): cannot be set inside the config file")
            }
            guard settings[key] != nil || workloadKeys.contains(key) else {
                throw ConfigError(setting: key, source: at,
                                  description: "unknown setting \(ConfigText.quoted(key)) in \(at)")
            }
            guard case .scalar(let scalar) = entry.value else {
                throw ConfigError(setting: key, source: at,
                                  description: "\(key) from \(at): expected a single value, "
                                      + "not \(entry.value.kindDescription)")
            }
            if scalar.text.isEmpty { continue } // an empty value counts as unset
            if settings[key] == nil {
                config.workloadSettings[key] = WorkloadSettingText(text: scalar.text, source: "\(at)")
                continue
            }
            values[key] = (scalar, path)
        }
        return values
    }

    private func parse(_ setting: ConfigSetting, _ text: String, from source: ConfigValueSource)
        throws(ConfigError) -> ConfigSetting.Value
    {
        if let value = setting.parse(text) { return value }
        if setting.isSecret {
            throw ConfigError(setting: setting.name, source: source,
                              description: "\(setting.name) from \(source) (value not shown, "
                                  + "\(text.utf8.count) bytes): expected \(setting.expectedText)")
        }
        throw ConfigError.invalid(setting.name, source, value: text, expected: setting.expectedText)
    }

    /// Where the effective value of `name` came from.
    private func source(of name: String, _ byName: [String: ConfigSetting],
                        _ fileValues: [String: (YAMLScalar, String)]) -> ConfigValueSource
    {
        guard let setting = byName[name] else { return .defaultValue }
        if let flag = setting.flag, flags[name] != nil { return .flag(flag) }
        if let text = environment[setting.variable], !text.isEmpty { return .environment(setting.variable) }
        if let (scalar, path) = fileValues[name] { return .file(path: path, line: scalar.line) }
        return .defaultValue
    }

    // MARK: - File reading

    /// Reads a whole regular file (at most ``maxFileBytes``).
    public static func readWholeFile(_ path: String) throws(ConfigFileReadError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ConfigFileReadError(errno: errno) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ConfigFileReadError(errno: errno) }
        if (info.st_mode & S_IFMT) == S_IFDIR { throw ConfigFileReadError(errno: EISDIR) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw ConfigFileReadError(errno: errno)
            }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > maxFileBytes {
                throw ConfigFileReadError(message: "larger than \(maxFileBytes) bytes")
            }
        }
    }
}

/// Why the config file could not be read: the `strerror` text, or a size limit.
public struct ConfigFileReadError: Error, Sendable, Equatable {
    public var message: String
    public init(message: String) { self.message = message }
    public init(errno code: Int32) { self.message = String(cString: strerror(code)) }
}

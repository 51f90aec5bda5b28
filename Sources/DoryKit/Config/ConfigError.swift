/// Where a setting's value came from: for messages, so a user knows which knob to turn.
public enum ConfigValueSource: Sendable, Equatable, CustomStringConvertible {
    /// A command-line flag, e.g. `--port` (arguments of `DoryApp(configFile:logLevel:)` count as flags).
    case flag(String)
    /// An environment variable, e.g. `DORY_HEALTH_PORT`.
    case environment(String)
    /// A line of the YAML configuration file.
    case file(path: String, line: Int)
    /// The built-in default.
    case defaultValue

    public var description: String {
        switch self {
        case .flag(let name): name
        case .environment(let name): name
        case .file(let path, let line): "\(ConfigText.oneLine(path)):\(line)"
        case .defaultValue: "default"
        }
    }
}

/// A configuration error (exit 2, spec/dory-runtime.md §10). `description` is exactly one line naming the setting,
/// where the value came from and what is accepted, e.g.
/// `snapshot_keep from DORY_SNAPSHOT_KEEP="0": expected an integer in 1...100`.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The setting or YAML key concerned (`health_port`, `events`, an unknown key, `config_file`, `restart_count`).
    public var setting: String
    /// Where the offending value came from, when there is one.
    public var source: ConfigValueSource?
    /// The one-line message.
    public var description: String

    public init(setting: String, source: ConfigValueSource?, description: String) {
        self.setting = setting
        self.source = source
        self.description = ConfigText.oneLine(description)
    }

    /// `<setting> from <source>="<value>": expected <accepted>`.
    static func invalid(_ setting: String, _ source: ConfigValueSource, value: String, expected: String) -> ConfigError {
        ConfigError(setting: setting, source: source,
                    description: "\(setting) from \(source)=\(ConfigText.quoted(value)): expected \(expected)")
    }
}

/// Text helpers for configuration messages.
enum ConfigText {
    /// Longest value echoed in a message; longer ones are cut with `…`.
    static let maxEchoedCharacters = 120

    /// A double-quoted rendering of `value` with control characters escaped, so a message stays one line.
    static func quoted(_ value: String) -> String {
        var out = "\""
        var count = 0
        for scalar in value.unicodeScalars {
            if count == maxEchoedCharacters {
                out += "…"
                break
            }
            count += 1
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += "\\u" + hex4(scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// `text` with line breaks and other control characters escaped.
    static func oneLine(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F { out += "\\u" + hex4(scalar.value) } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    private static func hex4(_ value: UInt32) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(value >> 12 & 0xF)], digits[Int(value >> 8 & 0xF)],
                       digits[Int(value >> 4 & 0xF)], digits[Int(value & 0xF)]])
    }
}

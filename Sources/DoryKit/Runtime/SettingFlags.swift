/// Turns setting flags on a command line (`--port 9200`, `--port=9200`, `--config FILE`) into the flag dictionary of
/// ``ConfigLoader`` (keyed by setting name), using the settings table itself, so a new setting needs no CLI change.
public enum SettingFlags {
    /// - Parameter allowEvents: accept the event workload's settings.
    /// - Throws: ``ConfigError`` for an unknown flag or a flag without a value.
    public static func parse(_ arguments: [String], allowEvents: Bool = false) throws(ConfigError) -> [String: String] {
        var byFlag: [String: String] = ["--config": "config_file", "--processor": "processor_id"]
        for setting in ConfigSetting.all where allowEvents || !setting.eventsOnly {
            if let flag = setting.flag { byFlag[flag] = setting.name }
        }
        var result: [String: String] = [:]
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            var flag = argument
            var value: String?
            if let eq = argument.firstIndex(of: "=") {
                flag = String(argument[..<eq])
                value = String(argument[argument.index(after: eq)...])
            }
            guard flag.hasPrefix("--"), let name = byFlag[flag] else {
                throw ConfigError(setting: flag, source: nil, description: "unknown flag \(ConfigText.quoted(argument))")
            }
            if value == nil {
                guard i + 1 < arguments.count else {
                    throw ConfigError(setting: name, source: .flag(flag), description: "\(name) from \(flag): a value is required")
                }
                i += 1
                value = arguments[i]
            }
            result[name] = value
            i += 1
        }
        return result
    }

    /// Every flag name the daemon accepts, for help texts.
    public static func names(allowEvents: Bool = false) -> [String] {
        ConfigSetting.all.filter { allowEvents || !$0.eventsOnly }.compactMap(\.flag) + ["--config"]
    }
}

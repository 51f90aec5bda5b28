@testable import DoryKit

/// Loads a configuration with an in-memory YAML file (named `dory.yaml`) when `yaml` is given.
func loadConfig(flags: [String: String] = [:], env: [String: String] = [:], yaml: String? = nil,
                allowEvents: Bool = false) throws(ConfigError) -> DoryConfig
{
    var environment = env
    if yaml != nil, flags["config_file"] == nil, environment["DORY_CONFIG_FILE"] == nil {
        environment["DORY_CONFIG_FILE"] = "dory.yaml"
    }
    var loader = ConfigLoader(flags: flags, environment: environment, allowEvents: allowEvents)
    let text = yaml ?? ""
    loader.readFile = { path throws(ConfigFileReadError) in
        guard yaml != nil else { throw ConfigFileReadError(errno: 2) }
        return Array(text.utf8)
    }
    return try loader.load()
}

/// The error of a load that must fail, or nil when it succeeded.
func configError(flags: [String: String] = [:], env: [String: String] = [:], yaml: String? = nil,
                 allowEvents: Bool = false) -> ConfigError?
{
    do {
        _ = try loadConfig(flags: flags, env: env, yaml: yaml, allowEvents: allowEvents)
        return nil
    } catch {
        return error
    }
}

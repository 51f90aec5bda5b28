import ArgumentParser
import DoryKit
import DorySupervisor

#if canImport(Glibc)
import Glibc
#endif

/// `doryd run [options] -- CMD ARGS…` (spec/supervise.md): wiring to `CommandWorkload`. The arguments are split by
/// hand before ArgumentParser sees them, since everything after `--` is the command, verbatim.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Supervise any program as PID 1 with a state API on a Unix socket.",
        usage: "doryd run [options] -- CMD ARGS…",
        discussion: "Run options: " + RunSetting.allCases.map(\.flag).joined(separator: " ")
            + ". Setting flags: " + SettingFlags.names().joined(separator: " ")
    )

    @Argument(parsing: .captureForPassthrough) var arguments: [String] = []

    func run() throws {
        throw CommandExit(code: ExitCode.invalidConfiguration)
    }

    /// Runs the command and returns doryd's exit code.
    static func execute(_ arguments: [String]) async -> Int32 {
        // Step (a), run-mode part: no job control in a container; only 0, 1 and 2 cross into the child (§2.2).
        signal(SIGTTIN, SIG_IGN)
        signal(SIGTTOU, SIG_IGN)
        signal(SIGTSTP, SIG_IGN)
        ChildSpawner.fillStandardDescriptors()
        ChildSpawner.markInheritedDescriptorsCloseOnExec()

        if arguments.first == "--help" || arguments.first == "-h" {
            print(Doryd.helpMessage(for: Run.self))
            return 0
        }
        // Split the options before `--` into run options and runtime setting flags.
        let separator = arguments.firstIndex(of: "--") ?? arguments.endIndex
        var runArguments: [String] = []
        var settingArguments: [String] = []
        var index = 0
        while index < separator {
            let argument = arguments[index]
            let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
            let setting = RunSetting.allCases.first { $0.flag == name }
            let takesValue = !argument.contains("=") && !(setting?.isSwitch ?? false) && index + 1 < separator
            var group = [argument]
            if takesValue {
                group.append(arguments[index + 1])
                index += 1
            }
            index += 1
            // `--control-socket` is also the runtime's setting: the runtime binds it.
            if let setting, setting != .controlSocket { runArguments += group } else { settingArguments += group }
        }

        // The YAML file, then the environment, then the command line (§11): each later source overrides, every
        // value is validated.
        var options = RunOptions()
        var environment: [String: String] = [:]
        for entry in ChildEnvironment.current() {
            let parts = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2 { environment[String(parts[0])] = String(parts[1]) }
        }
        let runKeys = Set(RunSetting.allCases.filter { $0 != .controlSocket }.map(\.settingName))
        let flags: [String: String]
        let config: DoryConfig
        do {
            flags = try SettingFlags.parse(settingArguments)
            var loader = ConfigLoader(flags: flags, environment: environment)
            loader.workloadKeys = runKeys
            config = try loader.load()
        } catch {
            return DoryRuntime.reportConfigError(error)
        }
        let command: [String]
        do throws(RunOptionError) {
            for setting in RunSetting.allCases where setting != .controlSocket {
                if let value = config.workloadSettings[setting.settingName] {
                    try options.set(setting, to: value.text, writtenAs: "\(setting.settingName) from \(value.source)")
                }
            }
            for setting in RunSetting.allCases where setting != .controlSocket {
                if let text = environment[setting.environmentVariable], !text.isEmpty {
                    try options.set(setting, to: text, writtenAs: setting.environmentVariable)
                }
            }
            (options, command) = try options.parsingCommandLine(runArguments + Array(arguments[separator...]))
        } catch {
            return DoryRuntime.reportConfigError(ConfigError(setting: error.option, source: nil, description: error.description))
        }
        if config.snapshotMaxBytes < config.stateMaxBytes + 4096 {
            return DoryRuntime.reportConfigError(ConfigError(
                setting: "snapshot_max_bytes", source: nil,
                description: "snapshot_max_bytes (\(config.snapshotMaxBytes)) must be at least state_max_bytes (\(config.stateMaxBytes)) + 4096 in run mode"))
        }
        DoryLogging.bootstrap()  // before the workload creates its loggers
        let workload = CommandWorkload(options: options, command: command, inheritedEnvironment: ChildEnvironment.current())
        return await DoryRuntime.run(workload, DoryRuntime.Launch(flags: flags, workloadKeys: runKeys))
    }
}

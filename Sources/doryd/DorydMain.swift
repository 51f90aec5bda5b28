import ArgumentParser
import Dispatch
import DoryKit

#if canImport(Glibc)
import Glibc
#endif

/// Process entry: signals first (spec §5.1), then the command, then exit with its code.
enum DorydMain {
    static func start() -> Never {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let runMode = arguments.first == "run"
        SignalRouter.install(signals: runMode ? SignalRouter.standardSignals + SignalRouter.runModeSignals : SignalRouter.standardSignals)
        Task {
            let code = await execute(arguments)
            exit(code)
        }
        SignalRouter.parkMainThread()
    }

    static func execute(_ arguments: [String]) async -> Int32 {
        if arguments.first == "run" { return await Run.execute(Array(arguments.dropFirst())) }
        let command: any ParsableCommand
        do {
            command = try Doryd.parseAsRoot(arguments)
        } catch {
            let code = Doryd.exitCode(for: error)
            if code == .success {
                print(Doryd.fullMessage(for: error))
                return 0
            }
            StandardStreams.writeError(Doryd.message(for: error))
            return ExitCode.invalidConfiguration
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                var syncCommand = command
                try syncCommand.run()
            }
            return 0
        } catch let exit as CommandExit {
            return exit.code
        } catch {
            let code = Doryd.exitCode(for: error)
            if code == .success { print(Doryd.fullMessage(for: error)); return 0 }
            StandardStreams.writeError(Doryd.message(for: error))
            return ExitCode.invalidConfiguration
        }
    }
}

/// Ends a command with an exit code (thrown so that `run()` stays a plain throwing function).
struct CommandExit: Error {
    let code: Int32
}

struct Doryd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doryd",
        abstract: "A pod supervisor: probes, graceful shutdown with a durable save, snapshots, restart recovery.",
        version: DoryKitVersion.version,
        subcommands: [Demo.self, Run.self, Events.self, Invoke.self, Prestop.self, StateCommand.self]
    )
}

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the built-in counter processor ({\"counter\": N}, +1 every 100 ms).",
        discussion: "Setting flags: " + SettingFlags.names().joined(separator: " ")
    )

    @Option(name: .customLong("state-bytes"), help: "Pad the state to about this many bytes (benches, crash tests).")
    var stateBytes: Int = 0

    @Argument(parsing: .allUnrecognized, help: "Setting flags, e.g. --port 9000 --state-dir ./.dory")
    var settings: [String] = []

    func run() async throws {
        let flags: [String: String]
        do {
            flags = try SettingFlags.parse(settings)
        } catch {
            throw CommandExit(code: DoryRuntime.reportConfigError(error))
        }
        guard stateBytes >= 0 else {
            throw CommandExit(code: DoryRuntime.reportConfigError(ConfigError(setting: "state_bytes", source: .flag("--state-bytes"), description: "state_bytes from --state-bytes=\"\(stateBytes)\": expected a non-negative integer")))
        }
        let code = await DoryRuntime.run(DemoWorkload.make(paddingBytes: stateBytes), DoryRuntime.Launch(flags: flags))
        throw CommandExit(code: code)
    }
}

struct Prestop: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send POST /prestop to a running doryd over its control socket (for exec preStop hooks).",
        discussion: "Resolves the socket as the daemon does: --control-socket, DORY_CONTROL_SOCKET, or <state_dir>/<processor_id>/control.sock."
    )

    @Argument(parsing: .allUnrecognized, help: "--state-dir D, --processor-id ID, --control-socket PATH, --config FILE")
    var settings: [String] = []

    func run() throws {
        let flags: [String: String]
        do {
            flags = try SettingFlags.parse(settings)
        } catch {
            throw CommandExit(code: DoryRuntime.reportConfigError(error))
        }
        throw CommandExit(code: PrestopClient.run(flags: flags))
    }
}

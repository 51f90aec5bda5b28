#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DoryKit

/// The entry point of an event-driven program (event-pipeline.md §4.7), the counterpart of ``DoryApp`` for an
/// ``Application``:
///
///     try await DoryEventsApp(configFile: nil, logLevel: nil).run(MyApp.self)
///
/// It reads the configuration exactly as `doryd events` does (runtime §10 and the `events:` section): the two
/// arguments count as flags, and a setting flag on the program's command line (`--config b.yaml`, `--port 9000`,
/// …) still wins. It creates the one instance with `MyApp()` and runs the event workload under the runtime's
/// lifecycle; the process exits with the code of runtime §5.5. Create it first thing in `main`: its initializer
/// blocks the handled signals before other threads start (runtime §5.1).
public struct DoryEventsApp: Sendable {
    /// Settings from the arguments, keyed by setting name (`config_file`, `log_level`).
    public var flags: [String: String]
    /// The program's own arguments (without its name), parsed as setting flags at `run`.
    public var arguments: [String]

    public init(configFile: String? = nil, logLevel: String? = nil) {
        self.init(configFile: configFile, logLevel: logLevel, arguments: Array(CommandLine.arguments.dropFirst()))
    }

    /// Like ``init(configFile:logLevel:)`` with explicit command-line arguments instead of the process's.
    public init(configFile: String?, logLevel: String?, arguments: [String]) {
        SignalRouter.install()
        var flags: [String: String] = [:]
        if let configFile { flags["config_file"] = configFile }
        if let logLevel { flags["log_level"] = logLevel }
        self.flags = flags
        self.arguments = arguments
    }

    /// The flags the runtime reads: the arguments', overridden by the command line's. An unknown or malformed flag
    /// on the command line is a configuration error (exit 2).
    public func resolvedFlags() throws(ConfigError) -> [String: String] {
        let commandLine = try SettingFlags.parse(arguments, allowEvents: true)
        return flags.merging(commandLine) { _, real in real }
    }

    /// Runs the application until the runtime stops, then exits the process with its code.
    public func run<A: Application>(_ type: A.Type) async throws -> Never {
        exit(await runReturningCode(type))
    }

    /// Like ``run(_:)``, from synchronous top-level code: `DoryEventsApp().start(MyApp.self)` as the only statement
    /// of `main.swift`; it parks the main thread with the handled signals blocked (see ``DoryApp/start(_:)``).
    public func start<A: Application>(_ type: A.Type) -> Never {
        let app = self
        Task { exit(await app.runReturningCode(type)) }
        SignalRouter.parkMainThread()
    }

    private func runReturningCode<A: Application>(_ type: A.Type) async -> Int32 {
        let flags: [String: String]
        do throws(ConfigError) {
            flags = try resolvedFlags()
        } catch {
            return DoryRuntime.reportConfigError(error)
        }
        return await EventsHost.run(flags: flags, application: type)
    }
}

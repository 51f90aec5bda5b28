#if canImport(Glibc)
import Glibc
#endif

/// The entry point of a Swift processor program:
///
///     try await DoryApp(configFile: nil, logLevel: nil).run(Counter.self)
///
/// doryd builds the context, then the instance, and runs the lifecycle of spec/dory-runtime.md §2; the process
/// exits with the code of §5.5 when it ends. Create the `DoryApp` first thing in `main`: its initializer blocks the
/// handled signals before other threads start (§5.1).
public struct DoryApp: Sendable {
    /// Arguments count as flags (a real flag still wins): `config_file`, `log_level`.
    public var flags: [String: String]

    public init(configFile: String? = nil, logLevel: String? = nil) {
        SignalRouter.install()
        var flags: [String: String] = [:]
        if let configFile { flags["config_file"] = configFile }
        if let logLevel { flags["log_level"] = logLevel }
        self.flags = flags
    }

    /// Runs a processor class until it stops, then exits the process.
    public func run<P: Processor>(_ type: P.Type) async throws -> Never {
        let code = await DoryRuntime.run(ProcessorWorkload(type), DoryRuntime.Launch(flags: flags))
        exit(code)
    }

    /// Like `run(_:)`, from synchronous top-level code: `DoryApp().start(Counter.self)` as the only statement of
    /// `main.swift`. Prefer it: it parks the main thread with the handled signals blocked, where Swift's async
    /// `main` parks it inside libdispatch with an empty signal mask, so a SIGTERM during the first milliseconds
    /// could meet the default action instead of doryd's shutdown sequence.
    public func start<P: Processor>(_ type: P.Type) -> Never {
        let flags = self.flags
        Task {
            exit(await DoryRuntime.run(ProcessorWorkload(type), DoryRuntime.Launch(flags: flags)))
        }
        SignalRouter.parkMainThread()
    }

    /// The function-style API (spec §3.7): explicit state values and a closure that receives the context.
    public func run(states: [any AnyStateValue], _ body: @escaping @Sendable (ExecutionContext) async throws -> Void) async throws -> Never {
        let code = await DoryRuntime.run(ClosureWorkload(states: states, body: body), DoryRuntime.Launch(flags: flags))
        exit(code)
    }
}

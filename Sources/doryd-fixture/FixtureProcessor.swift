import Dispatch
import DoryKit
import DoryState

#if canImport(Glibc)
import Glibc
#endif

/// Entry of `doryd-fixture`: settings flags on the command line, behaviour from `FIXTURE_*` variables
/// (`FIXTURE_APP=events-full`: the event application of FixtureEventsApp.swift).
enum FixtureMain {
    static func start() -> Never {
        if FixtureEventsMain.selected { FixtureEventsMain.start() }
        SignalRouter.install()
        Task {
            let flags: [String: String]
            do throws(ConfigError) {
                flags = try SettingFlags.parse(Array(CommandLine.arguments.dropFirst()))
            } catch {
                exit(DoryRuntime.reportConfigError(error))
            }
            let workload: any Workload
            if Fixture.flag("FIXTURE_FUNCTION_API") {
                let a = StateValue("alpha", 0)
                let b = StateValue("beta", "")
                var states: [any AnyStateValue] = [a, b]
                if Fixture.flag("FIXTURE_DUPLICATE_KEY") { states.append(StateValue("alpha", 1)) }
                workload = DoryRuntime.functionWorkload(states: states) { context in
                    for await i in context.runLoop(interval: .milliseconds(50)) {
                        a.update { $0 += 1 }
                        b.value = "tick-\(i)"
                    }
                }
            } else if Fixture.flag("FIXTURE_DUPLICATE_KEY") {
                workload = DoryRuntime.processorWorkload(DuplicateKeyProcessor.self)
            } else {
                workload = DoryRuntime.processorWorkload(FixtureProcessor.self)
            }
            exit(await DoryRuntime.run(workload, DoryRuntime.Launch(flags: flags)))
        }
        SignalRouter.parkMainThread()
    }
}

/// Reads `FIXTURE_*` settings.
enum Fixture {
    static func value(_ name: String) -> String? {
        guard let raw = getenv(name) else { return nil }
        let text = String(cString: raw)
        return text.isEmpty ? nil : text
    }
    static func flag(_ name: String) -> Bool { value(name) == "1" || value(name) == "true" }
    static func seconds(_ name: String) -> Double? { value(name).flatMap(Double.init) }

    /// Every hook call is logged, so tests can check order and counts.
    /// The processor's own `level` metadata is a reserved key: doryd writes it as `x_level` (spec §9.2).
    static func hook(_ context: ExecutionContext, _ name: String) {
        context.logger.info("fixture hook", metadata: ["fixture_hook": .string(name), "level": "processor-supplied"])
    }

    static func sleep(_ seconds: Double) async {
        try? await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// The counter processor with every hook instrumented and each misbehaviour selectable:
/// `FIXTURE_STARTUP_SLEEP_SEC`, `FIXTURE_STARTUP_THROW`, `FIXTURE_SHUTDOWN_SLEEP_SEC`, `FIXTURE_SHUTDOWN_THROW`,
/// `FIXTURE_RUN` (`loop` default, `idle` (state never changes), `ignore_flag`, `spin`, `return`, `throw`), `FIXTURE_GETSTATE_SLEEP_SEC`,
/// `FIXTURE_GETSTATE_THROW`, `FIXTURE_NAN`, `FIXTURE_DOUBLE`, `FIXTURE_RESTORE_THROW`, `FIXTURE_RESTORE_HOOK`
/// (`false` refuses), `FIXTURE_RAPID_HOOK` (`false` refuses), `FIXTURE_LIVENESS_CHECK` / `FIXTURE_READINESS_CHECK`
/// (`fail`, `sleep`), `FIXTURE_HEALTH_HOOK` (`true`: recoverable).
@ProcessorActor
class FixtureProcessor: Processor {
    @Stateful var counter = 0
    @Stateful var data: [String: Int] = [:]
    @Stateful var ratio = 0.0
    let context: ExecutionContext

    required init(context: ExecutionContext) {
        self.context = context
        if let d = Fixture.value("FIXTURE_DOUBLE").flatMap(Double.init) { ratio = d }
        if Fixture.flag("FIXTURE_NAN") { ratio = .nan }
        switch Fixture.value("FIXTURE_LIVENESS_CHECK") {
        case "fail": context.registerLivenessCheck("db") { throw FixtureError(message: "connection refused") }
        case "sleep": context.registerLivenessCheck("db") { try await Task.sleep(for: .seconds(5)) }
        default: break
        }
        if Fixture.value("FIXTURE_READINESS_CHECK") == "fail" {
            context.registerReadinessCheck("cache") { throw FixtureError(message: "cache cold") }
        }
    }

    func startup() async throws {
        Fixture.hook(context, "startup")
        if let s = Fixture.seconds("FIXTURE_STARTUP_SLEEP_SEC") { await Fixture.sleep(s) }
        if Fixture.flag("FIXTURE_STARTUP_THROW") { throw FixtureError(message: "startup failed on purpose") }
    }

    func resetCaches() async { Fixture.hook(context, "resetCaches") }

    func restoreState(_ state: JSONObject) async throws {
        Fixture.hook(context, "restoreState")
        if Fixture.flag("FIXTURE_RESTORE_THROW") { throw FixtureError(message: "restore failed on purpose") }
        let unknown = try StatefulState.restore(self, from: state)
        _ = unknown
    }

    func onStateRestoreFailed(_ error: any Error) async -> Bool {
        Fixture.hook(context, "onStateRestoreFailed")
        return Fixture.value("FIXTURE_RESTORE_HOOK") != "false"
    }

    func onRapidRestartDetected(crashCount: Int) async -> Bool {
        context.logger.info("fixture hook", metadata: ["fixture_hook": "onRapidRestartDetected", "crashes": "\(crashCount)"])
        return Fixture.value("FIXTURE_RAPID_HOOK") != "false"
    }

    func onHealthCheckFailed(_ error: any Error) async -> Bool {
        Fixture.hook(context, "onHealthCheckFailed")
        return Fixture.value("FIXTURE_HEALTH_HOOK") == "true"
    }

    func getState() async throws -> JSONObject {
        if let s = Fixture.seconds("FIXTURE_GETSTATE_SLEEP_SEC") { await Fixture.sleep(s) }
        if Fixture.flag("FIXTURE_GETSTATE_THROW") { throw FixtureError(message: "getState failed on purpose") }
        return try StatefulState.capture(self)
    }

    func run() async throws {
        Fixture.hook(context, "run")
        switch Fixture.value("FIXTURE_RUN") ?? "loop" {
        case "return":
            return
        case "throw":
            throw FixtureError(message: "run failed on purpose")
        case "ignore_flag":
            while true {
                counter += 1
                try? await Task.sleep(for: .milliseconds(100))
            }
        case "spin":
            while true { counter &+= 1 }
        case "idle":
            for await _ in context.runLoop(interval: .milliseconds(100)) {}
        default:
            // The run loop forwarded on the processor itself (spec §3.2).
            for await _ in runLoop(interval: .milliseconds(100)) { counter += 1 }
        }
    }

    func shutdown() async throws {
        Fixture.hook(context, "shutdown")
        if let s = Fixture.seconds("FIXTURE_SHUTDOWN_SLEEP_SEC") { await Fixture.sleep(s) }
        if Fixture.flag("FIXTURE_SHUTDOWN_THROW") { throw FixtureError(message: "shutdown failed on purpose") }
    }
}

/// Two properties with one JSON key: a declaration error (exit 2).
@ProcessorActor
final class DuplicateKeyProcessor: Processor {
    @Stateful(key: "n") var first = 0
    @Stateful(key: "n") var second = 0
    init(context: ExecutionContext) {}
    func run() async throws {}
}

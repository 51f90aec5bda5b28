#if canImport(Glibc)
import Glibc
#endif
import DoryEvents
import DoryKit
import DoryState
import Logging

// doryd-bench: measurements `bench/run.sh` drives that need doryd's code in process. Not shipped in the image.
//
//   doryd-bench events-pipeline [--events N] [--warmup N] [--channels memory|DIR] [--log-level info|warning]
//
// Runs the event pipeline (S1–S16, event-pipeline.md §4) N times in this process with a trivial on_schedule
// handler, on the same event the Python reference bench uses (bench/pydoover_pipeline.py): each body is parsed
// from its JSON text, run through `runApp`, and its summary delivered to `dv-proc-inv-42` (in memory, or appended
// and fsynced to channel files under DIR). Logs go to standard error at the given level. Prints one JSON line.

/// The application under test: one handler that does nothing.
struct TrivialApp: Application {
    var implementedHandlers: Set<EventOp> { [.onSchedule] }
    func onSchedule(_ event: ScheduleEvent) async throws {}
}

/// The on_schedule example of event-pipeline.md §6.5 with the §6.5 upgrade object in `d`.
let eventText = #"""
{"op": "on_schedule", "token": "long-lived-schedule-token", "d": {"schedule_id": "123", "organisation_id": "2", \#
"upgrade": {"agent_id": "1", "organisation_id": "2", "app_key": "my_app", "deployment_config": {"APP_ID": "42"}, \#
"ui_state": {}, "ui_cmds": null, "tag_values": {"my_app": {"temp": 20}}, "connection_data": null, "token": "full-token"}}}
"""#

struct Options {
    var events = 100_000
    var warmup = 2_000
    var channels = "memory"
    var logLevel = Logger.Level.info
}

func fail(_ message: String) -> Never {
    let line = Array("doryd-bench: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(2)
}

func value<T>(_ parsed: T?, _ flag: String, _ text: String) -> T {
    guard let parsed else { fail("\(flag): invalid value \(text)") }
    return parsed
}

func parseOptions(_ arguments: [String]) -> Options {
    var options = Options()
    var rest = arguments[...]
    guard rest.popFirst() == "events-pipeline" else {
        fail("usage: doryd-bench events-pipeline [--events N] [--warmup N] [--channels memory|DIR] [--log-level LEVEL]")
    }
    while let flag = rest.popFirst() {
        guard let text = rest.popFirst() else { fail("\(flag) needs a value") }
        switch flag {
        case "--events": options.events = value(Int(text), flag, text)
        case "--warmup": options.warmup = value(Int(text), flag, text)
        case "--channels": options.channels = text
        case "--log-level": options.logLevel = value(Logger.Level(rawValue: text), flag, text)
        default: fail("unknown option \(flag)")
        }
    }
    return options
}

func makeRuntime(_ options: Options) -> EventRuntime {
    let backend: any ChannelBackend = options.channels == "memory"
        ? InMemoryChannelBackend() : FileChannelBackend(root: options.channels)
    let channels: ChannelStore
    do {
        channels = try ChannelStore(backend: backend)
    } catch {
        fail("channels \(options.channels): \(error)")
    }
    return EventRuntime(
        base: Deployment(appKey: "my_app", appId: "42", agentId: IDValue(1)),
        state: EventState(channels: channels, tagValues: ["my_app": ["temp": 20]]),
        functionName: "my-app", functionVersion: DoryKitVersion.version,
        logStream: LogStream(output: .fileDescriptor(2), threshold: options.logLevel))
}

func runOnce(_ runtime: EventRuntime, _ body: [UInt8]) async -> Bool {
    guard let event = try? JSON.parse(body) else { fail("the bench event does not parse") }
    let summary = await runApp(TrivialApp(), event: event, context: InvocationRequest(), runtime: runtime)
    return summary?.status == .success
}

/// The measured loop, on the global executor like the event workload's queue worker (not on the main actor).
func measure(_ options: Options) async -> (failed: Int, seconds: Double) {
    let runtime = makeRuntime(options)
    let body = Array(eventText.utf8)
    for _ in 0..<options.warmup where await !runOnce(runtime, body) { fail("a warm-up invocation did not succeed") }
    var failed = 0
    let start = ContinuousClock.now
    for _ in 0..<options.events where await !runOnce(runtime, body) { failed += 1 }
    let elapsed = ContinuousClock.now - start
    return (failed, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

let options = parseOptions(Array(CommandLine.arguments.dropFirst()))
let (failed, seconds) = await Task.detached { await measure(options) }.value
print(#"{"events": \#(options.events), "failed": \#(failed), "seconds": \#(seconds), "events_per_s": \#(Double(options.events) / seconds)}"#)
exit(failed == 0 ? 0 : 1)

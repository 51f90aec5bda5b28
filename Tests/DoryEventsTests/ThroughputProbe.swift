#if canImport(Glibc)
import Glibc
#endif
import DoryKit
import DoryState
import Testing
@testable import DoryEvents

/// Not a timed test: prints events/s of the in-process pipeline with a trivial handler when
/// `DORY_EVENTS_BENCH=1` (run with `swift test -c release --filter ThroughputProbe`).
@Suite struct ThroughputProbe {
    struct Trivial: Application {
        var implementedHandlers: Set<EventOp> { [.onSchedule] }
        func onSchedule(_ event: ScheduleEvent) async throws {}
    }

    @Test(.enabled(if: getenv("DORY_EVENTS_BENCH") != nil))
    func pipelineEventsPerSecond() async throws {
        for (label, threshold) in [("logs at info (discarded sink)", Logger.Level.info), ("logs above info", .warning)] {
            let channels = try ChannelStore(backend: InMemoryChannelBackend())
            let runtime = EventRuntime(
                base: Deployment(appKey: "my_app", appId: "42", agentId: IDValue(1)),
                state: EventState(channels: channels, tagValues: ["my_app": ["temp": 20]]),
                functionName: "my-app", functionVersion: "1.0.0",
                logStream: LogStream(output: .capture({ _ in }), threshold: threshold))
            let app = Trivial()
            let event = Examples.schedule
            for _ in 0..<2000 { _ = await runApp(app, event: event, context: InvocationRequest(), runtime: runtime) }
            let n = 100_000
            let start = ContinuousClock.now
            for _ in 0..<n { _ = await runApp(app, event: event, context: InvocationRequest(), runtime: runtime) }
            let elapsed = ContinuousClock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print("pipeline (\(label)): \(Int(Double(n) / seconds)) events/s over \(n) events")
        }
    }
}
import Logging

@preconcurrency import Dispatch
import DoryHTTP
import DoryKit
import DoryState
import Synchronization
import Testing
@testable import DoryEvents

/// Generations written by tag commits (the host's snapshot writer, in memory).
final class GenerationLog: Sendable {
    private let states = Mutex<[JSONObject]>([])
    let failNext = Atomic<Bool>(false)
    var all: [JSONObject] { states.withLock { $0 } }

    var persist: EventStatePersist {
        { state in
            if self.failNext.exchange(false, ordering: .relaxed) { throw TestFailure("injected write failure") }
            return self.states.withLock { s in
                s.append(state)
                return UInt64(s.count)
            }
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The fixture deployment (my_app / "42" / agent "1" / organisation "2") with optional schedules.
func hostSettings(_ dir: String, schedules: String = "[]", queueMax: Int = 100, maxBytes: Int = 1_048_576,
                  maxAttempts: Int = 3) -> EventSettings
{
    let section = json(#"{"app_key": "my_app", "app_id": "42", "agent_id": "1", "organisation_id": "2", "function_name": "my-app", "function_version": "1.0.0", "schedules": \#(schedules)}"#)
    let events = try! EventsConfig.parse(section, processorId: "proc", version: "0.1.0")
    return EventSettings(events: events, processorDirectory: dir + "/proc", eventQueueMax: queueMax,
                         eventMaxBytes: maxBytes, eventTimeoutSec: 30, eventMaxAttempts: maxAttempts)
}

/// A workload over `dir` with captured logs, not yet started.
func makeWorkload(_ dir: String, generations: GenerationLog = GenerationLog(), logs: LogCapture = LogCapture(),
                  schedules: String = "[]", queueMax: Int = 100, maxBytes: Int = 1_048_576, maxAttempts: Int = 3,
                  rateScale: Double = 1) -> EventWorkload
{
    let stream = LogStream(output: .capture({ logs.add($0) }), threshold: .info)
    return EventWorkload(settings: hostSettings(dir, schedules: schedules, queueMax: queueMax, maxBytes: maxBytes,
                                                maxAttempts: maxAttempts),
                         application: TemperatureAlertApp.self, persist: generations.persist, logStream: stream,
                         metrics: EventMetrics(), fileSystem: SystemFileSystem(), clock: { WallClock.nowMillis() },
                         flushCapturedOutput: nil, rateScale: rateScale)
}

/// A started workload whose worker runs in a task; ``stop()`` ends it like the runtime's stop sequence.
final class RunningWorkload: Sendable {
    let workload: EventWorkload
    let task: Task<Void, Never>

    init(_ workload: EventWorkload) async throws {
        self.workload = workload
        try await workload.startup()
        task = Task { try? await workload.run() }
    }

    func stop() async throws {
        workload.beginStopping()
        try await workload.shutdown()
        await task.value
    }
}

/// Polls `condition` every 5 ms until it holds or `seconds` pass.
func eventually(within seconds: Double = 5, _ condition: @Sendable () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return await condition()
}

/// The summaries delivered to `dv-proc-inv-42` (agent 1), oldest first.
func deliveredSummaries(_ workload: EventWorkload) -> [JSONObject] {
    let address = ChannelAddress(agentId: IDValue(1), name: "dv-proc-inv-42")
    let all = (try? workload.state?.channels.allMessages(of: address)) ?? []
    return all.compactMap { m in
        if case .object(let data)? = m["data"] { return data }
        return nil
    }
}

/// An HTTP server on an ephemeral loopback port serving the event routes.
final class RouteServer: Sendable {
    let server: HTTPServer
    let port: Int

    init(_ routes: EventRoutes) throws {
        server = try HTTPServer(handler: routes)
        port = try server.listen(.tcp(host: "127.0.0.1", port: 0)).port!
    }

    deinit { server.close(gracePeriod: .milliseconds(100)) }

    /// One request on a Dispatch thread (the client blocks), so the cooperative pool stays free for the worker.
    func request(_ path: String, method: String = "POST", body: String = "", token: String? = "control-token-0123",
                 headers: HTTPHeaders = [:]) async throws -> HTTPClient.Response
    {
        var h = headers
        if let token { h.add("Authorization", "Bearer \(token)") }
        let port = port
        let fields = h
        return try await withCheckedThrowingContinuation { c in
            DispatchQueue.global().async {
                do {
                    c.resume(returning: try HTTPClient.request(method: method, path: path, headers: fields,
                                                               body: Array(body.utf8), to: .tcp(host: "127.0.0.1", port: port)))
                } catch {
                    c.resume(throwing: error)
                }
            }
        }
    }
}

let controlToken = "control-token-0123"

extension HTTPClient.Response {
    var json: JSONValue? { try? JSON.parse(body) }
    var object: JSONObject {
        if case .object(let o)? = json { return o }
        return [:]
    }
}

/// A fresh temp directory path for a test (removed with the returned handle).
func tempDir() throws -> TemporaryDirectory { try TemporaryDirectory() }

import DoryKit
import DoryState
import Synchronization
import Testing
@testable import DoryEvents

/// Records what an application was called with, in order.
final class Recorder: Sendable {
    private let entries = Mutex<[String]>([])
    func add(_ s: String) { entries.withLock { $0.append(s) } }
    var calls: [String] { entries.withLock { $0 } }
    func count(_ s: String) -> Int { calls.filter { $0 == s }.count }
    let events = Mutex<[ProcessorEvent]>([])
}

typealias Hook = @Sendable (Full) async throws -> Void
typealias Filter = @Sendable (Full, ProcessorEvent) async throws -> Bool

/// The acceptance fixture's application **Full**: declares all seven handlers (or `handlers`), records each call,
/// and runs optional hooks.
struct Full: Application {
    var handlers: Set<EventOp> = Set(EventOp.allCases)
    let recorder = Recorder()
    var setupHook: Hook?
    var handlerHook: Hook?
    var closeHook: Hook?
    var preHook: Filter?
    var postHook: Filter?
    var ingestionParser: (@Sendable (String) throws -> JSONValue)?

    init() {}

    var implementedHandlers: Set<EventOp> { handlers }

    func setup() async throws {
        recorder.add("setup")
        try await setupHook?(self)
    }

    func close() async throws {
        recorder.add("close")
        try await closeHook?(self)
    }

    func preHookFilter(_ event: ProcessorEvent) async throws -> Bool {
        recorder.add("preHookFilter")
        return try await preHook?(self, event) ?? true
    }

    func postSetupFilter(_ event: ProcessorEvent) async throws -> Bool {
        recorder.add("postSetupFilter")
        return try await postHook?(self, event) ?? true
    }

    private func handle(_ name: String, _ event: ProcessorEvent) async throws {
        recorder.add(name)
        recorder.events.withLock { $0.append(event) }
        try await handlerHook?(self)
    }

    func onMessageCreate(_ event: MessageCreateEvent) async throws { try await handle("onMessageCreate", .messageCreate(event)) }
    func onAggregateUpdate(_ event: AggregateUpdateEvent) async throws { try await handle("onAggregateUpdate", .aggregateUpdate(event)) }
    func onDeployment(_ event: DeploymentEvent) async throws { try await handle("onDeployment", .deployment(event)) }
    func onSchedule(_ event: ScheduleEvent) async throws { try await handle("onSchedule", .schedule(event)) }
    func onIngestionEndpoint(_ event: IngestionEndpointEvent) async throws { try await handle("onIngestionEndpoint", .ingestionEndpoint(event)) }
    func onManualInvoke(_ event: ManualInvokeEvent) async throws { try await handle("onManualInvoke", .manualInvoke(event)) }
    func onAlarmTrigger(_ event: AlarmTriggerEvent) async throws { try await handle("onAlarmTrigger", .alarmTrigger(event)) }

    func parseIngestionPayload(payload: String, contentType: String?) throws -> JSONValue {
        if let ingestionParser { return try ingestionParser(payload) }
        return try DefaultIngestionParser.parse(payload)
    }
}

struct SetupError: Error, CustomStringConvertible { var description: String { "boom" } }
struct FilterError: Error {}
struct E: Error {}

/// Captured log lines, parsed.
final class LogCapture: Sendable {
    private let lines = Mutex<[JSONObject]>([])
    func add(_ bytes: [UInt8]) {
        if case .object(let o)? = try? JSON.parse(bytes) { lines.withLock { $0.append(o) } }
    }
    var records: [JSONObject] { lines.withLock { $0 } }
    func messages(_ msg: String) -> [JSONObject] { records.filter { $0["msg"] == .string(msg) } }
}

/// The fixture of §13: app my_app / "42" / agent "1" / organisation "2", tag map `{"my_app": {"temp": 20}}`,
/// in-memory channels and commit writer.
final class Fixture: Sendable {
    let backend = InMemoryChannelBackend()
    let state: EventState
    let writer = InMemoryTagCommitWriter()
    let runtime: EventRuntime
    let logs = LogCapture()

    init(tags: TagMap = ["my_app": ["temp": 20]], config: JSONObject = [:],
         processorConfig: ProcessorConfig = ProcessorConfig(), timeoutSeconds: Double = 300,
         backend: (any ChannelBackend)? = nil)
    {
        let channels = try! ChannelStore(backend: backend ?? self.backend)
        state = EventState(channels: channels, tagValues: tags)
        let logs = self.logs
        let stream = LogStream(output: .capture({ logs.add($0) }), threshold: .info)
        runtime = EventRuntime(
            base: Deployment(appKey: "my_app", appId: "42", agentId: IDValue(1), organisationId: "2",
                             config: config, processorConfig: processorConfig),
            state: state, tagWriter: writer, functionName: "my-app", functionVersion: "1.0.0",
            timeoutSeconds: timeoutSeconds, logStream: stream)
    }

    func run(_ app: some Application, _ event: JSONValue, request: InvocationRequest = InvocationRequest())
        async -> InvocationSummary
    {
        let s = await runApp(app, event: event, context: request, runtime: runtime)
        return s!
    }

    /// The `data` of every message on (agent, name).
    func messages(_ agent: Int64, _ name: String) -> [JSONValue] {
        let all = (try? state.channels.allMessages(of: ChannelAddress(agentId: IDValue(agent), name: name))) ?? []
        return all.map { m in
            if case .object(let o) = m { return o["data"] ?? .null }
            return .null
        }
    }

    var tags: TagMap { state.tagValues }
}

func json(_ text: String) -> JSONValue { try! JSON.parse(text) }

/// The examples of §6.5.
enum Examples {
    static let messageFlat = json(#"{"op": "on_message_create", "token": "initial-token", "d": {"id": "7345", "author_id": "9", "channel": {"agent_id": "1", "name": "sensor"}, "data": {"temp": 21.5}}}"#)
    static let messageNested = json(#"{"op": "on_message_create", "token": "initial-token", "d": {"message": {"id": "7345", "author_id": "9", "channel": {"agent_id": "1", "name": "sensor"}, "data": {"temp": 21.5}}}}"#)
    static let aggregate = json(#"{"op": "on_aggregate_update", "token": "initial-token", "d": {"author_id": 9, "channel": {"agent_id": 1, "name": "sensor"}, "aggregate": {"data": {"temp": 21.5}}, "request_data": {"data": {"temp": 21.5}}, "organisation_id": 2}}"#)
    static let alarm = json(#"{"op": "on_alarm_trigger", "token": "initial-token", "d": {"channel": {"agent_id": 1, "name": "sensor"}, "alarm": {"id": "7", "name": "High temp", "description": "", "enabled": true, "state": "Alarm", "entered_state_ts": 1700000000000}, "old_state": "OK", "new_state": "Alarm", "aggregate": {"data": {"temp": 31}}, "request_data": {"data": {"temp": 31}}, "organisation_id": 2}}"#)
    static let deployment = json(#"{"op": "on_deployment", "token": "initial-token", "d": {"agent_id": 1, "app_id": 42, "app_install_id": 3, "app_key": "my_app", "app_display_name": "My App"}}"#)
    static let schedule = json(#"{"op": "on_schedule", "token": "long-lived-schedule-token", "d": {"schedule_id": "123", "organisation_id": "2"}}"#)
    static let ingestion = json(#"{"op": "on_ingestion_endpoint", "token": "initial-token", "d": {"ingestion_id": 12, "agent_id": 1, "organisation_id": 2, "payload": "eyJ0ZW1wIjogMjF9", "upgrade": {"agent_id": 1, "organisation_id": 2, "app_key": "my_app", "deployment_config": {"APP_ID": "42"}, "ui_state": {}, "ui_cmds": null, "tag_values": null, "connection_data": null, "token": "full-token"}}}"#)
    static let manual = json(#"{"op": "on_manual_invoke", "token": "initial-token", "d": {"organisation_id": 2, "payload": {"run": true}}}"#)
    static let sns = json(#"{"Records": [{"EventSource": "aws:sns", "EventSubscriptionArn": "arn:aws:sns:ap-southeast-2:123456789012:topic:0f1e2d3c", "Sns": {"Message": "{\"op\": \"on_manual_invoke\", \"token\": \"t\", \"d\": {\"organisation_id\": 2, \"payload\": {}}}"}}]}"#)
    static let upgrade = json(#"{"agent_id": "1", "organisation_id": "2", "app_key": "my_app", "deployment_config": {"APP_ID": "42"}, "ui_state": {}, "ui_cmds": null, "tag_values": {"my_app": {"temp": 20}}, "connection_data": null, "token": "full-token"}"#)

    static let all: [(String, JSONValue)] = [
        ("onMessageCreate", messageFlat), ("onMessageCreate", messageNested), ("onAggregateUpdate", aggregate),
        ("onAlarmTrigger", alarm), ("onDeployment", deployment), ("onSchedule", schedule),
        ("onIngestionEndpoint", ingestion), ("onManualInvoke", manual),
    ]

    /// A message-create event on (agent, name) with `data`.
    static func message(agent: String = "1", channel: String, data: String) -> JSONValue {
        json(#"{"op": "on_message_create", "d": {"channel": {"agent_id": "\#(agent)", "name": "\#(channel)"}, "data": \#(data)}}"#)
    }
}

extension JSONValue {
    subscript(_ key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under the system temp dir, removed on deinit.
final class TemporaryDirectory: Sendable {
    let path: String
    init() throws {
        var template = Array("/tmp/dory-events-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw FileSystemError(operation: "mkdtemp", path: "/tmp", errno: errno) }
        path = String(cString: p)
    }
    deinit {
        _ = system("rm -rf '\(path)'")
    }
}

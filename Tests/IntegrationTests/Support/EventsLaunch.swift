import DoryHTTP
import DoryState
import Glibc
import Testing

/// `doryd events --config FILE` launches (spec/event-pipeline.md), on top of `Sandbox`, with the §13 fixture:
/// `DORY_PROCESSOR_ID=my-app`, the `events:` section `app_key: my_app`, `app_id: "42"`, `agent_id: "1"`,
/// `organisation_id: "2"`, and `DORY_CONTROL_TOKEN=tok-0123456789abcdef`.
struct EventsLaunch {
    /// The §13 control token.
    static let controlToken = "tok-0123456789abcdef"
    /// The §13 processor id (the state lives under `<state>/my-app`).
    static let processorId = "my-app"

    /// The whole `events:` section (YAML text, indented under `events:`); nil writes none.
    var eventsSection: String? = EventsLaunch.section(threshold: 30)
    /// Top-level YAML lines added after the section (e.g. `event_queue_max: 1`).
    var extraYAML = ""
    /// Added to (and overriding) the base environment (which carries the fixture's token and processor id).
    var environment: [String: String] = [:]
    /// Removed from the environment (e.g. `DORY_CONTROL_TOKEN`).
    var unset: [String] = []
    /// Extra setting flags after `--config FILE --port 0 --state-dir DIR`.
    var arguments: [String] = []
    /// The subcommand (`events`; `demo` to check that it refuses an `events:` section).
    var subcommand = "events"
    var stateDir: String?
    var waitForListening = true

    init() {}

    /// The fixture's `events:` body with `config.threshold`.
    static func section(threshold: Int) -> String {
        """
          app_key: my_app
          app_id: "42"
          agent_id: "1"
          organisation_id: "2"
          config:
            threshold: \(threshold)

        """
    }
}

extension Sandbox {
    /// Writes `<sandbox>/events.yaml` and starts `doryd events --config events.yaml --port 0 --state-dir <sandbox>/state`
    /// with the §13 environment; by default waits for the `http.listening` line.
    func launchEvents(_ launch: EventsLaunch = EventsLaunch()) throws -> Daemon {
        var yaml = ""
        if let section = launch.eventsSection { yaml += "events:\n" + section }
        yaml += launch.extraYAML
        let config = write("events.yaml", yaml)
        var environment = baseEnvironment()
        environment["DORY_PROCESSOR_ID"] = EventsLaunch.processorId
        environment["DORY_CONTROL_TOKEN"] = EventsLaunch.controlToken
        for name in launch.unset { environment[name] = nil }
        for (name, value) in launch.environment { environment[name] = value }
        let stateDir = launch.stateDir ?? path("state")
        let arguments = [launch.subcommand, "--config", config, "--port", "0", "--state-dir", stateDir] + launch.arguments
        let child = try spawn(try Binaries.doryd(), arguments, environment: environment)
        let daemon = Daemon(process: child, stateDir: stateDir, processorId: EventsLaunch.processorId, sandbox: self)
        if launch.waitForListening { try daemon.waitForPort() }
        return daemon
    }
}

/// Event bodies of spec/event-pipeline.md §6.5.
enum EventBodies {
    /// A nested-form `on_message_create` on channel (1, `temps`) with `data.temp`.
    static func messageCreate(temp: Int, id: String = "7") -> String {
        """
        {"op":"on_message_create","token":"initial-token","d":{"message":{"id":"\(id)","channel":{"name":"temps","agent_id":"1"},\
        "data":{"temp":\(temp)},"author_id":"1","created_at":1700000000000}}}
        """
    }

    /// §6.5 on_schedule example.
    static let schedule = #"{"op": "on_schedule", "token": "long-lived-schedule-token", "d": {"schedule_id": "123", "organisation_id": "2"}}"#

    /// An SNS record envelope holding `messages` (processor events as JSON text), one record each, with ARNs.
    static func sns(_ messages: [(message: String, arn: String)]) -> String {
        let records = messages.map { item -> String in
            let quoted = String(decoding: (try? JSON.encode(.string(item.message))) ?? [], as: UTF8.self)
            return #"{"EventSource":"aws:sns","EventSubscriptionArn":"\#(item.arn)","Sns":{"Message":\#(quoted)}}"#
        }
        return #"{"Records":["# + records.joined(separator: ",") + "]}"
    }
}

extension Daemon {
    static let controlBearer: HTTPHeaders = ["Authorization": "Bearer \(EventsLaunch.controlToken)"]

    /// POST /v1/events with the control token (unless `headers` brings its own `Authorization`, or `authorized` is
    /// false) and `Content-Type: application/json` (unless `headers` names one).
    func postEvent(_ body: String, query: String = "", headers: HTTPHeaders = [:], authorized: Bool = true,
                   timeout: Duration = .seconds(10)) throws -> HTTPClient.Response {
        var all: HTTPHeaders = [:]
        if authorized && !headers.contains("Authorization") { all.add("Authorization", "Bearer \(EventsLaunch.controlToken)") }
        if !headers.contains("Content-Type") { all.add("Content-Type", "application/json") }
        for field in headers { all.add(field.name, field.value) }
        return try request("POST", "/v1/events" + query, headers: all, body: Array(body.utf8), timeout: timeout)
    }

    /// The `data` of every message on (agent 1, `channel`) — summaries on `dv-proc-inv-42` — oldest first.
    func channelData(_ channel: String = "dv-proc-inv-42", limit: Int = 1000) throws -> [JSONObject] {
        let response = try get("/v1/channels/\(channel)/messages?agent_id=1&limit=\(limit)", headers: Self.controlBearer)
        guard response.status == 200, let messages = JSON.object(response.body)?["messages"]?.array else {
            throw Failure(description: "GET channel \(channel): \(response.status) \(response.text)")
        }
        return messages.compactMap { $0["data"]?.object }
    }

    /// Polls the summary channel until `ids` all have a summary; returns the summaries (nil at the deadline).
    func waitForSummaries(_ ids: [String], timeout: Duration = .seconds(20)) -> [JSONObject]? {
        let wanted = Set(ids)
        return Poll.value(timeout: timeout, interval: .milliseconds(50)) { () -> [JSONObject]? in
            guard let all = try? channelData() else { return nil }
            let seen = Set(all.compactMap { $0["invocation_id"]?.string })
            return wanted.isSubset(of: seen) ? all : nil
        }
    }

    /// The committed tag map, through the `tag_values` aggregate of the app agent (§8.6).
    func tagValues() throws -> JSONObject {
        let response = try get("/v1/channels/tag_values/aggregate?agent_id=1", headers: Self.controlBearer)
        guard response.status == 200, let data = JSON.object(response.body)?["data"]?.object else {
            throw Failure(description: "GET tag_values aggregate: \(response.status) \(response.text)")
        }
        return data
    }
}

/// The `doryd events` suites, one test at a time (they block threads while polling real processes).
@Suite(.serialized) enum EventsTests {}

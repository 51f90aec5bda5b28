import DoryHTTP
import DoryKit
import DoryState

/// The event workload's HTTP routes (§2.2, §8.6) at the DoryHTTP level. The host's route table sends a request here
/// when ``route(for:)`` names it: ``admit(_:)`` with the head (checks 1–6, before any body byte), then
/// ``handle(_:responder:)`` with the whole request. Both return at once; the work runs in a task.
public struct EventRoutes: HTTPHandler {
    /// The route templates (the `route` label of `dory_http_requests_total`, §11).
    public enum Route: String, Sendable, CaseIterable {
        case events = "/v1/events"
        case channelMessages = "/v1/channels/{name}/messages"
        case channelAggregate = "/v1/channels/{name}/aggregate"

        var methods: [String] { self == .events ? ["POST"] : ["GET", "HEAD"] }
    }

    /// The route a path belongs to, or nil when it is not an event route.
    public static func route(for path: Substring) -> Route? {
        if path == "/v1/events" { return .events }
        guard path.hasPrefix("/v1/channels/") else { return nil }
        if path.hasSuffix("/messages") { return .channelMessages }
        if path.hasSuffix("/aggregate") { return .channelAggregate }
        return nil
    }

    static let jsonType = "application/json; charset=utf-8"

    private let workload: EventWorkload
    private let token: TokenCheck?
    private let phase: @Sendable () -> Phase

    /// - Parameters:
    ///   - workload: the hosted event workload.
    ///   - controlToken: `control_token`; nil disables the routes (403 `events_disabled`).
    ///   - phase: the runtime's phase (§2.2 row 4): before `running` → 503 `not_ready`, `stopping` and after →
    ///     503 `shutting_down`; `running` and `draining` accept.
    public init(workload: EventWorkload, controlToken: String?, phase: @escaping @Sendable () -> Phase = { .running }) {
        self.workload = workload
        self.token = controlToken.map(TokenCheck.init(token:))
        self.phase = phase
    }

    // MARK: Head checks

    public func admit(_ head: HTTPRequestHead) -> HTTPAdmission {
        guard let route = EventRoutes.route(for: head.path) else {
            return .reject(EventRoutes.error(404, "not_found", "no such route"))
        }
        let metrics = workload.metrics
        let isEvents = route == .events
        func refuse(_ reason: String, _ response: HTTPResponse) -> HTTPAdmission {
            if isEvents { metrics.rejected(reason: reason) }
            return .reject(response)
        }
        // 1. method
        guard route.methods.contains(head.method) else {
            return .reject(EventRoutes.error(405, "method_not_allowed", "use \(route.methods.joined(separator: " or "))",
                                             headers: ["Allow": route.methods.joined(separator: ", ")]))
        }
        // 2–3. token
        guard let token else {
            return refuse("disabled", EventRoutes.error(403, "events_disabled",
                                                        "set DORY_CONTROL_TOKEN to enable /v1/events"))
        }
        if let code = token.verify(head.headers["Authorization"]) {
            return refuse("unauthorized", EventRoutes.error(401, code, EventRoutes.authorizationMessage(code)))
        }
        // 4. phase and queue
        if let (reason, response) = unavailable() { return refuse(reason, response) }
        guard isEvents else { return .noBody }
        // 5. size
        let max = workload.settings.eventMaxBytes
        if let length = head.contentLength, length > max {
            return refuse("too_large", EventRoutes.tooLarge(length, max))
        }
        // 6. media type
        if let type = head.headers["Content-Type"], !EventRoutes.isJSONMediaType(type) {
            return refuse("unsupported_media_type", EventRoutes.error(415, "unsupported_media_type",
                                                                      "Content-Type must be application/json"))
        }
        return .accept(maxBodyBytes: max, tooLarge: { read, limit in
            metrics.rejected(reason: "too_large")
            return EventRoutes.tooLarge(read, limit)
        })
    }

    /// Row 4 of §2.2: the refusal reason (metrics) and answer, or nil when the intake is open.
    private func unavailable() -> (String, HTTPResponse)? {
        switch phase() {
        case .initializing, .backoff, .starting, .restoring:
            return ("not_ready", EventRoutes.error(503, "not_ready", "doryd is not running yet", headers: ["Retry-After": "1"]))
        case .stopping, .stopped, .failed:
            return ("shutting_down", EventRoutes.error(503, "shutting_down", "doryd is stopping", headers: ["Retry-After": "5"]))
        case .running, .draining:
            break
        }
        switch workload.intakeState {
        case .open: return nil
        case .notStarted:
            return ("not_ready", EventRoutes.error(503, "not_ready", "the event workload is not started", headers: ["Retry-After": "1"]))
        case .stopping:
            return ("shutting_down", EventRoutes.error(503, "shutting_down", "doryd is stopping", headers: ["Retry-After": "5"]))
        case .queueStopped:
            return ("write_failed", EventRoutes.error(503, "queue_unavailable", "the event queue stopped after a write failure",
                                                      headers: ["Retry-After": "1"]))
        }
    }

    // MARK: Requests

    public func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        guard let route = EventRoutes.route(for: request.path) else {
            responder(EventRoutes.error(404, "not_found", "no such route"))
            return
        }
        switch route {
        case .events:
            Task { responder(await intake(request)) }
        case .channelMessages, .channelAggregate:
            responder(channelRead(request, route: route))
        }
    }

    /// `POST /v1/events` after the head checks: rows 7–10, then the queue round and the answer (§2.2).
    func intake(_ request: HTTPRequest) async -> HTTPResponse {
        let metrics = workload.metrics
        if let (reason, response) = unavailable() {
            metrics.rejected(reason: reason)
            return response
        }
        guard let queue = workload.queue else {
            metrics.rejected(reason: "not_ready")
            return EventRoutes.error(503, "not_ready", "the event workload is not started", headers: ["Retry-After": "1"])
        }
        let body: ClassifiedBody
        switch Envelope.classify(bytes: request.body) {
        case .success(let b): body = b
        case .failure(let rejection):
            metrics.rejected(reason: "bad_request")
            return EventRoutes.json(400, rejection.body)
        }
        let requestId = EventRoutes.validRequestId(request.headers["X-Request-Id"])
        let (wait, timeout) = EventRoutes.waitOptions(request.head.queryItems)
        let events = body.records.map { r in
            NewQueuedEvent(source: .http, requestId: requestId, subscriptionId: r.subscriptionId, event: r.event)
        }
        let ids = events.map(\.invocationId)
        let waiting = wait ? workload.waiters.register(ids) : nil
        let result = await queue.enqueue(events)
        switch result {
        case .accepted:
            metrics.accepted(source: "http", count: events.count)
        case .queueFull:
            if let waiting { workload.waiters.remove(waiting) }
            metrics.rejected(reason: "queue_full")
            return EventRoutes.error(429, "queue_full", "the event queue is full", headers: ["Retry-After": "1"])
        case .writeFailed(let text):
            if let waiting { workload.waiters.remove(waiting) }
            metrics.rejected(reason: "write_failed")
            return EventRoutes.error(503, "queue_write_failed", "queue write failed: \(text)", headers: ["Retry-After": "1"])
        case .unavailable:
            if let waiting { workload.waiters.remove(waiting) }
            metrics.rejected(reason: "write_failed")
            return EventRoutes.error(503, "queue_unavailable", "the event queue stopped after a write failure",
                                     headers: ["Retry-After": "1"])
        }
        if let waiting, let summaries = await waiting.result(timeout: timeout) {
            switch body.form {
            // The summaries as `doryd invoke` prints them and the channel stores them: keys in §5.1 order.
            case .passThrough: return EventRoutes.encodedJSON(200, summaries.first?.encoded() ?? Array("null".utf8))
            case .sns:
                return EventRoutes.encodedJSON(200, Array("[".utf8) + Array(summaries.map { $0.encoded() }
                    .joined(separator: Array(",".utf8))) + Array("]".utf8))
            }
        }
        if let waiting { workload.waiters.remove(waiting) }
        switch body.form {
        case .passThrough: return EventRoutes.json(202, .object(["invocation_id": .string(ids[0])]))
        case .sns: return EventRoutes.json(202, .object(["invocation_ids": .array(ids.map(JSONValue.string))]))
        }
    }

    /// `GET /v1/channels/{name}/messages|aggregate` (§8.6).
    func channelRead(_ request: HTTPRequest, route: Route) -> HTTPResponse {
        guard let state = workload.state else {
            return EventRoutes.error(503, "not_ready", "the event workload is not started", headers: ["Retry-After": "1"])
        }
        let path = request.path
        let suffix = route == .channelMessages ? "/messages" : "/aggregate"
        let name = String(path.dropFirst("/v1/channels/".count).dropLast(suffix.count))
        guard ChannelAddress.isValidName(name) else {
            return EventRoutes.error(400, "invalid_channel_name",
                                     "channel names match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
        }
        let query = request.head.queryItems
        let base = workload.settings.events.deployment
        var agent = base.agentId
        if let text = query.last(where: { $0.name == "agent_id" })?.value {
            guard let id = IDValue.parseDigits(text).map(IDValue.init) else {
                return EventRoutes.error(400, "invalid_agent_id", "agent_id must be a decimal ID of 1-19 digits")
            }
            agent = id
        }
        let address = ChannelAddress(agentId: agent, name: name)
        switch route {
        case .channelMessages:
            var limit = 100
            if let text = query.last(where: { $0.name == "limit" })?.value {
                guard text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int(text), (1...1000).contains(n) else {
                    return EventRoutes.error(400, "invalid_limit", "limit must be an integer from 1 to 1000")
                }
                limit = n
            }
            do throws(ChannelStorageError) {
                let messages = try state.channels.messages(of: address, limit: limit)
                return EventRoutes.json(200, .object(["channel": address.json, "messages": .array(messages)]))
            } catch {
                return EventRoutes.error(500, "channel_read_failed", error.message)
            }
        default:
            if agent == base.agentId, name == "tag_values" {
                var map: JSONObject = [:]
                for (app, entry) in state.tagValues { map[app] = .object(entry) }
                return EventRoutes.json(200, .object(["channel": address.json, "data": .object(map),
                                                      "last_updated": .null]))
            }
            let record = state.channels.aggregate(of: address)
            return EventRoutes.json(200, .object([
                "channel": address.json, "data": record.data,
                "last_updated": record.lastUpdated.map(JSONValue.int) ?? .null,
            ]))
        }
    }

    // MARK: Pieces

    /// `X-Request-Id`: 1–128 characters in 0x21–0x7E, else ignored (§2.2).
    static func validRequestId(_ value: String?) -> String? {
        guard let value, !value.isEmpty, value.utf8.count <= 128,
              value.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E })
        else { return nil }
        return value
    }

    /// `?wait=true|1` (case-insensitive) and `?timeout=N` (1–300 s, default 30; an invalid value keeps the default).
    static func waitOptions(_ items: [(name: String, value: String)]) -> (Bool, Duration) {
        var wait = false
        var seconds = 30
        for item in items {
            if item.name == "wait" { wait = ["true", "1"].contains(item.value.lowercased()) }
            if item.name == "timeout", let n = Int(item.value), (1...300).contains(n) { seconds = n }
        }
        return (wait, .seconds(seconds))
    }

    /// `application/json`, parameters allowed, case-insensitive.
    static func isJSONMediaType(_ value: String) -> Bool {
        let type = value.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return type.trimmingSpaces().lowercased() == "application/json"
    }

    static func authorizationMessage(_ code: String) -> String {
        switch code {
        case "missing_authorization": "send Authorization: Bearer <control token>"
        case "invalid_authorization_format": "expected Authorization: Bearer <token>"
        default: "the token does not match"
        }
    }

    static func tooLarge(_ size: Int, _ max: Int) -> HTTPResponse {
        error(413, "event_too_large", "the body is larger than event_max_bytes",
              extra: ["size_bytes": .int(Int64(size)), "max_bytes": .int(Int64(max))])
    }

    static func json(_ status: Int, _ value: JSONValue, headers: HTTPHeaders = [:]) -> HTTPResponse {
        return encodedJSON(status, (try? JSON.encode(value)) ?? Array("null".utf8), headers: headers)
    }

    /// A JSON body already encoded.
    static func encodedJSON(_ status: Int, _ body: [UInt8], headers: HTTPHeaders = [:]) -> HTTPResponse {
        var headers = headers
        headers.add("Content-Type", jsonType)
        return HTTPResponse(status: status, headers: headers, body: body)
    }

    /// The runtime's error shape `{"error", "message", …}`; a 401 carries `WWW-Authenticate: Bearer`.
    static func error(_ status: Int, _ code: String, _ message: String, extra: JSONObject = [:],
                      headers: HTTPHeaders = [:]) -> HTTPResponse
    {
        var object = extra
        object["error"] = .string(code)
        object["message"] = .string(message)
        var headers = headers
        if status == 401 { headers.add("WWW-Authenticate", "Bearer") }
        return json(status, .object(object), headers: headers)
    }
}


extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}

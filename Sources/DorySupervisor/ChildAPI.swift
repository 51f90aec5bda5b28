import DoryHTTP
import DoryKit
import DoryState
import Synchronization

/// The recovery facts `GET /v1/state` reports for the current child (spec/supervise.md §6.3).
public struct ChildRecoveryInfo: Sendable, Equatable {
    public var strategy: String
    public var reason: String
    public var attempt: Int
    public var restartCount: Int
    public var childRestarts: Int

    public init(strategy: String, reason: String, attempt: Int, restartCount: Int, childRestarts: Int) {
        self.strategy = strategy
        self.reason = reason
        self.attempt = attempt
        self.restartCount = restartCount
        self.childRestarts = childRestarts
    }
}

/// What the child API needs from the runtime; the Supervisor implements it.
public protocol ChildAPIHost: Sendable {
    /// The runtime phase now.
    var phase: Phase { get }
    /// Whether a first child has been spawned in this boot (before: `PUT` answers 409 `no_child`).
    var childSpawned: Bool { get }
    /// The current child's recovery facts.
    func recoveryInfo() -> ChildRecoveryInfo
    /// The runtime's part of `GET /v1/context`: `pod_name`, `namespace`, `pod_uid`, `processor_id`, `app_name`,
    /// `boot_id`, `attempt`, `restart_count`, `child_restarts`, `strategy`, `reason`, `reset_caches`, `state_dir`,
    /// `version`. The API adds `phase`, `ready`, `child_pid`, `ready_mode` and `heartbeat_timeout_sec`.
    func contextValues() -> JSONObject
}

/// Counters of the child API for the metrics of spec/supervise.md §10.
public struct ChildAPICounters: Sendable, Equatable {
    /// `dory_state_puts_total{mode,result}`, keyed `"sync/ok"`, `"async/rejected"`, …
    public var statePuts: [String: Int] = [:]
    public var readyCalls = 0
    public var heartbeats = 0
}

/// The child API on the control socket (spec/supervise.md §6) as an `HTTPHandler`: `GET|HEAD|PUT /v1/state`,
/// `POST /v1/ready`, `POST /v1/heartbeat`, `GET|HEAD /v1/context`. Other paths answer 404 (use `handles(path:)`
/// to route only these here and `/prestop`, `/healthz` to the runtime's handler on the same socket).
public final class ChildAPI: HTTPHandler {
    public let slot: StateSlot
    public let liveness: ChildLiveness
    public let stateMaxBytes: Int
    private let host: any ChildAPIHost
    private let durable: DurableWrites
    private let events: ChildEvents?
    private let countersStorage = Mutex(ChildAPICounters())

    /// The routes and their methods.
    static let routes: [String: [String]] = [
        "/v1/state": ["GET", "HEAD", "PUT"],
        "/v1/ready": ["POST"],
        "/v1/heartbeat": ["POST"],
        "/v1/context": ["GET", "HEAD"],
    ]

    /// Bodies of routes other than `PUT /v1/state` are ignored up to this size (413 above).
    public static let otherBodyLimit = 4096

    /// - Parameters:
    ///   - persist: writes the slot contents with reason `api` (see `DurableWrites`).
    public init(
        host: any ChildAPIHost, slot: StateSlot, liveness: ChildLiveness, stateMaxBytes: Int, events: ChildEvents? = nil,
        persist: @escaping @Sendable (StateSlot.Contents) async -> PersistOutcome
    ) {
        self.host = host
        self.slot = slot
        self.liveness = liveness
        self.stateMaxBytes = stateMaxBytes
        self.events = events
        durable = DurableWrites(slot: slot, persist: persist)
    }

    /// Whether `path` is a child API route (for composing with the runtime's control-socket routes).
    public static func handles(path: Substring) -> Bool { routes[String(path)] != nil }

    public var counters: ChildAPICounters { countersStorage.withLock { $0 } }
    /// Durable writes made for PUTs so far.
    public var durableWrites: Int { get async { await durable.writes } }

    // MARK: HTTPHandler

    public func admit(_ head: HTTPRequestHead) -> HTTPAdmission {
        let path = String(head.path)
        guard let methods = Self.routes[path] else {
            return .reject(Self.error(404, "not_found", "no route for this path", extra: ["path": .string(path)]))
        }
        guard methods.contains(head.method) else {
            var response = Self.error(405, "method_not_allowed", "\(head.method) is not allowed on \(path)",
                                      extra: ["allow": .array(methods.map { .string($0) })])
            response.headers.add("Allow", methods.joined(separator: ", "))
            return .reject(response)
        }
        switch (path, head.method) {
        case ("/v1/state", "PUT"):
            let mode = Self.syncMode(head) ?? true ? "sync" : "async"
            if !host.childSpawned {
                count(mode, "rejected")
                return .reject(Self.error(409, "no_child", "no child has been spawned yet"))
            }
            if slot.finalSaveStarted {
                count(mode, "rejected")
                return .reject(Self.error(409, "final_save_started", "the final save has started; the state can no longer change"))
            }
            let limit = stateMaxBytes
            if let length = head.contentLength, length > limit {
                count(mode, "rejected")
                return .reject(Self.tooLarge(length, limit))
            }
            if Self.syncMode(head) == nil {
                count("sync", "rejected")
                return .reject(Self.error(400, "invalid_query", "sync must be 1, true, 0 or false"))
            }
            return .accept(maxBodyBytes: limit, tooLarge: { [weak self] size, limit in
                self?.count(mode, "rejected")
                return Self.tooLarge(size, limit)
            })
        case ("/v1/ready", _):
            let phase = host.phase
            if phase == .draining || phase == .stopping || phase == .stopped || phase == .failed {
                return .reject(Self.error(409, "shutting_down", "the pod is shutting down"))
            }
            return .accept(maxBodyBytes: Self.otherBodyLimit)
        default:
            return .accept(maxBodyBytes: Self.otherBodyLimit)
        }
    }

    public func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        switch answer(request) {
        case .now(let response): responder(response)
        case .durable(let sequence): Task { responder(await self.putDurable(request, sequence: sequence)) }
        }
    }

    enum Answer {
        case now(HTTPResponse)
        /// A durable PUT accepted with this sequence number: answered once a write holds it.
        case durable(UInt64)
    }

    /// Answers a request that needs no waiting; a durable PUT is accepted into the slot and waits.
    func answer(_ request: HTTPRequest) -> Answer {
        switch (String(request.path), request.method) {
        case ("/v1/state", "PUT"): putState(request)
        case ("/v1/state", _): .now(getState())
        case ("/v1/ready", _): .now(postReady())
        case ("/v1/heartbeat", _): .now(postHeartbeat())
        case ("/v1/context", _): .now(getContext())
        default: .now(Self.error(404, "not_found", "no route for this path"))
        }
    }

    /// The whole request → response path, admission included (for tests and for hosts that route themselves).
    public func respond(to request: HTTPRequest) async -> HTTPResponse {
        switch admit(request.head) {
        case .reject(let response):
            return response
        case .accept(let limit, let tooLarge):
            if request.body.count > limit { return tooLarge?(request.body.count, limit) ?? Self.tooLarge(request.body.count, limit) }
        }
        switch answer(request) {
        case .now(let response): return response
        case .durable(let sequence): return await putDurable(request, sequence: sequence)
        }
    }

    // MARK: Routes

    private func getState() -> HTTPResponse {
        let contents = slot.read()
        let info = host.recoveryInfo()
        return Self.json(200, [
            "state": contents.state.map { .object($0) } ?? .null,
            "generation": contents.generation.map { .int(Int64($0)) } ?? .null,
            "durable": .bool(contents.generation != nil),
            "strategy": .string(info.strategy),
            "reason": .string(info.reason),
            "attempt": .int(Int64(info.attempt)),
            "restart_count": .int(Int64(info.restartCount)),
            "child_restarts": .int(Int64(info.childRestarts)),
        ])
    }

    /// Checks and accepts a PUT (§6.4): JSON, then shape; `?sync=0` is answered here, a durable PUT waits.
    private func putState(_ request: HTTPRequest) -> Answer {
        let sync = Self.syncMode(request.head) ?? true
        let mode = sync ? "sync" : "async"
        guard case .object(let object)? = try? JSON.parse(request.body) else {
            return .now(parseError(request, mode: mode))
        }
        let sequence = slot.accept(object)
        events?.yield(.statePut(sequence: sequence, durable: sync))
        guard sync else {
            count(mode, "ok")
            return .now(Self.json(202, ["durable": false, "size_bytes": .int(Int64(request.body.count))]))
        }
        return .durable(sequence)
    }

    private func putDurable(_ request: HTTPRequest, sequence: UInt64) async -> HTTPResponse {
        let outcome = await durable.waitDurable(sequence: sequence)
        switch outcome {
        case .durable(let generation, let reused):
            count("sync", reused ? "reused" : "ok")
            return Self.json(200, [
                "generation": .int(Int64(generation)), "durable": true, "reused": .bool(reused),
                "size_bytes": .int(Int64(request.body.count)),
            ])
        case .failed(let step, let message):
            count("sync", "error")
            return Self.error(500, "save_failed", "\(step): \(message)", extra: ["step": .string(step)])
        case .timedOut:
            count("sync", "error")
            return Self.error(504, "save_timeout", "no durable generation within final_save_timeout_sec")
        }
    }

    private func parseError(_ request: HTTPRequest, mode: String) -> HTTPResponse {
        count(mode, "rejected")
        do {
            _ = try JSON.parse(request.body)
            return Self.error(400, "not_an_object", "the state must be a JSON object")
        } catch {
            return Self.error(400, "invalid_json", request.body.isEmpty ? "the body is empty" : error.description)
        }
    }

    private func postReady() -> HTTPResponse {
        countersStorage.withLock { $0.readyCalls += 1 }
        guard liveness.mode == .api else {
            return Self.json(200, ["ready": .bool(liveness.isChildReady), "applied": false])
        }
        liveness.markReady(via: .api)
        return Self.json(200, ["ready": true])
    }

    private func postHeartbeat() -> HTTPResponse {
        countersStorage.withLock { $0.heartbeats += 1 }
        liveness.heartbeat()
        var body: JSONObject = ["heartbeat_timeout_sec": .double(Double(liveness.heartbeatTimeoutMillis) / 1000)]
        if liveness.heartbeatTimeoutMillis > 0 {
            body["deadline_in_ms"] = .int(liveness.heartbeatDeadlineInMillis() ?? liveness.heartbeatTimeoutMillis)
        }
        return Self.json(200, body)
    }

    private func getContext() -> HTTPResponse {
        var body = host.contextValues()
        body["phase"] = .string(host.phase.description)
        body["ready"] = .bool(liveness.isChildReady)
        body["child_pid"] = liveness.childPID.map { .int(Int64($0)) } ?? .null
        body["ready_mode"] = .string(liveness.mode.rawValue)
        body["heartbeat_timeout_sec"] = .double(Double(liveness.heartbeatTimeoutMillis) / 1000)
        return Self.json(200, body)
    }

    // MARK: Helpers

    /// `sync` from the query: true (default, `1`/`true`), false (`0`/`false`), nil for anything else.
    static func syncMode(_ head: HTTPRequestHead) -> Bool? {
        var result = true
        for item in head.queryItems where item.name == "sync" {
            switch item.value {
            case "1", "true": result = true
            case "0", "false": result = false
            default: return nil
            }
        }
        return result
    }

    private func count(_ mode: String, _ result: String) {
        countersStorage.withLock { $0.statePuts["\(mode)/\(result)", default: 0] += 1 }
    }

    static func tooLarge(_ size: Int, _ limit: Int) -> HTTPResponse {
        error(413, "state_too_large", "the state is larger than state_max_bytes",
              extra: ["size_bytes": .int(Int64(size)), "max_bytes": .int(Int64(limit))])
    }

    static func json(_ status: Int, _ object: JSONObject) -> HTTPResponse {
        let bytes = (try? JSON.encode(.object(object))) ?? Array("{}".utf8)
        var headers = HTTPHeaders()
        headers.add("Content-Type", "application/json; charset=utf-8")
        return HTTPResponse(status: status, headers: headers, body: bytes)
    }

    /// The error shape of runtime §4.1: `{"error": code, "message": text, …extra}`.
    static func error(_ status: Int, _ code: String, _ message: String, extra: JSONObject = [:]) -> HTTPResponse {
        var object = extra
        object["error"] = .string(code)
        object["message"] = .string(message)
        return json(status, object)
    }
}

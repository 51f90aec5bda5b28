import DoryState

/// An invocation's outcome (§4.3).
public enum InvocationStatus: String, Sendable, Hashable, CaseIterable {
    case success
    case skipped
    case error
}

/// Why an invocation was skipped (§4.3, the complete list).
public enum SkipReason: String, Sendable, Hashable, CaseIterable {
    case unknownOp = "unknown_op"
    case noHandler = "no_handler"
    case preHookFilter = "pre_hook_filter"
    case tagValuesSelfLoop = "tag_values_self_loop"
    case postSetupFilter = "post_setup_filter"
}

/// The invocation summary (§5.1): 16 keys, always all present.
public struct InvocationSummary: Sendable, Equatable {
    public var appKey: String?
    public var appId: String?
    public var agentId: String?
    public var eventType: String?
    public var subscriptionId: String?
    public var scheduleId: JSONValue?
    public var ingestionId: JSONValue?
    public var startedAt: Int64
    public var durationMs: Int64
    public var status: InvocationStatus
    public var skipReason: SkipReason?
    public var error: EventErrorInfo?
    public var requestId: String?
    public var functionName: String?
    public var functionVersion: String?
    public var invocationId: String

    public init(appKey: String?, appId: String?, agentId: String?, eventType: String?, subscriptionId: String?,
                scheduleId: JSONValue?, ingestionId: JSONValue?, startedAt: Int64, durationMs: Int64,
                status: InvocationStatus, skipReason: SkipReason?, error: EventErrorInfo?, requestId: String?,
                functionName: String?, functionVersion: String?, invocationId: String)
    {
        self.appKey = appKey
        self.appId = appId
        self.agentId = agentId
        self.eventType = eventType
        self.subscriptionId = subscriptionId
        self.scheduleId = scheduleId
        self.ingestionId = ingestionId
        self.startedAt = startedAt
        self.durationMs = durationMs
        self.status = status
        self.skipReason = skipReason
        self.error = error
        self.requestId = requestId
        self.functionName = functionName
        self.functionVersion = functionVersion
        self.invocationId = invocationId
    }

    /// The summary as a JSON object.
    public var json: JSONValue {
        func s(_ v: String?) -> JSONValue { v.map(JSONValue.string) ?? .null }
        return .object([
            "app_key": s(appKey), "app_id": s(appId), "agent_id": s(agentId), "event_type": s(eventType),
            "subscription_id": s(subscriptionId), "schedule_id": scheduleId ?? .null,
            "ingestion_id": ingestionId ?? .null, "started_at": .int(startedAt), "duration_ms": .int(durationMs),
            "status": .string(status.rawValue), "skip_reason": s(skipReason?.rawValue),
            "error": error.map { .object(["type": .string($0.type), "message": .string($0.message)]) } ?? .null,
            "requestId": s(requestId), "function_name": s(functionName), "function_version": s(functionVersion),
            "invocation_id": .string(invocationId),
        ])
    }

    /// Compact JSON with the keys in the order of §5.1.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        func key(_ k: String, first: Bool = false) {
            if !first { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: k.utf8)
            out.append(contentsOf: "\":".utf8)
        }
        func str(_ v: String?) {
            if let v { JSON.appendQuoted(v, to: &out) } else { out.append(contentsOf: "null".utf8) }
        }
        func raw(_ v: JSONValue?) {
            guard let v, let bytes = try? JSON.encode(v) else { out.append(contentsOf: "null".utf8); return }
            out.append(contentsOf: bytes)
        }
        out.append(UInt8(ascii: "{"))
        key("app_key", first: true); str(appKey)
        key("app_id"); str(appId)
        key("agent_id"); str(agentId)
        key("event_type"); str(eventType)
        key("subscription_id"); str(subscriptionId)
        key("schedule_id"); raw(scheduleId)
        key("ingestion_id"); raw(ingestionId)
        key("started_at"); out.append(contentsOf: String(startedAt).utf8)
        key("duration_ms"); out.append(contentsOf: String(durationMs).utf8)
        key("status"); str(status.rawValue)
        key("skip_reason"); str(skipReason?.rawValue)
        key("error")
        if let error {
            out.append(contentsOf: "{\"type\":".utf8); str(error.type)
            out.append(contentsOf: ",\"message\":".utf8); str(error.message)
            out.append(UInt8(ascii: "}"))
        } else {
            out.append(contentsOf: "null".utf8)
        }
        key("requestId"); str(requestId)
        key("function_name"); str(functionName)
        key("function_version"); str(functionVersion)
        key("invocation_id"); str(invocationId)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Parses a summary object (as stored in a summary channel); nil when `json` is not one (§2.4 replay check).
    public init?(json: JSONValue) {
        guard case .object(let o) = json, o.count >= 16, case .string(let id)? = o["invocation_id"],
              case .string(let st)? = o["status"], let status = InvocationStatus(rawValue: st),
              case .int(let startedAt)? = o["started_at"], case .int(let duration)? = o["duration_ms"]
        else { return nil }
        func s(_ k: String) -> String? { if case .string(let v)? = o[k] { v } else { nil } }
        func raw(_ k: String) -> JSONValue? { if let v = o[k], v != .null { v } else { nil } }
        var error: EventErrorInfo?
        if case .object(let e)? = o["error"], case .string(let t)? = e["type"], case .string(let m)? = e["message"] {
            error = EventErrorInfo(type: t, message: m)
        }
        self.init(appKey: s("app_key"), appId: s("app_id"), agentId: s("agent_id"), eventType: s("event_type"),
                  subscriptionId: s("subscription_id"), scheduleId: raw("schedule_id"),
                  ingestionId: raw("ingestion_id"), startedAt: startedAt, durationMs: duration, status: status,
                  skipReason: s("skip_reason").flatMap(SkipReason.init(rawValue:)), error: error,
                  requestId: s("requestId"), functionName: s("function_name"),
                  functionVersion: s("function_version"), invocationId: id)
    }
}

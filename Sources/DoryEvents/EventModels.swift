import DoryState

// The typed event models of spec/event-pipeline.md §6.2–§6.3. Each parses from the op's `d` object and names the
// JSON path of the first problem (`PayloadError`, reported as `InvalidPayload`).

/// `{agent_id: ID value, name: string}`.
public struct ChannelRef: Sendable, Hashable {
    public var agentId: IDValue
    public var name: String

    public init(agentId: IDValue, name: String) {
        self.agentId = agentId
        self.name = name
    }

    public var address: ChannelAddress { ChannelAddress(agentId: agentId, name: name) }

    init(_ r: PayloadReader) throws(PayloadError) {
        agentId = try r.id("agent_id")
        name = try r.string("name")
    }
}

/// `{filename, size, url, content_type?}`.
public struct Attachment: Sendable, Hashable {
    public var filename: String
    public var size: Int64
    public var url: String
    public var contentType: String?

    init(_ r: PayloadReader) throws(PayloadError) {
        filename = try r.string("filename")
        size = try r.integer("size")
        url = try r.string("url")
        contentType = try r.optionalString("content_type")
    }

    static func list(_ r: PayloadReader, _ key: String) throws(PayloadError) -> [Attachment] {
        switch r.object[key] {
        case nil, .null?: return []
        case .array(let items)?:
            var out: [Attachment] = []
            out.reserveCapacity(items.count)
            for (i, item) in items.enumerated() {
                out.append(try Attachment(PayloadReader(value: item, path: r.at(key) + "[\(i)]")))
            }
            return out
        default:
            throw PayloadError(path: r.at(key), reason: "expected an array")
        }
    }
}

/// A channel message: `{id?, author_id?, channel, data, attachments?}`.
public struct Message: Sendable, Hashable {
    public var id: IDValue?
    public var authorId: IDValue?
    public var channel: ChannelRef
    /// Any JSON; the key is required, the value may be null.
    public var data: JSONValue
    public var attachments: [Attachment]

    init(_ r: PayloadReader) throws(PayloadError) {
        id = try r.optionalID("id")
        authorId = try r.optionalID("author_id")
        channel = try ChannelRef(r.child("channel"))
        data = try r.raw("data")
        attachments = try Attachment.list(r, "attachments")
    }
}

/// An aggregate as carried by events: `{data, attachments?, last_updated?}`.
public struct Aggregate: Sendable, Hashable {
    public var data: JSONValue
    public var attachments: [Attachment]
    /// Absent or null → nil; `0` stays `0`.
    public var lastUpdated: Int64?

    init(_ r: PayloadReader) throws(PayloadError) {
        data = try r.raw("data")
        attachments = try Attachment.list(r, "attachments")
        lastUpdated = try r.optionalInteger("last_updated")
    }
}

/// `on_message_create`: flat (`d` is the Message) or nested (`d.message`) form.
public struct MessageCreateEvent: Sendable, Hashable {
    public var message: Message
    /// The message's channel, which is also the invoking channel.
    public var channel: ChannelRef { message.channel }

    init(_ d: PayloadReader) throws(PayloadError) {
        if d.object["message"] != nil {
            message = try Message(d.child("message"))
        } else {
            message = try Message(d)
        }
    }
}

/// `on_aggregate_update`.
public struct AggregateUpdateEvent: Sendable, Hashable {
    public var channel: ChannelRef
    public var aggregate: Aggregate
    /// The patch that was applied.
    public var requestData: Aggregate
    public var authorId: IDValue?
    /// Raw JSON, unconverted (`"77"` stays a string).
    public var organisationId: JSONValue?

    init(_ d: PayloadReader) throws(PayloadError) {
        channel = try ChannelRef(d.child("channel"))
        aggregate = try Aggregate(d.child("aggregate"))
        requestData = try Aggregate(d.child("request_data"))
        authorId = try d.optionalID("author_id")
        organisationId = d.optionalRaw("organisation_id")
    }
}

/// An alarm's state.
public enum AlarmState: String, Sendable, Hashable, CaseIterable {
    case noData = "NoData"
    case ok = "OK"
    case alarm = "Alarm"
    case alarmPending = "AlarmPending"

    static func read(_ r: PayloadReader, _ key: String) throws(PayloadError) -> AlarmState {
        let text = try r.string(key)
        guard let s = AlarmState(rawValue: text) else {
            throw PayloadError(path: r.at(key), reason: "expected one of NoData, OK, Alarm, AlarmPending")
        }
        return s
    }
}

/// An alarm definition; fields beyond the required ones are kept in `raw` and not evaluated.
public struct Alarm: Sendable, Hashable {
    public var id: IDValue
    public var name: String
    public var description: String
    public var enabled: Bool
    public var state: AlarmState
    public var enteredStateTs: Int64
    public var key: String?
    /// The whole alarm object as received (operators, conditions, expiry, notification policy…).
    public var raw: JSONObject

    init(_ r: PayloadReader) throws(PayloadError) {
        id = try r.id("id")
        name = try r.string("name")
        description = try r.string("description")
        enabled = try r.bool("enabled")
        state = try AlarmState.read(r, "state")
        enteredStateTs = try r.integer("entered_state_ts")
        key = try r.optionalString("key")
        raw = r.object
    }
}

/// `on_alarm_trigger`.
public struct AlarmTriggerEvent: Sendable, Hashable {
    public var channel: ChannelRef
    public var alarm: Alarm
    public var oldState: AlarmState
    public var newState: AlarmState
    public var aggregate: Aggregate
    public var requestData: Aggregate
    public var organisationId: JSONValue?

    /// `new_state` is `Alarm`.
    public var isAlarm: Bool { newState == .alarm }
    /// `new_state` is `OK`.
    public var isCleared: Bool { newState == .ok }
    /// `aggregate.data[alarm.key]` when present, else nil.
    public var value: JSONValue? {
        guard let key = alarm.key, case .object(let o) = aggregate.data else { return nil }
        return o[key]
    }

    init(_ d: PayloadReader) throws(PayloadError) {
        channel = try ChannelRef(d.child("channel"))
        alarm = try Alarm(d.child("alarm"))
        oldState = try AlarmState.read(d, "old_state")
        newState = try AlarmState.read(d, "new_state")
        aggregate = try Aggregate(d.child("aggregate"))
        requestData = try Aggregate(d.child("request_data"))
        organisationId = d.optionalRaw("organisation_id")
    }
}

/// `on_deployment`: the five fields verbatim (raw JSON, not converted).
public struct DeploymentEvent: Sendable, Hashable {
    public var agentId: JSONValue
    public var appId: JSONValue
    public var appInstallId: JSONValue
    public var appKey: JSONValue
    public var appDisplayName: JSONValue

    init(_ d: PayloadReader) throws(PayloadError) {
        agentId = try d.raw("agent_id")
        appId = try d.raw("app_id")
        appInstallId = try d.raw("app_install_id")
        appKey = try d.raw("app_key")
        appDisplayName = try d.raw("app_display_name")
    }
}

/// `on_schedule`.
public struct ScheduleEvent: Sendable, Hashable {
    /// Raw JSON as received.
    public var scheduleId: JSONValue
    /// Set by doryd's own schedules (ms).
    public var scheduledAt: Int64?
    public var organisationId: JSONValue?

    init(_ d: PayloadReader) throws(PayloadError) {
        scheduleId = try d.raw("schedule_id")
        scheduledAt = try d.optionalInteger("scheduled_at")
        organisationId = d.optionalRaw("organisation_id")
    }
}

/// `on_ingestion_endpoint`; `payload` is what `parseIngestionPayload` returned.
public struct IngestionEndpointEvent: Sendable, Hashable {
    public var ingestionId: JSONValue
    /// The decoded payload.
    public var payload: JSONValue
    /// The payload string as received.
    public var rawPayload: String
    public var agentId: JSONValue?
    public var organisationId: JSONValue?
    public var invocationUrl: String?
    public var contentType: String?

    init(_ d: PayloadReader) throws(PayloadError) {
        ingestionId = try d.raw("ingestion_id")
        rawPayload = try d.string("payload")
        payload = .null
        agentId = d.optionalRaw("agent_id")
        organisationId = d.optionalRaw("organisation_id")
        invocationUrl = try d.optionalString("invocation_url")
        contentType = try d.optionalString("content_type")
    }
}

/// `on_manual_invoke`.
public struct ManualInvokeEvent: Sendable, Hashable {
    /// Key required; value may be null.
    public var organisationId: JSONValue
    /// Any JSON, verbatim.
    public var payload: JSONValue

    init(_ d: PayloadReader) throws(PayloadError) {
        organisationId = try d.raw("organisation_id")
        payload = try d.raw("payload")
    }
}

/// The seven ops of §3.
public enum EventOp: String, Sendable, Hashable, CaseIterable {
    case onMessageCreate = "on_message_create"
    case onAggregateUpdate = "on_aggregate_update"
    case onAlarmTrigger = "on_alarm_trigger"
    case onDeployment = "on_deployment"
    case onSchedule = "on_schedule"
    case onIngestionEndpoint = "on_ingestion_endpoint"
    case onManualInvoke = "on_manual_invoke"

    /// The metrics label: the op name, or `unknown` for anything else (§11).
    public static func metricLabel(_ op: String?) -> String {
        guard let op, EventOp(rawValue: op) != nil else { return "unknown" }
        return op
    }
}

/// A parsed processor event, one case per op; the argument of the filters.
public enum ProcessorEvent: Sendable, Hashable {
    case messageCreate(MessageCreateEvent)
    case aggregateUpdate(AggregateUpdateEvent)
    case alarmTrigger(AlarmTriggerEvent)
    case deployment(DeploymentEvent)
    case schedule(ScheduleEvent)
    case ingestionEndpoint(IngestionEndpointEvent)
    case manualInvoke(ManualInvokeEvent)

    public var op: EventOp {
        switch self {
        case .messageCreate: .onMessageCreate
        case .aggregateUpdate: .onAggregateUpdate
        case .alarmTrigger: .onAlarmTrigger
        case .deployment: .onDeployment
        case .schedule: .onSchedule
        case .ingestionEndpoint: .onIngestionEndpoint
        case .manualInvoke: .onManualInvoke
        }
    }

    /// The invoking channel (§3): message, aggregate and alarm events only.
    public var invokingChannel: ChannelRef? {
        switch self {
        case .messageCreate(let e): e.channel
        case .aggregateUpdate(let e): e.channel
        case .alarmTrigger(let e): e.channel
        default: nil
        }
    }

    /// Parses `d` for `op` (§6.3). The ingestion payload is left undecoded (`.null`); the pipeline decodes it with
    /// the application's `parseIngestionPayload`.
    public static func parse(op: EventOp, d: JSONObject) throws(PayloadError) -> ProcessorEvent {
        let r = PayloadReader(d, path: "d")
        switch op {
        case .onMessageCreate: return .messageCreate(try MessageCreateEvent(r))
        case .onAggregateUpdate: return .aggregateUpdate(try AggregateUpdateEvent(r))
        case .onAlarmTrigger: return .alarmTrigger(try AlarmTriggerEvent(r))
        case .onDeployment: return .deployment(try DeploymentEvent(r))
        case .onSchedule: return .schedule(try ScheduleEvent(r))
        case .onIngestionEndpoint: return .ingestionEndpoint(try IngestionEndpointEvent(r))
        case .onManualInvoke: return .manualInvoke(try ManualInvokeEvent(r))
        }
    }
}

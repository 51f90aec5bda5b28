import DoryKit
import DoryState
import Logging

/// An event-driven application (§4.6). doryd creates one instance with `init()` at workload start and never calls
/// it concurrently. Implement the handlers you need and list their ops in ``implementedHandlers``; everything else
/// has a default.
public protocol Application: Sendable {
    init()

    /// The ops whose handler this application implements (consulted at S4; `on_deployment` runs without one).
    var implementedHandlers: Set<EventOp> { get }

    /// Called at S11 of every invocation that passes the filters and guards.
    func setup() async throws
    /// Called at S15 whenever `setup()` was entered, after the tag commit.
    func close() async throws
    /// S6: `false` skips the event (`pre_hook_filter`) before setup; tags are not open yet.
    func preHookFilter(_ event: ProcessorEvent) async throws -> Bool
    /// S12: `false` skips the event (`post_setup_filter`); what `setup()` set is discarded.
    func postSetupFilter(_ event: ProcessorEvent) async throws -> Bool

    func onMessageCreate(_ event: MessageCreateEvent) async throws
    func onAggregateUpdate(_ event: AggregateUpdateEvent) async throws
    func onDeployment(_ event: DeploymentEvent) async throws
    func onSchedule(_ event: ScheduleEvent) async throws
    func onIngestionEndpoint(_ event: IngestionEndpointEvent) async throws
    func onManualInvoke(_ event: ManualInvokeEvent) async throws
    func onAlarmTrigger(_ event: AlarmTriggerEvent) async throws

    /// Decodes an ingestion payload (S5). The default decodes base64, then JSON (§6.3).
    func parseIngestionPayload(payload: String, contentType: String?) throws -> JSONValue
}

extension Application {
    public func setup() async throws {}
    public func close() async throws {}
    public func preHookFilter(_ event: ProcessorEvent) async throws -> Bool { true }
    public func postSetupFilter(_ event: ProcessorEvent) async throws -> Bool { true }
    public func onMessageCreate(_ event: MessageCreateEvent) async throws {}
    public func onAggregateUpdate(_ event: AggregateUpdateEvent) async throws {}
    public func onDeployment(_ event: DeploymentEvent) async throws {}
    public func onSchedule(_ event: ScheduleEvent) async throws {}
    public func onIngestionEndpoint(_ event: IngestionEndpointEvent) async throws {}
    public func onManualInvoke(_ event: ManualInvokeEvent) async throws {}
    public func onAlarmTrigger(_ event: AlarmTriggerEvent) async throws {}

    public func parseIngestionPayload(payload: String, contentType: String?) throws -> JSONValue {
        try DefaultIngestionParser.parse(payload)
    }
}

/// The default ingestion parser (§6.3): base64 (standard alphabet, whitespace ignored, optional padding), then JSON.
public enum DefaultIngestionParser {
    public static func parse(_ payload: String) throws(PayloadError) -> JSONValue {
        guard let bytes = Base64.decode(payload) else {
            throw PayloadError(path: "d.payload", reason: "not valid base64")
        }
        guard let value = try? JSON.parse(bytes) else {
            throw PayloadError(path: "d.payload", reason: "decoded bytes are not JSON")
        }
        return value
    }
}

// MARK: Provided operations (§4.6)

extension Application {
    /// Facts about the running invocation; throws ``NoActiveInvocation`` outside one.
    public var invocation: InvocationInfo {
        get throws { try InvocationContext.active().info }
    }

    /// The application's logger (`app`), bound to the invocation's context keys when called inside one.
    public var logger: Logger { logger(named: "app") }

    /// A logger with its own name (levels follow `log_overrides` by dotted prefix, §10.2).
    public func logger(named name: String) -> Logger {
        if let c = InvocationContext.current, !c.state.withLock({ $0.ended }) { return c.logger(label: name) }
        return DoryLogging.logger(label: name)
    }

    /// The tag's value: buffered in this invocation, else committed, else `default`. A copy (§7.3).
    /// - Parameter appKey: another app's entry; nil = the own app key.
    public func getTag(_ key: String, default defaultValue: JSONValue? = nil, appKey: String? = nil) throws
        -> JSONValue?
    {
        try InvocationContext.active().getTag(key, default: defaultValue, appKey: appKey)
    }

    /// Sets (null: deletes) one of the own app's tags; committed at S14. `log: true` writes the history message
    /// even without a change.
    public func setTag(_ key: String, _ value: JSONValue, log: Bool = false) throws {
        let c = try InvocationContext.active()
        try c.writeTag(app: c.deployment.appKey, key: key, value: value, log: log)
    }

    /// Sets another app's tag (the only way to); subject to anti-recursion when invoked from the app agent's
    /// `tag_values` (§8.3).
    public func setExternalTag(appKey: String, _ key: String, _ value: JSONValue, log: Bool = false,
                               allowInvokingChannel: Bool = false) throws
    {
        try InvocationContext.active().setExternalTag(appKey: appKey, key: key, value: value, log: log,
                                                      allow: allowInvokingChannel)
    }

    /// Appends a message to a local channel (durable when it returns) and returns its id.
    @discardableResult
    public func createMessage(channel: String, data: JSONValue, agentId: IDValue? = nil,
                              allowInvokingChannel: Bool = false) throws -> IDValue
    {
        try InvocationContext.active().createMessage(channel: channel, data: data, agentId: agentId,
                                                     allow: allowInvokingChannel)
    }

    /// Merges `patch` into a channel's aggregate (RFC 7386), or replaces it. On the app agent's `tag_values` it is
    /// a buffered tag write (`{app: {key: value|null}}`).
    public func updateAggregate(channel: String, patch: JSONValue, agentId: IDValue? = nil, replace: Bool = false,
                                allowInvokingChannel: Bool = false) throws
    {
        try InvocationContext.active().updateAggregate(channel: channel, patch: patch, agentId: agentId,
                                                       replace: replace, allow: allowInvokingChannel)
    }

    /// Appends `{"message", "title", "app_key", "invocation_id"}` to the app agent's `notifications` channel.
    @discardableResult
    public func sendNotification(_ message: String, title: String? = nil,
                                 allowInvokingChannel: Bool = false) throws -> IDValue
    {
        let c = try InvocationContext.active()
        let data: JSONValue = .object([
            "message": .string(message), "title": title.map(JSONValue.string) ?? .null,
            "app_key": .string(c.deployment.appKey), "invocation_id": .string(c.invocationId),
        ])
        return try c.createMessage(channel: "notifications", data: data, agentId: nil, allow: allowInvokingChannel)
    }
}

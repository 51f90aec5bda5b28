import DoryKit
import DoryState
import Logging
import Synchronization

/// Read-only facts about the running invocation (§4.1), for application code.
public struct InvocationInfo: Sendable, Equatable {
    public var invocationId: String
    public var requestId: String
    public var subscriptionId: String?
    public var op: String?
    /// `d.schedule_id` / `d.ingestion_id` as received.
    public var scheduleId: JSONValue?
    public var ingestionId: JSONValue?
    /// Wall-clock ms at S1.
    public var startedAt: Int64
    public var appKey: String
    public var appId: String
    public var agentId: IDValue
    public var organisationId: String?
    public var displayName: String
    /// The application's config values (YAML `config`, merged with the upgrade's `deployment_config`).
    public var config: JSONObject
    public var processorConfig: ProcessorConfig
    public var invokingChannel: ChannelRef?
}

/// The per-invocation context (§4.1): created at S1, found by application code through a task-local value that
/// child tasks inherit, and dead after S16 (calls then throw ``NoActiveInvocation``).
final class InvocationContext: Sendable {
    struct Mutable: Sendable {
        var deployment: Deployment
        var invokingChannel: ChannelRef?
        var buffer: TagBuffer
        var ended = false
        var setupEntered = false
        /// The `doryd.events` logger for the current `app_id` (rebuilt after S7).
        var eventsLogger: Logger?
    }

    @TaskLocal static var current: InvocationContext?

    let invocationId: String
    let requestId: String
    let subscriptionId: String?
    let op: String?
    let scheduleId: JSONValue?
    let ingestionId: JSONValue?
    let startedAt: Int64
    let runtime: EventRuntime
    let state: Mutex<Mutable>

    init(request: InvocationRequest, op: String?, scheduleId: JSONValue?, ingestionId: JSONValue?,
         startedAt: Int64, runtime: EventRuntime)
    {
        invocationId = request.invocationId
        requestId = request.requestId ?? request.invocationId
        subscriptionId = request.subscriptionId
        self.op = op
        self.scheduleId = scheduleId
        self.ingestionId = ingestionId
        self.startedAt = startedAt
        self.runtime = runtime
        state = Mutex(Mutable(deployment: runtime.base, buffer: TagBuffer(base: [:])))
    }

    /// The live context of the calling task, or ``NoActiveInvocation``.
    static func active() throws(NoActiveInvocation) -> InvocationContext {
        guard let c = current, !c.state.withLock({ $0.ended }) else { throw NoActiveInvocation() }
        return c
    }

    var deployment: Deployment { state.withLock { $0.deployment } }

    var info: InvocationInfo {
        state.withLock { s in
            InvocationInfo(
                invocationId: invocationId, requestId: requestId, subscriptionId: subscriptionId, op: op,
                scheduleId: scheduleId, ingestionId: ingestionId, startedAt: startedAt, appKey: s.deployment.appKey,
                appId: s.deployment.appId, agentId: s.deployment.agentId, organisationId: s.deployment.organisationId,
                displayName: s.deployment.displayName, config: s.deployment.config,
                processorConfig: s.deployment.processorConfig, invokingChannel: s.invokingChannel)
        }
    }

    /// The pipeline's `doryd.events` logger, cached until the deployment changes.
    var eventsLogger: Logger {
        if let cached = state.withLock({ $0.eventsLogger }) { return cached }
        let made = logger(label: "doryd.events")
        state.withLock { $0.eventsLogger = made }
        return made
    }

    /// Sets the resolved deployment (S7); the context's `app_id` follows.
    func resolve(_ deployment: Deployment) {
        state.withLock { s in
            // The cached logger carries `app_id`: only a different one needs a new logger.
            if s.deployment.appId != deployment.appId { s.eventsLogger = nil }
            s.deployment = deployment
        }
    }

    /// A logger bound to this invocation's context keys (`requestId`, `invocation_id`, `app_id`).
    func logger(label: String, appId: String? = nil) -> Logger {
        let metadata: Logger.Metadata = [
            "requestId": .string(requestId), "invocation_id": .string(invocationId),
            "app_id": .string(appId ?? deployment.appId),
        ]
        let stream = runtime.logStream
        return Logger(label: label) { label in
            DoryLogHandler(label: label, stream: stream, contextMetadata: metadata)
        }
    }

    // MARK: Anti-recursion (§8.3)

    /// Refuses a write to the invoking channel unless overridden or scoped to the own app key on `tag_values`.
    func checkWrite(to target: ChannelAddress, data: JSONValue?, allow: Bool) throws(InvokingChannelWriteRejected) {
        let (invoking, ownKey) = state.withLock { ($0.invokingChannel, $0.deployment.appKey) }
        guard let invoking, invoking.agentId == target.agentId, invoking.name == target.name else { return }
        if target.name == "tag_values", case .object(let o)? = data, o.keys.allSatisfy({ $0 == ownKey }) { return }
        if allow {
            eventsLogger.warning(
                "write to invoking channel allowed by override",
                metadata: ["agent_id": .string(target.agentId.decimal), "channel": .string(target.name)])
            return
        }
        throw InvokingChannelWriteRejected(agentId: target.agentId, name: target.name)
    }

    // MARK: Tags (§7.3)

    func getTag(_ key: String, default def: JSONValue?, appKey: String?) throws -> JSONValue? {
        let value: JSONValue? = try state.withLock { s throws -> JSONValue? in
            if s.ended { throw NoActiveInvocation() }
            let app = appKey ?? s.deployment.appKey
            guard !app.isEmpty else { throw InvalidArgument("app key must be a non-empty string") }
            guard !key.isEmpty else { throw InvalidArgument("tag name must be a non-empty string") }
            if s.buffer.isOpen { return s.buffer.get(app: app, key: key) }
            return runtime.state.tagValues[app]?[key]
        }
        return value ?? def
    }

    /// `setTag` / `setExternalTag` after their checks.
    func writeTag(app: String, key: String, value: JSONValue, log: Bool) throws {
        try state.withLock { s throws in
            if s.ended { throw NoActiveInvocation() }
            if s.buffer.isSealed { throw TagsSealed() }
            guard s.buffer.isOpen else { throw InvalidArgument("tags are not open yet") }
            guard !app.isEmpty else { throw InvalidArgument("app key must be a non-empty string") }
            guard !key.isEmpty else { throw InvalidArgument("tag name must be a non-empty string") }
            s.buffer.set(app: app, key: key, value: value, log: log)
        }
    }

    func setExternalTag(appKey: String, key: String, value: JSONValue, log: Bool, allow: Bool) throws {
        let d = deployment
        if appKey != d.appKey {
            try checkWrite(to: ChannelAddress(agentId: d.agentId, name: "tag_values"),
                           data: .object([appKey: .object([:])]), allow: allow)
        }
        try writeTag(app: appKey, key: key, value: value, log: log)
    }

    /// `updateAggregate` on the app agent's `tag_values`: a buffered tag write (§7.3).
    func updateTagAggregate(patch: JSONValue, replace: Bool, allow: Bool) throws {
        guard !replace else { throw InvalidArgument("tag_values cannot be replaced: patch it with {app: {key: value}}") }
        guard case .object(let apps) = patch else {
            throw InvalidArgument("a tag_values patch must be an object of app keys to objects")
        }
        var leaves: [(String, String, JSONValue)] = []
        for (app, entry) in apps {
            guard !app.isEmpty, case .object(let values) = entry else {
                throw InvalidArgument("a tag_values patch must be an object of app keys to objects")
            }
            for (key, value) in values {
                guard !key.isEmpty else { throw InvalidArgument("tag name must be a non-empty string") }
                leaves.append((app, key, value))
            }
        }
        let d = deployment
        try checkWrite(to: ChannelAddress(agentId: d.agentId, name: "tag_values"), data: patch, allow: allow)
        try state.withLock { s throws in
            if s.ended { throw NoActiveInvocation() }
            if s.buffer.isSealed { throw TagsSealed() }
            guard s.buffer.isOpen else { throw InvalidArgument("tags are not open yet") }
        }
        for (app, key, value) in leaves { try writeTag(app: app, key: key, value: value, log: false) }
    }

    // MARK: Channels (§8)

    func channelAddress(_ name: String, agentId: IDValue?) throws(InvalidArgument) -> ChannelAddress {
        guard ChannelAddress.isValidName(name) else { throw InvalidArgument("invalid channel name \"\(name)\"") }
        return ChannelAddress(agentId: agentId ?? deployment.agentId, name: name)
    }

    func createMessage(channel: String, data: JSONValue, agentId: IDValue?, allow: Bool) throws -> IDValue {
        if state.withLock({ $0.ended }) { throw NoActiveInvocation() }
        let address = try channelAddress(channel, agentId: agentId)
        try checkWrite(to: address, data: data, allow: allow)
        return try runtime.state.channels.append(to: address, authorId: deployment.agentId,
                                                 timestamp: runtime.clock(), invocationId: invocationId, data: data)
    }

    func updateAggregate(channel: String, patch: JSONValue, agentId: IDValue?, replace: Bool, allow: Bool) throws {
        if state.withLock({ $0.ended }) { throw NoActiveInvocation() }
        let address = try channelAddress(channel, agentId: agentId)
        if address.name == "tag_values", address.agentId == deployment.agentId {
            try updateTagAggregate(patch: patch, replace: replace, allow: allow)
            return
        }
        try checkWrite(to: address, data: patch, allow: allow)
        try runtime.state.channels.updateAggregate(address, patch: patch, replace: replace, now: runtime.clock())
    }
}

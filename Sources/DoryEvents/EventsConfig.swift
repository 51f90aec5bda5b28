import DoryState

/// The typed `events:` section (§9.1): the YAML base deployment, the summary's function name and version, and the
/// schedules. The flat settings (`event_queue_max`, …) are the runtime's (`DoryConfig`).
public struct EventsConfig: Sendable, Equatable {
    public var deployment: Deployment
    public var functionName: String
    public var functionVersion: String
    public var schedules: [ScheduleSpec]
    /// Warnings to log once at start-up (unknown processor config keys).
    public var warnings: [String]

    static let knownKeys: Set<String> = [
        "app_key", "app_id", "agent_id", "organisation_id", "display_name", "function_name", "function_version",
        "config", "processor_config", "schedules",
    ]

    /// Parses and validates the section. Errors name the key path (`events.schedules[1].cron`).
    /// - Parameters:
    ///   - section: the `events` value from the YAML loader (nil: the section is missing).
    ///   - processorId: the default `function_name`.
    ///   - version: the default `function_version` (doryd's version).
    ///   - zoneDirectory: where TZif files live.
    public static func parse(_ section: JSONValue?, processorId: String, version: String,
                             zoneDirectory: String = "/usr/share/zoneinfo") throws(EventsConfigError) -> EventsConfig
    {
        guard let section else { throw EventsConfigError(path: "events", reason: "required section missing") }
        guard case .object(let o) = section else { throw EventsConfigError(path: "events", reason: "expected a mapping") }
        for key in o.keys.sorted() where !knownKeys.contains(key) {
            throw EventsConfigError(path: "events." + key, reason: "unknown key")
        }
        func string(_ key: String, required: Bool) throws(EventsConfigError) -> String? {
            switch o[key] {
            case nil, .null?:
                if required { throw EventsConfigError(path: "events." + key, reason: "required, a non-empty string") }
                return nil
            case .string(let s)?:
                if s.isEmpty { throw EventsConfigError(path: "events." + key, reason: "expected a non-empty string") }
                return s
            default:
                throw EventsConfigError(path: "events." + key, reason: "expected a string")
            }
        }
        let appKey = try string("app_key", required: true)!
        let appId: String
        switch o["app_id"] {
        case .string(let s)? where !s.isEmpty: appId = s
        case .int(let i)?: appId = String(i)
        case nil, .null?: throw EventsConfigError(path: "events.app_id", reason: "required, a string or an integer")
        default: throw EventsConfigError(path: "events.app_id", reason: "expected a non-empty string or an integer")
        }
        guard let agentValue = o["agent_id"] else {
            throw EventsConfigError(path: "events.agent_id", reason: "required, an ID value")
        }
        guard let agentId = IDValue(json: agentValue) else {
            throw EventsConfigError(path: "events.agent_id", reason: "expected an ID value (0…9223372036854775807)")
        }
        var organisation: String?
        switch o["organisation_id"] {
        case nil, .null?: organisation = nil
        case .string(let s)?: organisation = s
        case let v?:
            guard let id = IDValue(json: v) else {
                throw EventsConfigError(path: "events.organisation_id", reason: "expected an ID value or a string")
            }
            organisation = id.decimal
        }
        let displayName = try string("display_name", required: false)
        var config: JSONObject = [:]
        switch o["config"] {
        case nil, .null?: break
        case .object(let c)?: config = c
        default: throw EventsConfigError(path: "events.config", reason: "expected a mapping")
        }
        var warnings: [String] = []
        var processorConfig = ProcessorConfig()
        switch o["processor_config"] {
        case nil, .null?: break
        case .object(let p)?:
            processorConfig = try processorConfig.overridden(by: p, path: "events.processor_config",
                                                             appIdForCheck: appId, warnings: &warnings)
        default: throw EventsConfigError(path: "events.processor_config", reason: "expected a mapping")
        }
        var schedules: [ScheduleSpec] = []
        switch o["schedules"] {
        case nil, .null?: break
        case .array(let items)?:
            var seen: Set<String> = []
            for (i, item) in items.enumerated() {
                let path = "events.schedules[\(i)]"
                let spec = try parseSchedule(item, path: path, zoneDirectory: zoneDirectory)
                guard seen.insert(spec.id).inserted else {
                    throw EventsConfigError(path: path + ".id", reason: "duplicate schedule id \"\(spec.id)\"")
                }
                schedules.append(spec)
            }
        default: throw EventsConfigError(path: "events.schedules", reason: "expected a list")
        }
        let deployment = Deployment(appKey: appKey, appId: appId, agentId: agentId, organisationId: organisation,
                                    displayName: displayName, config: config, processorConfig: processorConfig)
        return EventsConfig(deployment: deployment,
                            functionName: try string("function_name", required: false) ?? processorId,
                            functionVersion: try string("function_version", required: false) ?? version,
                            schedules: schedules, warnings: warnings)
    }

    static func parseSchedule(_ item: JSONValue, path: String, zoneDirectory: String) throws(EventsConfigError)
        -> ScheduleSpec
    {
        guard case .object(let s) = item else { throw EventsConfigError(path: path, reason: "expected a mapping") }
        for key in s.keys.sorted() where !["id", "rate", "cron", "time_zone"].contains(key) {
            throw EventsConfigError(path: path + "." + key, reason: "unknown key")
        }
        guard case .string(let id)? = s["id"], ScheduleSpec.isValidId(id) else {
            throw EventsConfigError(path: path + ".id", reason: "required, 1-64 characters of [A-Za-z0-9_.-]")
        }
        switch (s["rate"], s["cron"]) {
        case (let rate?, nil):
            guard case .string(let text) = rate, let seconds = ScheduleSpec.parseRate(text) else {
                throw EventsConfigError(path: path + ".rate",
                                        reason: "expected \"every <N><unit>\" with N > 0 and unit s, m, h or d")
            }
            if s["time_zone"] != nil {
                throw EventsConfigError(path: path + ".time_zone", reason: "only a cron schedule takes a time zone")
            }
            return ScheduleSpec(id: id, timing: .rate(seconds: seconds))
        case (nil, let cron?):
            guard case .string(let text) = cron else {
                throw EventsConfigError(path: path + ".cron", reason: "expected a string of five fields")
            }
            let expression: CronExpression
            switch CronExpression.parse(text) {
            case .success(let e): expression = e
            case .failure(let e): throw EventsConfigError(path: path + ".cron", reason: e.message)
            }
            var zoneName = "UTC"
            switch s["time_zone"] {
            case nil, .null?: break
            case .string(let z)?: zoneName = z
            default: throw EventsConfigError(path: path + ".time_zone", reason: "expected an IANA zone name")
            }
            switch TimeZoneRules.load(zoneName, directory: zoneDirectory) {
            case .success(let zone): return ScheduleSpec(id: id, timing: .cron(expression, zone))
            case .failure(let e): throw EventsConfigError(path: path + ".time_zone", reason: e.message)
            }
        default:
            throw EventsConfigError(path: path, reason: "needs exactly one of rate and cron")
        }
    }
}

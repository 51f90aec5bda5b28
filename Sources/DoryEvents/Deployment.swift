import DoryState

/// The identity and configuration an invocation runs with (§4.1): the YAML base (§9.1), or that base with an
/// event's `upgrade` applied (§6.4).
public struct Deployment: Sendable, Equatable {
    public var appKey: String
    /// Always a string (G4).
    public var appId: String
    /// The app agent.
    public var agentId: IDValue
    /// The organisation as text (an ID value is written in decimal); nil when unset.
    public var organisationId: String?
    public var displayName: String
    /// The application's own config values (`events.config`, shallow-merged with `upgrade.deployment_config`).
    public var config: JSONObject
    public var processorConfig: ProcessorConfig

    public init(appKey: String, appId: String, agentId: IDValue, organisationId: String? = nil,
                displayName: String? = nil, config: JSONObject = [:],
                processorConfig: ProcessorConfig = ProcessorConfig())
    {
        self.appKey = appKey
        self.appId = appId
        self.agentId = agentId
        self.organisationId = organisationId
        self.displayName = displayName ?? appKey
        self.config = config
        self.processorConfig = processorConfig
    }

    /// Applies `upgrade` (the value of `d.upgrade`) over `self` (§6.4). Absent or null → `self` unchanged.
    /// Processor-config warnings (unknown keys) are appended to `warnings`.
    public func applying(upgrade: JSONValue?, warnings: inout [String]) throws(EventsConfigError) -> Deployment {
        let base = "d.upgrade"
        switch upgrade {
        case nil, .null?: return self
        case .object(let u)?:
            var out = self
            if let v = u["agent_id"] {
                guard let id = IDValue(json: v) else {
                    throw EventsConfigError(path: base + ".agent_id", reason: "expected an ID value")
                }
                out.agentId = id
            }
            if let v = u["organisation_id"] {
                switch v {
                case .null: break
                case .string(let s): out.organisationId = s
                default:
                    guard let id = IDValue(json: v) else {
                        throw EventsConfigError(path: base + ".organisation_id",
                                                reason: "expected an ID value, a string or null")
                    }
                    out.organisationId = id.decimal
                }
            }
            if let v = u["app_key"] {
                guard case .string(let s) = v, !s.isEmpty else {
                    throw EventsConfigError(path: base + ".app_key", reason: "expected a non-empty string")
                }
                out.appKey = s
            }
            var procOverride: JSONObject?
            if let dc = u["deployment_config"] {
                let dcPath = base + ".deployment_config"
                switch dc {
                case .null: break
                case .object(let o):
                    for key in o.keys.sorted() {
                        let v = o[key]!
                        switch key {
                        case "APP_ID":
                            switch v {
                            case .string(let s): out.appId = s
                            case .int(let i): out.appId = String(i)
                            case .bigInt(let digits): out.appId = digits
                            default:
                                throw EventsConfigError(path: dcPath + ".APP_ID", reason: "expected a string or an integer")
                            }
                        case "APP_DISPLAY_NAME":
                            guard case .string(let s) = v else {
                                throw EventsConfigError(path: dcPath + ".APP_DISPLAY_NAME", reason: "expected a string")
                            }
                            out.displayName = s
                        case "dv_proc_config":
                            switch v {
                            case .null: break
                            case .object(let p): procOverride = p
                            default:
                                throw EventsConfigError(path: dcPath + ".dv_proc_config", reason: "expected an object or null")
                            }
                        default:
                            out.config[key] = v
                        }
                    }
                default:
                    throw EventsConfigError(path: dcPath, reason: "expected an object")
                }
            }
            if let procOverride {
                out.processorConfig = try out.processorConfig.overridden(
                    by: procOverride, path: base + ".deployment_config.dv_proc_config", appIdForCheck: out.appId,
                    warnings: &warnings)
            } else if out.appId != appId {
                // The targets were checked with the base app id; re-check them with the new one.
                for (i, t) in out.processorConfig.invTargets.enumerated()
                where !ChannelAddress.isValidName(t.channelName(appId: out.appId)) {
                    throw EventsConfigError(path: "processor_config.inv_targets[\(i)].channel",
                                            reason: "\"\(t.channelName(appId: out.appId))\" is not a valid channel name")
                }
            }
            return out
        case let other?:
            _ = other
            throw EventsConfigError(path: base, reason: "expected an object or null")
        }
    }
}

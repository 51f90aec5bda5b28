import DoryState
import Logging

/// A configuration problem: the key path and what is accepted. As a YAML problem it is a configuration error
/// (exit 2); from an `upgrade` it is the invocation's `ConfigError` (§4.5, §9).
public struct EventsConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The key path, e.g. `events.schedules[1].cron` or `d.upgrade.agent_id`.
    public let path: String
    public let reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    /// One line: `<path>: <reason>`.
    public var description: String { "\(path): \(reason)" }
}

/// The level names of §9.2, matched case-insensitively.
public enum EventLogLevel {
    public static let acceptedText = "trace, debug, info, notice, warning, warn, error, critical (case-insensitive)"

    public static func parse(_ text: String) -> Logger.Level? {
        switch text.lowercased() {
        case "trace": .trace
        case "debug": .debug
        case "info": .info
        case "notice": .notice
        case "warning", "warn": .warning
        case "error": .error
        case "critical": .critical
        default: nil
        }
    }

    static func read(_ value: JSONValue, path: String, field: String) throws(EventsConfigError) -> Logger.Level {
        let shown: String
        switch value {
        case .string(let s):
            if let level = parse(s) { return level }
            shown = "\"\(s)\""
        default:
            shown = (try? JSON.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "value"
        }
        throw EventsConfigError(path: path, reason: "invalid \(field) \(shown): expected one of \(acceptedText)")
    }
}

/// One summary target of `inv_targets` (§5.2): the channel template (may contain `$app_id`) and an optional agent.
public struct InvocationTarget: Sendable, Equatable {
    public var channel: String
    /// nil → the app agent.
    public var agentId: IDValue?

    public init(channel: String, agentId: IDValue? = nil) {
        self.channel = channel
        self.agentId = agentId
    }

    /// The channel name with every `$app_id` replaced.
    public func channelName(appId: String) -> String {
        channel.replacingAll("$app_id", with: appId)
    }
}

/// The processor config (§9.2).
public struct ProcessorConfig: Sendable, Equatable {
    /// nil = the runtime's `log_level`.
    public var logLevel: Logger.Level?
    /// Logger name → level.
    public var logOverrides: [String: Logger.Level]
    public var invTargets: [InvocationTarget]
    public var liveLogs: Bool

    public static let defaultTargets = [InvocationTarget(channel: "dv-proc-inv-$app_id")]

    public init(logLevel: Logger.Level? = nil, logOverrides: [String: Logger.Level] = [:],
                invTargets: [InvocationTarget] = ProcessorConfig.defaultTargets, liveLogs: Bool = false)
    {
        self.logLevel = logLevel
        self.logOverrides = logOverrides
        self.invTargets = invTargets
        self.liveLogs = liveLogs
    }

    /// Applies the fields present in `object` over `self` (an upgrade overrides field by field; the YAML over the
    /// defaults). Unknown keys become warnings. `appIdForCheck` validates target names after substitution.
    public func overridden(by object: JSONObject, path: String, appIdForCheck: String,
                           warnings: inout [String]) throws(EventsConfigError) -> ProcessorConfig
    {
        var out = self
        for key in object.keys.sorted() {
            let value = object[key]!
            let at = path + "." + key
            switch key {
            case "log_level":
                if case .null = value { out.logLevel = nil } else {
                    out.logLevel = try EventLogLevel.read(value, path: at, field: "log_level")
                }
            case "log_overrides":
                switch value {
                case .null: out.logOverrides = [:]
                case .object(let o):
                    var levels: [String: Logger.Level] = [:]
                    for (name, level) in o {
                        if case .null = level { continue }
                        levels[name] = try EventLogLevel.read(level, path: at + "." + name, field: "log level")
                    }
                    out.logOverrides = levels
                default:
                    throw EventsConfigError(path: at, reason: "expected an object of logger name to level name")
                }
            case "inv_targets":
                switch value {
                case .null: out.invTargets = ProcessorConfig.defaultTargets
                case .array(let items):
                    var targets: [InvocationTarget] = []
                    for (i, item) in items.enumerated() {
                        let itemPath = at + "[\(i)]"
                        guard case .object(let o) = item else {
                            throw EventsConfigError(path: itemPath, reason: "expected an object with a channel")
                        }
                        guard case .string(let channel)? = o["channel"], !channel.isEmpty else {
                            throw EventsConfigError(path: itemPath + ".channel", reason: "expected a non-empty string")
                        }
                        let target: InvocationTarget
                        switch o["agent_id"] {
                        case nil, .null?: target = InvocationTarget(channel: channel)
                        case let v?:
                            guard let id = IDValue(json: v) else {
                                throw EventsConfigError(path: itemPath + ".agent_id", reason: "expected an ID value")
                            }
                            target = InvocationTarget(channel: channel, agentId: id)
                        }
                        let name = target.channelName(appId: appIdForCheck)
                        guard ChannelAddress.isValidName(name) else {
                            throw EventsConfigError(path: itemPath + ".channel",
                                                    reason: "\"\(name)\" is not a valid channel name")
                        }
                        for extra in o.keys.sorted() where extra != "channel" && extra != "agent_id" {
                            warnings.append("unknown inv_targets key \"\(extra)\" ignored")
                        }
                        targets.append(target)
                    }
                    out.invTargets = targets
                default:
                    throw EventsConfigError(path: at, reason: "expected an array of {channel, agent_id?} or null")
                }
            case "live_logs":
                guard case .bool(let b) = value else { throw EventsConfigError(path: at, reason: "expected a boolean") }
                out.liveLogs = b
            default:
                warnings.append("unknown processor config key \"\(key)\" ignored")
            }
        }
        return out
    }
}

extension String {
    /// Every occurrence of `target` replaced (a byte-wise scan; `$app_id` substitution runs per invocation).
    func replacingAll(_ target: String, with replacement: String) -> String {
        let t = Array(target.utf8)
        guard let first = t.first else { return self }
        var found = false
        for b in utf8 where b == first {
            found = true
            break
        }
        if !found { return self }
        let bytes = Array(utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 16)
        var i = 0
        while i < bytes.count {
            if bytes[i] == first, i + t.count <= bytes.count, bytes[i..<(i + t.count)].elementsEqual(t) {
                out.append(contentsOf: replacement.utf8)
                i += t.count
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

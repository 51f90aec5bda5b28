import DoryState

/// doryd's built-in example application (§4.7), run by `doryd events` and `doryd invoke`: a temperature alert.
/// Its one config value is `threshold` (default 40).
public struct TemperatureAlertApp: Application {
    public init() {}

    public var implementedHandlers: Set<EventOp> { [.onMessageCreate, .onSchedule, .onManualInvoke, .onDeployment] }

    /// `config.threshold`: absent → 40; not a number → `ConfigError`.
    func threshold() throws -> JSONValue {
        switch try invocation.config["threshold"] {
        case nil: return .int(40)
        case .int(let v)?: return .int(v)
        case .double(let v)?: return .double(v)
        default: throw AppConfigError("config.threshold: expected a number")
        }
    }

    public func onMessageCreate(_ event: MessageCreateEvent) async throws {
        let limit = try threshold()
        guard case .object(let data) = event.message.data, let temp = data["temp"],
              let t = TemperatureAlertApp.number(temp), let l = TemperatureAlertApp.number(limit), t > l
        else {
            try setTag("alert", false)
            return
        }
        try setTag("alert", true)
        let text = "temperature \(TemperatureAlertApp.text(temp)) is above \(TemperatureAlertApp.text(limit))"
        try sendNotification(text, title: "Temperature alert")
    }

    public func onSchedule(_ event: ScheduleEvent) async throws {
        try setTag("last_poll", .int(try invocation.startedAt))
    }

    public func onManualInvoke(_ event: ManualInvokeEvent) async throws {
        let json = (try? JSON.encode(event.payload)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
        print("manual invoke \(json)")
    }

    public func onDeployment(_ event: DeploymentEvent) async throws {
        if try getTag("alert") == nil { try setTag("alert", false) }
    }

    /// Integers and doubles compared as numbers.
    static func number(_ v: JSONValue) -> Double? {
        switch v {
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }

    /// A number as JSON text (`41.5`, `40`).
    static func text(_ v: JSONValue) -> String {
        (try? JSON.encode(v)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }
}

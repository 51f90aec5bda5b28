import DoryState

/// A platform ID (spec/event-pipeline.md "ID value"): a JSON integer in 0…2^63−1, or a string of 1–19 ASCII digits
/// with a value in that range (leading zeros allowed). Floats, booleans, negatives and other strings are not IDs.
/// Written back out as a decimal string without leading zeros.
public struct IDValue: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let value: Int64

    public init(_ value: Int64) {
        precondition(value >= 0, "an ID value is never negative")
        self.value = value
    }

    /// Parses an ID value from JSON; nil when `json` is not one.
    public init?(json: JSONValue) {
        switch json {
        case .int(let v) where v >= 0:
            self.value = v
        case .string(let s):
            guard let v = IDValue.parseDigits(s) else { return nil }
            self.value = v
        default:
            return nil
        }
    }

    /// Parses 1–19 ASCII digits (no sign, no spaces) with a value ≤ Int64.max.
    public static func parseDigits(_ text: String) -> Int64? {
        let utf8 = text.utf8
        guard !utf8.isEmpty, utf8.count <= 19 else { return nil }
        var v: Int64 = 0
        for b in utf8 {
            guard b >= 48, b <= 57 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(b - 48))
            if o1 || o2 { return nil }
            v = a
        }
        return v
    }

    /// The decimal text without leading zeros.
    public var decimal: String { String(value) }
    public var description: String { decimal }
    public var json: JSONValue { .string(decimal) }
    public static func < (a: IDValue, b: IDValue) -> Bool { a.value < b.value }
}

/// A channel's address: agent id and name (§8.1). The same name on another agent is another channel.
public struct ChannelAddress: Sendable, Hashable, CustomStringConvertible {
    public let agentId: IDValue
    public let name: String

    public init(agentId: IDValue, name: String) {
        self.agentId = agentId
        self.name = name
    }

    /// `"<agent_id>/<name>"`, the key used by the workload state (§7.1).
    public var key: String { agentId.decimal + "/" + name }
    public var description: String { key }

    /// Parses a `"<agent_id>/<name>"` state key.
    public init?(key: String) {
        guard let slash = key.firstIndex(of: "/") else { return nil }
        guard let agent = IDValue.parseDigits(String(key[..<slash])) else { return nil }
        let name = String(key[key.index(after: slash)...])
        guard ChannelAddress.isValidName(name) else { return nil }
        self.init(agentId: IDValue(agent), name: name)
    }

    /// `^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$` (§8.1).
    public static func isValidName(_ name: String) -> Bool {
        let u = name.utf8
        guard !u.isEmpty, u.count <= 128 else { return false }
        var first = true
        for b in u {
            let alnum = (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)
            if first {
                guard alnum else { return false }
                first = false
            } else if !(alnum || b == 95 || b == 46 || b == 45) {
                return false
            }
        }
        return true
    }

    public var json: JSONValue { .object(["agent_id": agentId.json, "name": .string(name)]) }
}

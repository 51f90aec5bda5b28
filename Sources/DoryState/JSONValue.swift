/// A JSON value that keeps integers and doubles apart (spec/dory-runtime.md §3.1 "Numbers").
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    /// An integer beyond Int64, kept as its exact decimal digit text (optional leading `-`).
    case bigInt(String)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
}

/// A JSON object: the shape of every state.
public typealias JSONObject = [String: JSONValue]

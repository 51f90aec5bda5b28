import DoryState

/// Small readers for `JSONValue` in assertions.
extension JSONValue {
    subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }
    var string: String? { if case .string(let s) = self { return s }; return nil }
    var int: Int64? { if case .int(let i) = self { return i }; return nil }
    var double: Double? {
        switch self {
        case .double(let d): return d
        case .int(let i): return Double(i)
        default: return nil
        }
    }
    var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    var object: JSONObject? { if case .object(let o) = self { return o }; return nil }
    var array: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    var isNull: Bool { if case .null = self { return true }; return false }
}

extension JSON {
    /// Parses text or returns nil.
    static func object(_ text: String) -> JSONObject? { (try? JSON.parse(text))?.object }
    static func object(_ bytes: [UInt8]) -> JSONObject? { (try? JSON.parse(bytes))?.object }
}

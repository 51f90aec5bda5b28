// API surface of doryd's JSON codec. Bodies are implemented in the DoryState work.

/// Where and why a JSON text failed to parse.
public struct JSONParseError: Error, Sendable, Equatable {
    public let message: String
    public let offset: Int
    public init(message: String, offset: Int) { self.message = message; self.offset = offset }
}

/// A value JSON cannot express (NaN, infinity).
public struct JSONEncodeError: Error, Sendable, Equatable {
    public let message: String
    public init(message: String) { self.message = message }
}

/// doryd's JSON reader and writer. Numbers: a literal with a fraction or exponent is a double, one without is an
/// integer (beyond Int64: `.bigInt` with its exact digits). Doubles are written in the shortest round-trip text,
/// always with a fraction or exponent (`13.0`, `0.1`, `1e-05`, `1e+16`).
public enum JSON {
    public static func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSONValue { fatalError("unimplemented") }
    public static func parse(_ text: String) throws(JSONParseError) -> JSONValue { try parse(Array(text.utf8)) }
    /// Compact UTF-8 JSON; `sortedKeys` sorts object keys by code point (used for state hashes).
    public static func encode(_ value: JSONValue, sortedKeys: Bool = false) throws(JSONEncodeError) -> [UInt8] { fatalError("unimplemented") }
    /// Two-space indented JSON with sorted keys, for people (`doryd state show`).
    public static func encodePretty(_ value: JSONValue) throws(JSONEncodeError) -> String { fatalError("unimplemented") }
    /// Appends `string` as a quoted, escaped JSON string.
    public static func appendQuoted(_ string: String, to out: inout [UInt8]) { fatalError("unimplemented") }
}

// doryd's JSON codec: a strict RFC 8259 reader and a writer that keeps integers and doubles apart.

/// Where and why a JSON text failed to parse.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    /// Byte offset into the input where the problem was found.
    public let offset: Int
    public init(message: String, offset: Int) { self.message = message; self.offset = offset }
    public var description: String { "\(message) at byte \(offset)" }
}

/// A value JSON cannot express (NaN, infinity).
public struct JSONEncodeError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// doryd's JSON reader and writer. Numbers: a literal with a fraction or exponent is a double, one without is an
/// integer (beyond Int64: `.bigInt` with its exact digits). Doubles are written in the shortest round-trip text,
/// always with a fraction or exponent (`13.0`, `0.1`, `1e-05`, `1e+16`).
///
/// The parser is strict: no trailing commas, no leading zeros, no comments, no byte order mark, only valid escapes,
/// valid UTF-8, no lone surrogates, nesting at most `maxDepth` deep. Duplicate object keys: the last one wins.
public enum JSON {
    /// The deepest nesting of arrays and objects the parser accepts, so hostile input cannot overflow the stack.
    public static let maxDepth = 512

    public static func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSONValue {
        let result: Result<JSONValue, JSONParseError> = bytes.withUnsafeBufferPointer { buffer in
            var parser = JSONParser(buffer)
            do throws(JSONParseError) {
                return .success(try parser.parseDocument())
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    public static func parse(_ text: String) throws(JSONParseError) -> JSONValue { try parse(Array(text.utf8)) }

    /// Compact UTF-8 JSON; `sortedKeys` sorts object keys by code point (used for state hashes).
    public static func encode(_ value: JSONValue, sortedKeys: Bool = false) throws(JSONEncodeError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        try JSONWriter.writeCompact(value, sortedKeys: sortedKeys, to: &out)
        return out
    }

    /// Two-space indented JSON with sorted keys, for people (`doryd state show`).
    public static func encodePretty(_ value: JSONValue) throws(JSONEncodeError) -> String {
        var out: [UInt8] = []
        try JSONWriter.writePretty(value, indent: 0, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `string` as a quoted, escaped JSON string.
    public static func appendQuoted(_ string: String, to out: inout [UInt8]) {
        JSONWriter.appendQuoted(string, to: &out)
    }

    /// The canonical text of the reference Python SDK (spec §6.7): what
    /// `json.dumps(value, sort_keys=True)` prints, i.e. keys sorted by code point, `", "` and `": "` separators,
    /// every non-ASCII character (and DEL) as lower-case `\uXXXX` (surrogate pairs beyond the BMP), Python's float
    /// `repr`. Its SHA-256 is the checksum of a reference SDK state file.
    public static func canonicalPythonText(_ value: JSONValue) throws(JSONEncodeError) -> String {
        var out: [UInt8] = []
        try JSONWriter.writePythonCanonical(value, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Formats a finite double as doryd writes it (the form of Python's `repr`): shortest round-trip digits, always
    /// with a fraction or exponent; exponent form when the decimal exponent is below −4 or at least 16, with a sign
    /// and at least two exponent digits (`13.0`, `0.1`, `1e-05`, `1e+16`, `1.5e+300`).
    /// Returns nil for NaN and infinities.
    public static func formatDouble(_ value: Double) -> String? {
        guard value.isFinite else { return nil }
        var out: [UInt8] = []
        JSONWriter.appendDouble(value, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

import DoryState
import Logging

/// The JSON writer of the log handler: metadata values to JSON, strings and JSON values through DoryState's codec;
/// it never fails.
///
/// Metadata values render as:
/// - `.string` → a JSON string;
/// - `.stringConvertible` of an integer type → a JSON number; of `Bool` → `true`/`false`; of a finite `Double` or
///   `Float` → a JSON number (`13.0`, `1e+16`; a non-finite one → a string); of ``LogJSON`` → its JSON value;
///   anything else → the string of its `description`;
/// - `.dictionary` → an object with keys sorted by code point; `.array` → an array.
enum LogJSONWriter {
    static func appendString(_ string: String, to out: inout [UInt8]) {
        JSON.appendQuoted(string, to: &out)
    }

    static func appendValue(_ value: Logger.MetadataValue, to out: inout [UInt8]) {
        switch value {
        case .string(let string):
            appendString(string, to: &out)
        case .stringConvertible(let convertible):
            appendConvertible(convertible, to: &out)
        case .dictionary(let dictionary):
            out.append(0x7B)
            var first = true
            for key in dictionary.keys.sorted() {
                if !first { out.append(0x2C) }
                first = false
                appendString(key, to: &out)
                out.append(0x3A)
                appendValue(dictionary[key]!, to: &out)
            }
            out.append(0x7D)
        case .array(let array):
            out.append(0x5B)
            for (index, item) in array.enumerated() {
                if index > 0 { out.append(0x2C) }
                appendValue(item, to: &out)
            }
            out.append(0x5D)
        }
    }

    static func appendConvertible(_ value: any CustomStringConvertible & Sendable, to out: inout [UInt8]) {
        switch value {
        case let json as LogJSON:
            appendJSON(json.value, to: &out)
        case let raw as LogRawJSON:
            out.append(contentsOf: raw.bytes)
        case let bool as Bool:
            out.append(contentsOf: (bool ? "true" : "false").utf8)
        case let integer as any BinaryInteger:
            out.append(contentsOf: integer.description.utf8)
        case let double as Double:
            appendDouble(double, to: &out)
        case let float as Float:
            appendDouble(Double(float), to: &out)
        default:
            appendString(value.description, to: &out)
        }
    }

    static func appendDouble(_ double: Double, to out: inout [UInt8]) {
        if double.isFinite {
            out.append(contentsOf: double.description.utf8) // `13.0`, `0.1`, `1e+16`, `5e-324`: valid JSON
        } else {
            appendString(double.description, to: &out)
        }
    }

    /// A JSON value through doryd's codec (keys sorted); a value JSON cannot express (NaN) becomes its description.
    static func appendJSON(_ value: JSONValue, to out: inout [UInt8]) {
        if let bytes = try? JSON.encode(value, sortedKeys: true) {
            out.append(contentsOf: bytes)
        } else {
            appendString("\(value)", to: &out)
        }
    }

    /// A value as journald field text: strings raw, everything else compact JSON.
    static func fieldText(_ value: Logger.MetadataValue) -> [UInt8] {
        if case .string(let string) = value { return Array(string.utf8) }
        if case .stringConvertible(let convertible) = value, !(convertible is LogJSON), !(convertible is LogRawJSON),
           !(convertible is Bool),
           !(convertible is any BinaryInteger), !(convertible is Double), !(convertible is Float)
        {
            return Array(convertible.description.utf8)
        }
        var out: [UInt8] = []
        appendValue(value, to: &out)
        return out
    }
}

/// A ``JSONValue`` carried as log metadata: `Logger.MetadataValue.json(_:)` wraps it so it is written as JSON.
public struct LogJSON: CustomStringConvertible, Sendable {
    public var value: JSONValue
    public init(_ value: JSONValue) { self.value = value }
    public var description: String {
        var out: [UInt8] = []
        LogJSONWriter.appendJSON(value, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

/// Already encoded JSON text carried as log metadata, written verbatim (`Logger.MetadataValue.rawJSON(_:)`): for a
/// value encoded anyway, such as an invocation summary, so the log line does not encode it a second time.
public struct LogRawJSON: CustomStringConvertible, Sendable {
    /// One complete, valid JSON value (the caller's encoder guarantees it).
    public var bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var description: String { String(decoding: bytes, as: UTF8.self) }
}

extension Logger.MetadataValue {
    /// The `error` object of spec/dory-runtime.md §9.2: `{"type": type, "message": message}`. Put an errno's
    /// `strerror` text (`Input/output error`) in `message`.
    public static func errorValue(type: String, message: String) -> Logger.MetadataValue {
        .dictionary(["type": .string(type), "message": .string(message)])
    }

    /// The `error` object for a Swift error: its type name and its description.
    public static func errorValue(_ error: any Error) -> Logger.MetadataValue {
        errorValue(type: String(describing: Swift.type(of: error)), message: String(describing: error))
    }

    /// An integer written as a JSON number (same as `.stringConvertible(value)`).
    public static func int(_ value: Int) -> Logger.MetadataValue { .stringConvertible(value) }

    /// A 64-bit integer written as a JSON number (generations, byte counts).
    public static func int64(_ value: Int64) -> Logger.MetadataValue { .stringConvertible(value) }

    /// A double written as a JSON number (a non-finite one as a string).
    public static func double(_ value: Double) -> Logger.MetadataValue { .stringConvertible(value) }

    /// A boolean written as JSON `true`/`false`.
    public static func bool(_ value: Bool) -> Logger.MetadataValue { .stringConvertible(value) }

    /// Any JSON value, written as JSON.
    public static func json(_ value: JSONValue) -> Logger.MetadataValue { .stringConvertible(LogJSON(value)) }

    /// Already encoded JSON text, written verbatim (see ``LogRawJSON``).
    public static func rawJSON(_ bytes: [UInt8]) -> Logger.MetadataValue { .stringConvertible(LogRawJSON(bytes)) }
}

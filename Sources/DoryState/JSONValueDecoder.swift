// JSONValue → Decodable, with type-mismatch errors a user can read (`counter: expected integer, got string`).

/// Why a `JSONValue` did not decode into a Swift type.
public struct JSONValueDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Where, as `a.b[2].c` (empty at the top level).
    public let path: String
    /// What, e.g. `expected integer, got string`, `missing key`, `integer 300 out of range for Int8`.
    public let message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

/// Decodes any `Decodable` from a `JSONValue`.
///
/// Rules: an integer type accepts only `.int` (or `.bigInt` that fits) within its range, never a double or a
/// string; `Double`/`Float` accept `.double`, `.int` and `.bigInt`; `String` accepts only `.string`; `Bool` only
/// `.bool`; `JSONValue` takes the value as it is.
public struct JSONValueDecoder: Sendable {
    public init() {}

    public func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        try decodeValue(type, value, [])
    }
}

/// The kind of a value, as error messages name it.
func kindName(_ value: JSONValue) -> String {
    switch value {
    case .null: return "null"
    case .bool: return "boolean"
    case .int, .bigInt: return "integer"
    case .double: return "double"
    case .string: return "string"
    case .array: return "array"
    case .object: return "object"
    }
}

private func mismatch(_ expected: String, _ value: JSONValue, _ path: [any CodingKey]) -> JSONValueDecodingError {
    JSONValueDecodingError(path: renderCodingPath(path), message: "expected \(expected), got \(kindName(value))")
}

private func integer<I: FixedWidthInteger>(_ type: I.Type, _ value: JSONValue, _ path: [any CodingKey]) throws -> I {
    switch value {
    case .int(let v):
        guard let r = I(exactly: v) else {
            throw JSONValueDecodingError(path: renderCodingPath(path), message: "integer \(v) out of range for \(I.self)")
        }
        return r
    case .bigInt(let digits):
        if let r = I(digits) { return r }
        throw JSONValueDecodingError(path: renderCodingPath(path), message: "integer \(digits) out of range for \(I.self)")
    default:
        throw mismatch("integer", value, path)
    }
}

private func double(_ value: JSONValue, _ path: [any CodingKey]) throws -> Double {
    switch value {
    case .double(let d): return d
    case .int(let i): return Double(i)
    case .bigInt(let digits):
        guard let d = Double(digits), d.isFinite else { throw mismatch("number", value, path) }
        return d
    default: throw mismatch("number", value, path)
    }
}

/// Decodes primitives directly; other types decode themselves through a `ValueDecoder`.
private func decodeValue<T: Decodable>(_ type: T.Type, _ value: JSONValue, _ path: [any CodingKey]) throws -> T {
    if T.self == JSONValue.self { return value as! T }
    if T.self == String.self {
        guard case .string(let s) = value else { throw mismatch("string", value, path) }
        return s as! T
    }
    if T.self == Bool.self {
        guard case .bool(let b) = value else { throw mismatch("boolean", value, path) }
        return b as! T
    }
    if T.self == Int.self { return try integer(Int.self, value, path) as! T }
    if T.self == Int64.self { return try integer(Int64.self, value, path) as! T }
    if T.self == Double.self { return try double(value, path) as! T }
    if T.self == Float.self {
        let d = try double(value, path)
        let f = Float(d)
        guard f.isFinite else {
            throw JSONValueDecodingError(path: renderCodingPath(path), message: "\(d) out of range for Float")
        }
        return f as! T
    }
    if T.self == Int32.self { return try integer(Int32.self, value, path) as! T }
    if T.self == Int16.self { return try integer(Int16.self, value, path) as! T }
    if T.self == Int8.self { return try integer(Int8.self, value, path) as! T }
    if T.self == UInt.self { return try integer(UInt.self, value, path) as! T }
    if T.self == UInt64.self { return try integer(UInt64.self, value, path) as! T }
    if T.self == UInt32.self { return try integer(UInt32.self, value, path) as! T }
    if T.self == UInt16.self { return try integer(UInt16.self, value, path) as! T }
    if T.self == UInt8.self { return try integer(UInt8.self, value, path) as! T }
    return try T(from: ValueDecoder(value: value, codingPath: path))
}

struct ValueDecoder: Decoder {
    let value: JSONValue
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let object) = value else { throw mismatch("object", value, codingPath) }
        return KeyedDecodingContainer(KeyedDecoder<Key>(object: object, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let items) = value else { throw mismatch("array", value, codingPath) }
        return UnkeyedDecoder(items: items, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleDecoder(value: value, codingPath: codingPath)
    }
}

struct KeyedDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let object: JSONObject
    let codingPath: [any CodingKey]

    var allKeys: [Key] { object.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { object[key.stringValue] != nil }

    private func value(_ key: Key) throws -> JSONValue {
        guard let v = object[key.stringValue] else {
            throw JSONValueDecodingError(path: renderCodingPath(codingPath + [key]), message: "missing key")
        }
        return v
    }

    func decodeNil(forKey key: Key) throws -> Bool { try value(key) == .null }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try decodeValue(type, try value(key), codingPath + [key])
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let v = object[key.stringValue], v != .null else { return nil }
        return try decodeValue(type, v, codingPath + [key])
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try ValueDecoder(value: try value(key), codingPath: codingPath + [key]).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try ValueDecoder(value: try value(key), codingPath: codingPath + [key]).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        ValueDecoder(value: object["super"] ?? .null, codingPath: codingPath + [StringKey("super")])
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        ValueDecoder(value: object[key.stringValue] ?? .null, codingPath: codingPath + [key])
    }
}

struct UnkeyedDecoder: UnkeyedDecodingContainer {
    let items: [JSONValue]
    let codingPath: [any CodingKey]
    var currentIndex = 0

    init(items: [JSONValue], codingPath: [any CodingKey]) {
        self.items = items
        self.codingPath = codingPath
    }

    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    private func next() throws -> JSONValue {
        guard currentIndex < items.count else {
            throw JSONValueDecodingError(
                path: renderCodingPath(codingPath + [IndexKey(currentIndex)]), message: "missing array element")
        }
        return items[currentIndex]
    }

    mutating func decodeNil() throws -> Bool {
        if try next() == .null {
            currentIndex += 1
            return true
        }
        return false
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let v = try decodeValue(type, try next(), codingPath + [IndexKey(currentIndex)])
        currentIndex += 1
        return v
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        let c = try ValueDecoder(value: try next(), codingPath: codingPath + [IndexKey(currentIndex)])
            .container(keyedBy: type)
        currentIndex += 1
        return c
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let c = try ValueDecoder(value: try next(), codingPath: codingPath + [IndexKey(currentIndex)])
            .unkeyedContainer()
        currentIndex += 1
        return c
    }

    mutating func superDecoder() throws -> any Decoder {
        let d = ValueDecoder(value: try next(), codingPath: codingPath + [IndexKey(currentIndex)])
        currentIndex += 1
        return d
    }
}

struct SingleDecoder: SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [any CodingKey]

    func decodeNil() -> Bool { value == .null }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decodeValue(type, value, codingPath) }
}

extension JSONValue: Codable {
    /// Encodes through any encoder; `JSONValueEncoder` inserts the value unchanged instead.
    /// (A foreign encoder gets a `.bigInt` as a Double.)
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .bigInt(let digits): try c.encode(Double(digits) ?? 0)
        case .double(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// Decodes through any decoder; `JSONValueDecoder` hands the value over unchanged instead.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null } else if let b = try? c.decode(Bool.self) { self = .bool(b) } else if let i = try? c.decode(Int64.self) {
            self = .int(i)
        } else if let d = try? c.decode(Double.self) { self = .double(d) } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) { self = .array(a) } else {
            self = .object(try c.decode(JSONObject.self))
        }
    }
}

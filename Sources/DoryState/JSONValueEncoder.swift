// Codable → JSONValue. Integers stay `.int`, floating point stays `.double`; a non-finite number fails.

/// Encodes any `Encodable` into a `JSONValue` (the shape doryd stores and sends).
///
/// Integers become `.int` (a `UInt64` beyond `Int64.max` becomes `.bigInt`), `Double` and `Float` become `.double`
/// (a `Float` keeps its shortest decimal text, so `Float(0.1)` is `0.1`), a `JSONValue` is inserted as it is.
/// A NaN or infinite value throws `JSONEncodeError` naming where it was.
public struct JSONValueEncoder: Sendable {
    public init() {}

    public func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        if let direct = value as? JSONValue { return direct }
        let node = EncodingNode()
        let encoder = ValueEncoder(node: node, codingPath: [])
        try value.encode(to: encoder)
        return node.resolve()
    }
}

/// Renders a coding path as `a.b[2].c`.
func renderCodingPath(_ path: [any CodingKey]) -> String {
    var out = ""
    for key in path {
        if let index = key.intValue, key.stringValue == "Index \(index)" || key is IndexKey {
            out += "[\(index)]"
        } else {
            if !out.isEmpty { out += "." }
            out += key.stringValue
        }
    }
    return out
}

/// A coding key for array positions.
struct IndexKey: CodingKey {
    let intValue: Int?
    var stringValue: String { "Index \(intValue ?? 0)" }
    init(_ index: Int) { intValue = index }
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { self.intValue = intValue }
}

/// A coding key for arbitrary strings (`superEncoder`).
struct StringKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

/// One value under construction. Containers hold child nodes so nested containers can be filled in any order.
final class EncodingNode {
    enum Content {
        case empty
        case value(JSONValue)
        case object([String: EncodingNode])
        case array([EncodingNode])
    }
    var content: Content = .empty

    func resolve() -> JSONValue {
        switch content {
        case .empty: return .object([:])
        case .value(let v): return v
        case .object(let children):
            var object = JSONObject(minimumCapacity: children.count)
            for (key, child) in children { object[key] = child.resolve() }
            return .object(object)
        case .array(let children): return .array(children.map { $0.resolve() })
        }
    }
}

private func nonFinite(_ value: some BinaryFloatingPoint, _ path: [any CodingKey]) -> JSONEncodeError {
    let where_ = renderCodingPath(path)
    return JSONEncodeError(message: (where_.isEmpty ? "" : "\(where_): ") + "\(value) cannot be expressed in JSON")
}

/// The JSON value of a primitive, or nil when `value` is not one (then it encodes itself).
private func primitive<T: Encodable>(_ value: T, _ path: [any CodingKey]) throws -> JSONValue? {
    switch value {
    case let v as JSONValue: return v
    case let v as String: return .string(v)
    case let v as Bool: return .bool(v)
    case let v as Int: return .int(Int64(v))
    case let v as Int64: return .int(v)
    case let v as Int32: return .int(Int64(v))
    case let v as Int16: return .int(Int64(v))
    case let v as Int8: return .int(Int64(v))
    case let v as UInt: return unsigned(UInt64(v))
    case let v as UInt64: return unsigned(v)
    case let v as UInt32: return .int(Int64(v))
    case let v as UInt16: return .int(Int64(v))
    case let v as UInt8: return .int(Int64(v))
    case let v as Double:
        guard v.isFinite else { throw nonFinite(v, path) }
        return .double(v)
    case let v as Float:
        guard v.isFinite else { throw nonFinite(v, path) }
        return .double(Double(v.description) ?? Double(v))
    default: return nil
    }
}

private func unsigned(_ v: UInt64) -> JSONValue {
    v <= UInt64(Int64.max) ? .int(Int64(v)) : .bigInt(String(v))
}

private func encodeChild<T: Encodable>(_ value: T, into node: EncodingNode, path: [any CodingKey]) throws {
    if let p = try primitive(value, path) {
        node.content = .value(p)
    } else {
        try value.encode(to: ValueEncoder(node: node, codingPath: path))
    }
}

struct ValueEncoder: Encoder {
    let node: EncodingNode
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object = node.content {} else { node.content = .object([:]) }
        return KeyedEncodingContainer(KeyedEncoder<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .array = node.content {} else { node.content = .array([]) }
        return UnkeyedEncoder(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleEncoder(node: node, codingPath: codingPath)
    }
}

struct KeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: EncodingNode
    let codingPath: [any CodingKey]

    private func child(_ key: String) -> EncodingNode {
        guard case .object(var children) = node.content else { preconditionFailure("keyed container on a non-object") }
        if let existing = children[key] { return existing }
        let c = EncodingNode()
        children[key] = c
        node.content = .object(children)
        return c
    }

    private func set(_ value: JSONValue, _ key: Key) { child(key.stringValue).content = .value(value) }

    mutating func encodeNil(forKey key: Key) throws { set(.null, key) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { set(.bool(value), key) }
    mutating func encode(_ value: String, forKey key: Key) throws { set(.string(value), key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { set(.int(Int64(value)), key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { set(.int(value), key) }
    mutating func encode(_ value: Double, forKey key: Key) throws {
        guard value.isFinite else { throw nonFinite(value, codingPath + [key]) }
        set(.double(value), key)
    }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try encodeChild(value, into: child(key.stringValue), path: codingPath + [key])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
        -> KeyedEncodingContainer<NestedKey>
    {
        ValueEncoder(node: child(key.stringValue), codingPath: codingPath + [key]).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        ValueEncoder(node: child(key.stringValue), codingPath: codingPath + [key]).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        ValueEncoder(node: child("super"), codingPath: codingPath + [StringKey("super")])
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        ValueEncoder(node: child(key.stringValue), codingPath: codingPath + [key])
    }
}

struct UnkeyedEncoder: UnkeyedEncodingContainer {
    let node: EncodingNode
    let codingPath: [any CodingKey]

    var count: Int {
        guard case .array(let children) = node.content else { return 0 }
        return children.count
    }

    private func append() -> EncodingNode {
        guard case .array(var children) = node.content else { preconditionFailure("unkeyed container on a non-array") }
        let c = EncodingNode()
        children.append(c)
        node.content = .array(children)
        return c
    }

    mutating func encodeNil() throws { append().content = .value(.null) }
    mutating func encode(_ value: Bool) throws { append().content = .value(.bool(value)) }
    mutating func encode(_ value: String) throws { append().content = .value(.string(value)) }
    mutating func encode(_ value: Int) throws { append().content = .value(.int(Int64(value))) }
    mutating func encode(_ value: Double) throws {
        guard value.isFinite else { throw nonFinite(value, codingPath + [IndexKey(count)]) }
        append().content = .value(.double(value))
    }
    mutating func encode<T: Encodable>(_ value: T) throws {
        let path = codingPath + [IndexKey(count)]
        try encodeChild(value, into: append(), path: path)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type)
        -> KeyedEncodingContainer<NestedKey>
    {
        let path = codingPath + [IndexKey(count)]
        return ValueEncoder(node: append(), codingPath: path).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let path = codingPath + [IndexKey(count)]
        return ValueEncoder(node: append(), codingPath: path).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let path = codingPath + [IndexKey(count)]
        return ValueEncoder(node: append(), codingPath: path)
    }
}

struct SingleEncoder: SingleValueEncodingContainer {
    let node: EncodingNode
    let codingPath: [any CodingKey]

    mutating func encodeNil() throws { node.content = .value(.null) }
    mutating func encode(_ value: Bool) throws { node.content = .value(.bool(value)) }
    mutating func encode(_ value: String) throws { node.content = .value(.string(value)) }
    mutating func encode(_ value: Int) throws { node.content = .value(.int(Int64(value))) }
    mutating func encode(_ value: Int64) throws { node.content = .value(.int(value)) }
    mutating func encode(_ value: Double) throws {
        guard value.isFinite else { throw nonFinite(value, codingPath) }
        node.content = .value(.double(value))
    }
    mutating func encode<T: Encodable>(_ value: T) throws {
        try encodeChild(value, into: node, path: codingPath)
    }
}

import DoryState

/// A mismatch between `d` and the op's shape (§6.3): reported as `InvalidPayload` with `<json path>: <reason>`.
public struct PayloadError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The JSON path, e.g. `d.channel.agent_id`.
    public let path: String
    public let reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(reason)" }
}

/// Reads typed members of one JSON object, naming the path of whatever is wrong.
struct PayloadReader {
    let object: JSONObject
    let path: String

    init(_ object: JSONObject, path: String) {
        self.object = object
        self.path = path
    }

    /// A reader over `value` at `path`; throws when it is not an object.
    init(value: JSONValue?, path: String) throws(PayloadError) {
        guard let value else { throw PayloadError(path: path, reason: "required object missing") }
        guard case .object(let o) = value else { throw PayloadError(path: path, reason: "expected an object") }
        self.init(o, path: path)
    }

    func at(_ key: String) -> String { path + "." + key }

    func raw(_ key: String) throws(PayloadError) -> JSONValue {
        guard let v = object[key] else { throw PayloadError(path: at(key), reason: "required value missing") }
        return v
    }

    func optionalRaw(_ key: String) -> JSONValue? {
        object[key]
    }

    func string(_ key: String) throws(PayloadError) -> String {
        switch object[key] {
        case nil: throw PayloadError(path: at(key), reason: "required string missing")
        case .string(let s)?: return s
        default: throw PayloadError(path: at(key), reason: "expected a string")
        }
    }

    /// Absent or null → nil.
    func optionalString(_ key: String) throws(PayloadError) -> String? {
        switch object[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        default: throw PayloadError(path: at(key), reason: "expected a string or null")
        }
    }

    func bool(_ key: String) throws(PayloadError) -> Bool {
        switch object[key] {
        case nil: throw PayloadError(path: at(key), reason: "required boolean missing")
        case .bool(let b)?: return b
        default: throw PayloadError(path: at(key), reason: "expected a boolean")
        }
    }

    func integer(_ key: String) throws(PayloadError) -> Int64 {
        switch object[key] {
        case nil: throw PayloadError(path: at(key), reason: "required integer missing")
        case .int(let v)?: return v
        default: throw PayloadError(path: at(key), reason: "expected an integer")
        }
    }

    /// Absent or null → nil.
    func optionalInteger(_ key: String) throws(PayloadError) -> Int64? {
        switch object[key] {
        case nil, .null?: return nil
        case .int(let v)?: return v
        default: throw PayloadError(path: at(key), reason: "expected an integer or null")
        }
    }

    func id(_ key: String) throws(PayloadError) -> IDValue {
        guard let v = object[key] else { throw PayloadError(path: at(key), reason: "required ID value missing") }
        guard let id = IDValue(json: v) else { throw PayloadError(path: at(key), reason: "expected an ID value") }
        return id
    }

    /// Absent or null → nil.
    func optionalID(_ key: String) throws(PayloadError) -> IDValue? {
        switch object[key] {
        case nil, .null?: return nil
        case let v?:
            guard let id = IDValue(json: v) else { throw PayloadError(path: at(key), reason: "expected an ID value") }
            return id
        }
    }

    func child(_ key: String) throws(PayloadError) -> PayloadReader {
        try PayloadReader(value: object[key], path: at(key))
    }
}

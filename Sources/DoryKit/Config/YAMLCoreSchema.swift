import DoryState

/// Converts YAML nodes where a value has no setting type (the `events:` section) to JSON values with the
/// YAML 1.2 core schema for plain scalars: `null`/`Null`/`NULL`/`~`/empty → null, `true`/`True`/`TRUE` and the
/// `false` forms → booleans, decimal integers (optional sign; `010` is 10) → integers (beyond Int64: `.bigInt`),
/// decimal floats (`1.5`, `-.5`, `1e3`) → doubles. Everything else, and every quoted, block or `!!str` scalar, is a
/// string. `0x1F`, `0o17`, `.inf` and `.nan` stay strings (JSON has no such numbers; §10 asks for decimal only).
public enum YAMLCoreSchema {
    /// Deepest accepted nesting is that of ``YAMLDocument/maxDepth``.
    public static func jsonValue(_ node: YAMLNode) throws(YAMLError) -> JSONValue {
        switch node {
        case .scalar(let scalar):
            return try scalarValue(scalar)
        case .sequence(let items, _):
            var array: [JSONValue] = []
            array.reserveCapacity(items.count)
            for item in items { array.append(try jsonValue(item)) }
            return .array(array)
        case .mapping(let entries, _):
            var object: JSONObject = [:]
            for entry in entries { object[entry.key.text] = try jsonValue(entry.value) }
            return .object(object)
        }
    }

    /// One scalar under the core schema.
    public static func scalarValue(_ scalar: YAMLScalar) throws(YAMLError) -> JSONValue {
        guard scalar.isPlain else { return .string(scalar.text) }
        let text = scalar.text
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default: break
        }
        if isDecimalInteger(text) {
            if let value = Int64(text) { return .int(value) }
            return .bigInt(canonicalDigits(text))
        }
        if isDecimalFloat(text) {
            guard let value = Double(text), value.isFinite else {
                throw YAMLError(message: "the number \(text) is out of range", line: scalar.line, column: scalar.column)
            }
            return .double(value)
        }
        return .string(text)
    }

    /// `[-+]?[0-9]+`
    static func isDecimalInteger(_ text: String) -> Bool {
        var bytes = Substring(text).utf8[...]
        if let first = bytes.first, first == 0x2B || first == 0x2D { bytes = bytes.dropFirst() }
        return !bytes.isEmpty && bytes.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    /// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
    static func isDecimalFloat(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        var i = 0
        func digits() -> Int {
            let start = i
            while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
            return i - start
        }
        if i < bytes.count, bytes[i] == 0x2B || bytes[i] == 0x2D { i += 1 }
        let whole = digits()
        if i < bytes.count, bytes[i] == 0x2E {
            i += 1
            let fraction = digits()
            if whole == 0 && fraction == 0 { return false }
        } else if whole == 0 {
            return false
        }
        if i < bytes.count, bytes[i] == 0x65 || bytes[i] == 0x45 {
            i += 1
            if i < bytes.count, bytes[i] == 0x2B || bytes[i] == 0x2D { i += 1 }
            if digits() == 0 { return false }
        }
        return i == bytes.count
    }

    /// Digits without `+` and leading zeros, keeping a `-`.
    static func canonicalDigits(_ text: String) -> String {
        var negative = false
        var body = Substring(text)
        if body.first == "-" { negative = true; body = body.dropFirst() } else if body.first == "+" { body = body.dropFirst() }
        let trimmed = body.drop(while: { $0 == "0" })
        let digits = trimmed.isEmpty ? "0" : String(trimmed)
        return negative && digits != "0" ? "-" + digits : digits
    }
}

// The writer behind `JSON.encode`, `JSON.encodePretty` and `JSON.canonicalPythonText`.

enum JSONWriter {
    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Object keys in code point order (UTF-8 byte order is code point order).
    static func sortedKeys(_ object: JSONObject) -> [String] {
        object.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    private static func nonFinite(_ d: Double) -> JSONEncodeError {
        JSONEncodeError(message: "\(d) cannot be expressed in JSON")
    }

    // MARK: - Compact

    static func writeCompact(_ value: JSONValue, sortedKeys sorted: Bool, to out: inout [UInt8]) throws(JSONEncodeError) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .int(let i): appendInt(i, to: &out)
        case .bigInt(let digits): out.append(contentsOf: digits.utf8)
        case .double(let d):
            guard d.isFinite else { throw nonFinite(d) }
            appendDouble(d, to: &out)
        case .string(let s): appendQuoted(s, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            var first = true
            for item in items {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                try writeCompact(item, sortedKeys: sorted, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            var first = true
            if sorted {
                for key in sortedKeys(object) {
                    if !first { out.append(UInt8(ascii: ",")) }
                    first = false
                    appendQuoted(key, to: &out)
                    out.append(UInt8(ascii: ":"))
                    try writeCompact(object[key]!, sortedKeys: true, to: &out)
                }
            } else {
                for (key, item) in object {
                    if !first { out.append(UInt8(ascii: ",")) }
                    first = false
                    appendQuoted(key, to: &out)
                    out.append(UInt8(ascii: ":"))
                    try writeCompact(item, sortedKeys: false, to: &out)
                }
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    // MARK: - Pretty

    static func writePretty(_ value: JSONValue, indent: Int, to out: inout [UInt8]) throws(JSONEncodeError) {
        func newline(_ level: Int) {
            out.append(0x0A)
            for _ in 0..<(level * 2) { out.append(0x20) }
        }
        switch value {
        case .array(let items) where !items.isEmpty:
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(indent + 1)
                try writePretty(item, indent: indent + 1, to: &out)
            }
            newline(indent)
            out.append(UInt8(ascii: "]"))
        case .object(let object) where !object.isEmpty:
            out.append(UInt8(ascii: "{"))
            for (i, key) in sortedKeys(object).enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(indent + 1)
                appendQuoted(key, to: &out)
                out.append(contentsOf: ": ".utf8)
                try writePretty(object[key]!, indent: indent + 1, to: &out)
            }
            newline(indent)
            out.append(UInt8(ascii: "}"))
        default:
            try writeCompact(value, sortedKeys: true, to: &out)
        }
    }

    // MARK: - Python canonical form (spec §6.7)

    static func writePythonCanonical(_ value: JSONValue, to out: inout [UInt8]) throws(JSONEncodeError) {
        switch value {
        case .string(let s): appendPythonASCIIQuoted(s, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(contentsOf: ", ".utf8) }
                try writePythonCanonical(item, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            for (i, key) in sortedKeys(object).enumerated() {
                if i > 0 { out.append(contentsOf: ", ".utf8) }
                appendPythonASCIIQuoted(key, to: &out)
                out.append(contentsOf: ": ".utf8)
                try writePythonCanonical(object[key]!, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        default:
            try writeCompact(value, sortedKeys: true, to: &out)
        }
    }

    /// Python's `json.dumps` string form with `ensure_ascii=True`: everything outside `' '...'~'` is escaped.
    private static func appendPythonASCIIQuoted(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for scalar in string.unicodeScalars {
            let v = scalar.value
            if let short = shortEscape(v) {
                out.append(contentsOf: short.utf8)
                continue
            }
            switch v {
            case 0x20...0x7E: out.append(UInt8(v))
            case 0x10000...:
                let u = v - 0x10000
                appendUnicodeEscape(0xD800 + (u >> 10), to: &out)
                appendUnicodeEscape(0xDC00 + (u & 0x3FF), to: &out)
            default: appendUnicodeEscape(v, to: &out)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// The two-character escapes JSON (and Python) use for `"`, `\\` and five control characters.
    private static func shortEscape(_ v: UInt32) -> String? {
        switch v {
        case 0x22: "\\\""
        case 0x5C: "\\\\"
        case 0x0A: "\\n"
        case 0x0D: "\\r"
        case 0x09: "\\t"
        case 0x08: "\\b"
        case 0x0C: "\\f"
        default: nil
        }
    }

    private static func appendUnicodeEscape(_ v: UInt32, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\\"))
        out.append(UInt8(ascii: "u"))
        out.append(hexDigits[Int(v >> 12 & 0xF)])
        out.append(hexDigits[Int(v >> 8 & 0xF)])
        out.append(hexDigits[Int(v >> 4 & 0xF)])
        out.append(hexDigits[Int(v & 0xF)])
    }

    // MARK: - Scalars

    static func appendQuoted(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = string
        s.withUTF8 { utf8 in
            var runStart = 0
            for i in 0..<utf8.count {
                let b = utf8[i]
                guard b < 0x20 || b == 0x22 || b == 0x5C else { continue }
                if runStart < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<i])) }
                runStart = i + 1
                if let short = shortEscape(UInt32(b)) {
                    out.append(contentsOf: short.utf8)
                } else {
                    appendUnicodeEscape(UInt32(b), to: &out)
                }
            }
            if runStart < utf8.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...])) }
        }
        out.append(UInt8(ascii: "\""))
    }

    static func appendInt(_ value: Int64, to out: inout [UInt8]) {
        if value == 0 { out.append(UInt8(ascii: "0")); return }
        var magnitude = value.magnitude
        var buffer: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes, enough for 20 digits
        withUnsafeMutableBytes(of: &buffer) { raw in
            var i = raw.count
            while magnitude > 0 {
                i -= 1
                raw[i] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            }
            if value < 0 { out.append(UInt8(ascii: "-")) }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[i...]))
        }
    }

    /// Appends a finite double in Python `repr` form (see `JSON.formatDouble`).
    static func appendDouble(_ value: Double, to out: inout [UInt8]) {
        if value == 0 {
            out.append(contentsOf: (value.sign == .minus ? "-0.0" : "0.0").utf8)
            return
        }
        if value.sign == .minus { out.append(UInt8(ascii: "-")) }
        // Swift's description yields the shortest round-trip digits; take them and the decimal exponent from it.
        let text = value.magnitude.description
        var digits: [UInt8] = []
        digits.reserveCapacity(20)
        var pointPosition: Int? = nil  // number of mantissa digits before '.'
        var exponent = 0
        var iterator = text.utf8.makeIterator()
        var mantissaDigits = 0
        while let c = iterator.next() {
            if c == UInt8(ascii: ".") {
                pointPosition = mantissaDigits
            } else if c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
                var negative = false
                while let e = iterator.next() {
                    if e == UInt8(ascii: "-") { negative = true } else if e == UInt8(ascii: "+") { continue } else {
                        exponent = exponent * 10 + Int(e - UInt8(ascii: "0"))
                    }
                }
                if negative { exponent = -exponent }
                break
            } else {
                digits.append(c)
                mantissaDigits += 1
            }
        }
        // value = 0.d1d2…dn × 10^decpt
        var decpt = (pointPosition ?? mantissaDigits) + exponent
        var lead = 0
        while lead < digits.count - 1, digits[lead] == UInt8(ascii: "0") { lead += 1; decpt -= 1 }
        var end = digits.count
        while end > lead + 1, digits[end - 1] == UInt8(ascii: "0") { end -= 1 }
        let significant = digits[lead..<end]
        let n = significant.count
        if decpt <= -4 || decpt > 16 {
            out.append(significant.first!)
            if n > 1 {
                out.append(UInt8(ascii: "."))
                out.append(contentsOf: significant.dropFirst())
            }
            out.append(UInt8(ascii: "e"))
            let e = decpt - 1
            out.append(e < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+"))
            if abs(e) < 10 { out.append(UInt8(ascii: "0")) }
            appendInt(Int64(abs(e)), to: &out)
        } else if decpt <= 0 {
            out.append(contentsOf: "0.".utf8)
            for _ in 0..<(-decpt) { out.append(UInt8(ascii: "0")) }
            out.append(contentsOf: significant)
        } else if decpt < n {
            out.append(contentsOf: significant.prefix(decpt))
            out.append(UInt8(ascii: "."))
            out.append(contentsOf: significant.dropFirst(decpt))
        } else {
            out.append(contentsOf: significant)
            for _ in 0..<(decpt - n) { out.append(UInt8(ascii: "0")) }
            out.append(contentsOf: ".0".utf8)
        }
    }
}

import Testing
@testable import DoryState

@Suite struct JSONParseTests {
    @Test func numberKinds() throws {
        #expect(try JSON.parse("13") == .int(13))
        #expect(try JSON.parse("13.0") == .double(13))
        #expect(try JSON.parse("1e2") == .double(100))
        #expect(try JSON.parse("-0") == .int(0))
        #expect(try JSON.parse("-9223372036854775808") == .int(Int64.min))
        #expect(try JSON.parse("9223372036854775807") == .int(Int64.max))
        #expect(try JSON.parse("9223372036854775808") == .bigInt("9223372036854775808"))
        #expect(try JSON.parse("-9223372036854775809") == .bigInt("-9223372036854775809"))
        #expect(try JSON.parse("100000000000000000000") == .bigInt("100000000000000000000"))
        #expect(try JSON.parse("0.1") == .double(0.1))
        #expect(try JSON.parse("1E-5") == .double(1e-5))
        #expect(try JSON.parse("123456789.123456789e-3") == .double(123456789.123456789e-3))
        #expect(try JSON.parse("2.2250738585072014e-308") == .double(2.2250738585072014e-308))
        #expect(try JSON.parse("1.7976931348623157e308") == .double(1.7976931348623157e308))
        #expect(try JSON.parse("0.30000000000000004") == .double(0.30000000000000004))
        #expect(try JSON.parse("-1.5") == .double(-1.5))
    }

    @Test func structure() throws {
        let v = try JSON.parse(" {\"a\": [1, 2.5, \"x\", true, false, null, {}], \"b\": {\"c\": []}} \n")
        #expect(v == .object(["a": .array([.int(1), .double(2.5), .string("x"), .bool(true), .bool(false), .null, .object([:])]),
                              "b": .object(["c": .array([])])]))
        #expect(try JSON.parse("{\"k\":1,\"k\":2}") == .object(["k": .int(2)]))
        #expect(try JSON.parse("\"x\"") == .string("x"))
    }

    @Test func strings() throws {
        #expect(try JSON.parse(#""a\"b\\c\/d\b\f\n\r\t""#) == .string("a\"b\\c/d\u{8}\u{c}\n\r\t"))
        #expect(try JSON.parse(#""\u00e9\u20AC""#) == .string("é€"))
        #expect(try JSON.parse(#""\ud83d\ude00""#) == .string("😀"))
        #expect(try JSON.parse("\"é😀\"") == .string("é😀"))
        #expect(try JSON.parse(#""\u0000""#) == .string("\u{0}"))
    }

    @Test(arguments: [
        "", " ", "[1,]", "{\"a\":1,}", "01", "-", "1.", ".5", "1e", "+1", "[1 2]", "{\"a\" 1}", "{a:1}",
        "'x'", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "tru", "nul",
        "[1]x", "NaN", "Infinity", "1e400", "-1e400", "\"a\nb\"", "[", "{", "{\"a\":}", "//c\n1", "\u{FEFF}1",
        "[1,,2]", "00", "-01", "1.e5",
    ])
    func rejects(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSON.parse(text) }
    }

    @Test func rejectsInvalidUTF8() {
        for bytes: [UInt8] in [[0x22, 0xFF, 0x22], [0x22, 0xC3, 0x22], [0x22, 0xC0, 0x80, 0x22],
                               [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22],
                               [0x22, 0xE0, 0x80, 0x80, 0x22], [0x22, 0x5C, 0x6E, 0xFF, 0x22]] {
            #expect(throws: JSONParseError.self) { try JSON.parse(bytes) }
        }
    }

    @Test func errorOffsets() {
        do {
            _ = try JSON.parse("[1, 2,]")
            Issue.record("accepted a trailing comma")
        } catch {
            #expect(error.offset == 6)
            #expect(error.message.contains("trailing comma"))
        }
    }

    @Test func depthLimit() throws {
        let ok = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        _ = try JSON.parse(ok)
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSON.parse(deep) }
        let deepObjects = String(repeating: "{\"a\":", count: 600) + "1" + String(repeating: "}", count: 600)
        #expect(throws: JSONParseError.self) { try JSON.parse(deepObjects) }
    }
}

@Suite struct JSONEncodeTests {
    func text(_ v: JSONValue, sorted: Bool = true) throws -> String {
        String(decoding: try JSON.encode(v, sortedKeys: sorted), as: UTF8.self)
    }

    @Test func doubleForms() throws {
        let cases: [(Double, String)] = [
            (13.0, "13.0"), (0.1, "0.1"), (1e-5, "1e-05"), (1e16, "1e+16"), (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"), (-0.0, "-0.0"), (0, "0.0"), (2.5e-7, "2.5e-07"), (1.5e300, "1.5e+300"),
            (18014398509481984.0, "1.8014398509481984e+16"), (9999999999999998.0, "9999999999999998.0"),
            (123e-20, "1.23e-18"), (Double.leastNonzeroMagnitude, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-1.5, "-1.5"), (1.0 / 3.0, "0.3333333333333333"), (100, "100.0"), (123456.789, "123456.789"),
        ]
        for (d, expected) in cases {
            #expect(JSON.formatDouble(d) == expected, "\(d)")
            #expect(try text(.double(d)) == expected)
            #expect(try JSON.parse(expected) == .double(d))
        }
    }

    @Test func nonFinite() {
        #expect(throws: JSONEncodeError.self) { try JSON.encode(.double(.nan)) }
        #expect(throws: JSONEncodeError.self) { try JSON.encode(.array([.double(.infinity)])) }
        #expect(JSON.formatDouble(-.infinity) == nil)
    }

    @Test func integersAndBigInts() throws {
        #expect(try text(.int(Int64.min)) == "-9223372036854775808")
        #expect(try text(.int(0)) == "0")
        #expect(try text(.int(-7)) == "-7")
        #expect(try text(.bigInt("100000000000000000000")) == "100000000000000000000")
    }

    @Test func strings() throws {
        #expect(try text(.string("a\"b\\c\n\u{1}\u{1f}é😀/")) == #""a\"b\\c\n\u0001\u001fé😀/""#)
    }

    @Test func sortedCompactAndPretty() throws {
        let v: JSONValue = .object(["b": .int(1), "a": .array([.int(1), .object([:])]), "é": .null, "Z": .array([])])
        #expect(try text(v) == #"{"Z":[],"a":[1,{}],"b":1,"é":null}"#)
        #expect(try JSON.encodePretty(v) == "{\n  \"Z\": [],\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": 1,\n  \"é\": null\n}")
    }

    @Test func roundTrip() throws {
        let v: JSONValue = .object([
            "big": .bigInt("100000000000000000000"), "f": .double(13.0), "h": .double(1e16), "n": .int(-3),
            "s": .string("tab\t\"q\" 😀 \u{0}"), "l": .array([.null, .bool(true), .double(0.1)]),
        ])
        let bytes = try JSON.encode(v)
        #expect(try JSON.parse(bytes) == v)
        let t = String(decoding: bytes, as: UTF8.self)
        #expect(t.contains("100000000000000000000"))
        #expect(t.contains("13.0"))
        #expect(t.contains("1e+16"))
    }

    @Test func appendQuoted() {
        var out: [UInt8] = Array("x=".utf8)
        JSON.appendQuoted("a\"b", to: &out)
        #expect(String(decoding: out, as: UTF8.self) == #"x="a\"b""#)
    }
}

@Suite struct CanonicalPythonTextTests {
    @Test func specVectors() throws {
        let vectors: [(String, String, String)] = [
            (#"{"counter":14}"#, #"{"counter": 14}"#, "301e5f257de249f34b037d46e35e98b4a0a0672c0a8396c5194ce3a59cc6f55c"),
            ("{}", "{}", "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"),
            (#"{"b":1,"a":"é","f":0.1,"g":0.00001,"h":1e16,"i":100000000000000000000,"t":true,"n":null,"l":[1.0,2]}"#,
             #"{"a": "\u00e9", "b": 1, "f": 0.1, "g": 1e-05, "h": 1e+16, "i": 100000000000000000000, "l": [1.0, 2], "n": null, "t": true}"#,
             "e4abf178ef6f774dddfecc5a32fed82abdadcb0cc7ac0721317cc2bd2a17d3fd"),
        ]
        for (payload, canonical, hash) in vectors {
            let text = try JSON.canonicalPythonText(try JSON.parse(payload))
            #expect(text == canonical)
            #expect(SHA256.hex(text.utf8) == hash)
        }
    }

    /// Checked against CPython's `json.dumps(p, sort_keys=True)`.
    @Test func escapesLikePython() throws {
        let v: JSONValue = .object(["s": .string("😀\u{7f}\u{1}\"\\"), "a": .string("é")])
        let text = try JSON.canonicalPythonText(v)
        #expect(text == #"{"a": "\u00e9", "s": "\ud83d\ude00\u007f\u0001\"\\"}"#)
    }
}

@Suite struct SHA256Tests {
    @Test func nistVectors() {
        #expect(SHA256.hex("".utf8) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex("abc".utf8) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu".utf8)
            == "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
        #expect(SHA256.hex([UInt8](repeating: 0x61, count: 1_000_000))
            == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func incrementalMatchesOneShot() {
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        for split in [0, 1, 55, 56, 63, 64, 65, 500, 1000] {
            var h = SHA256()
            h.update(data[..<split])
            h.update(data[split...])
            #expect(h.finalize() == SHA256.hash(data))
        }
        #expect(SHA256.hash(AnySequence(data)) == SHA256.hash(data))
    }
}

@Suite struct TimestampTests {
    @Test func rfc3339WritesUTCWithMilliseconds() {
        #expect(WallClock.rfc3339(millis: 0) == "1970-01-01T00:00:00.000Z")
        #expect(WallClock.rfc3339(millis: 1_795_311_058_909) == "2026-11-22T01:30:58.909Z")
        #expect(WallClock.rfc3339(millis: -1) == "1969-12-31T23:59:59.999Z")
        #expect(WallClock.rfc3339(millis: 253_402_300_799_999) == "9999-12-31T23:59:59.999Z")
        #expect(WallClock.parseRFC3339(WallClock.rfc3339(millis: 1_795_311_058_909)) == 1_795_311_058_909)
    }
}

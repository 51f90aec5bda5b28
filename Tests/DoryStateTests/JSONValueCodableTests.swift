import Testing
@testable import DoryState

struct Inner: Codable, Equatable { var name: String; var tags: [String] }
struct Sample: Codable, Equatable {
    var i: Int
    var i64: Int64
    var u: UInt
    var d: Double
    var f: Float
    var b: Bool
    var s: String
    var list: [Int]
    var dict: [String: Double]
    var opt: Int?
    var inner: Inner
    var raw: JSONValue
}

@Suite struct JSONValueCodableTests {
    let sample = Sample(i: -3, i64: Int64.max, u: UInt.max, d: 13.0, f: 0.1, b: true, s: "é", list: [1, 2],
                        dict: ["x": 1.5], opt: nil, inner: Inner(name: "n", tags: ["a"]),
                        raw: .bigInt("100000000000000000000"))

    @Test func roundTrip() throws {
        let v = try JSONValueEncoder().encode(sample)
        guard case .object(let o) = v else { Issue.record("not an object"); return }
        #expect(o["i"] == .int(-3))
        #expect(o["u"] == .bigInt("18446744073709551615"))
        #expect(o["d"] == .double(13.0))
        #expect(o["f"] == .double(0.1))
        #expect(o["opt"] == nil)
        #expect(o["raw"] == .bigInt("100000000000000000000"))
        #expect(o["inner"] == .object(["name": .string("n"), "tags": .array([.string("a")])]))
        let back = try JSONValueDecoder().decode(Sample.self, from: v)
        #expect(back == sample)
        var withOpt = sample
        withOpt.opt = 5
        #expect(try JSONValueDecoder().decode(Sample.self, from: JSONValueEncoder().encode(withOpt)) == withOpt)
    }

    @Test func primitivesAtTopLevel() throws {
        #expect(try JSONValueEncoder().encode(42) == .int(42))
        #expect(try JSONValueEncoder().encode("x") == .string("x"))
        #expect(try JSONValueEncoder().encode([String: Int]()) == .object([:]))
        #expect(try JSONValueEncoder().encode([1.0]) == .array([.double(1.0)]))
        #expect(try JSONValueEncoder().encode(Int?.none) == .null)
        #expect(try JSONValueDecoder().decode(Int?.self, from: .null) == nil)
        #expect(try JSONValueDecoder().decode([String: JSONValue].self, from: .object(["a": .int(1)])) == ["a": .int(1)])
    }

    @Test func doubleAcceptsIntegers() throws {
        #expect(try JSONValueDecoder().decode(Double.self, from: .int(5)) == 5.0)
        #expect(try JSONValueDecoder().decode(Double.self, from: .bigInt("100000000000000000000")) == 1e20)
    }

    @Test func mismatchMessages() {
        func message<T: Decodable>(_ t: T.Type, _ v: JSONValue) -> String {
            do {
                _ = try JSONValueDecoder().decode(t, from: v)
                return "decoded"
            } catch let e as JSONValueDecodingError {
                return e.description
            } catch {
                return "other \(error)"
            }
        }
        #expect(message(Int.self, .string("x")) == "expected integer, got string")
        #expect(message(String.self, .int(1)) == "expected string, got integer")
        #expect(message(Int.self, .double(13.0)) == "expected integer, got double")
        #expect(message(Bool.self, .int(1)) == "expected boolean, got integer")
        #expect(message(Int8.self, .int(300)) == "integer 300 out of range for Int8")
        #expect(message(Int.self, .bigInt("100000000000000000000")) == "integer 100000000000000000000 out of range for Int")
        #expect(message(Inner.self, .object(["name": .int(1), "tags": .array([])])) == "name: expected string, got integer")
        #expect(message(Inner.self, .object(["name": .string("a"), "tags": .array([.string("a"), .null])]))
            == "tags[1]: expected string, got null")
        #expect(message(Inner.self, .object(["tags": .array([])])) == "name: missing key")
        #expect(message(Inner.self, .array([])) == "expected object, got array")
        #expect(message([Int].self, .object([:])) == "expected array, got object")
    }

    @Test func nonFiniteFailsToEncode() {
        #expect(throws: JSONEncodeError.self) { try JSONValueEncoder().encode(Double.nan) }
        #expect(throws: JSONEncodeError.self) { try JSONValueEncoder().encode(["x": Float.infinity]) }
        do {
            _ = try JSONValueEncoder().encode(["a": [1.0, .nan]])
        } catch let e as JSONEncodeError {
            #expect(e.message.hasPrefix("a[1]:"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}

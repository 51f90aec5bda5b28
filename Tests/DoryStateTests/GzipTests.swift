import Testing
@testable import DoryState

@Suite struct GzipTests {
    let text = sampleJSONText(size: 200_000)

    @Test(arguments: [0, 1, 6, 9])
    func roundTripAndHeader(level: Int) throws {
        let gz = try Gzip.compress(text, level: level)
        #expect(Array(gz[0..<4]) == [0x1F, 0x8B, 8, 0])  // magic, deflate, FLG 0
        #expect(Array(gz[4..<8]) == [0, 0, 0, 0])  // MTIME 0
        #expect(gz[9] == 3)  // OS Unix
        #expect(try Gzip.decompress(gz, maxOutput: 1 << 20) == text)
    }

    @Test func emptyInput() throws {
        let gz = try Gzip.compress([], level: 1)
        #expect(try Gzip.decompress(gz, maxOutput: 10) == [])
    }

    @Test func gzipToolReadsOurOutput() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        for level in [0, 1, 9] {
            writeFile(dir.sub("x.json.gz"), try Gzip.compress(text, level: level))
            let r = runProcess("/bin/gzip", ["-dc", dir.sub("x.json.gz")])
            #expect(r.status == 0)
            #expect(r.output == text)
        }
    }

    @Test func readsGzipToolOutput() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        writeFile(dir.sub("x.json"), text)
        let r = runProcess("/bin/gzip", ["-c", "-9", "-n", dir.sub("x.json")])
        #expect(r.status == 0)
        #expect(try Gzip.decompress(r.output, maxOutput: 1 << 20) == text)
        // With a file name in the header (FLG.FNAME).
        let named = runProcess("/bin/gzip", ["-c", dir.sub("x.json")])
        #expect(try Gzip.decompress(named.output, maxOutput: 1 << 20) == text)
    }

    func reason(_ bytes: [UInt8], max: Int = 1 << 20) -> String {
        do {
            _ = try Gzip.decompress(bytes, maxOutput: max)
            return "ok"
        } catch {
            return error.reason
        }
    }

    @Test func corruption() throws {
        let gz = try Gzip.compress(text, level: 1)
        #expect(reason(Array(gz[0..<(gz.count / 2)])) == "truncated")
        #expect(reason(Array(gz.dropLast(1))) == "truncated")
        #expect(reason(Array(gz[0..<5])) == "truncated")
        #expect(reason([]) == "truncated")
        #expect(reason(gz + [0x00]) == "trailing_data")
        #expect(reason(gz + Array("junk".utf8)) == "trailing_data")
        #expect(reason(Array("{\"a\":1}".utf8)) == "bad_gzip")
        var flipped = gz
        flipped[gz.count / 2] ^= 0xFF
        #expect(["crc_mismatch", "bad_gzip"].contains(reason(flipped)))
        var badCRC = gz
        badCRC[gz.count - 6] ^= 0x01
        #expect(reason(badCRC) == "crc_mismatch")
        var badSize = gz
        badSize[gz.count - 2] ^= 0x01
        #expect(reason(badSize) == "crc_mismatch")
        #expect(reason(gz, max: text.count) == "ok")
        #expect(reason(gz, max: text.count - 1) == "too_large")
    }

    @Test func concatenatedMembers() throws {
        let a = try Gzip.compress(Array("hello ".utf8), level: 1)
        let b = try Gzip.compress(Array("world".utf8), level: 9)
        #expect(try Gzip.decompress(a + b, maxOutput: 100) == Array("hello world".utf8))
        #expect(reason(a + Array(b.prefix(5))) == "truncated")
        #expect(reason(a + b, max: 8) == "too_large")
    }

    @Test func badLevel() {
        #expect(throws: GzipError.self) { try Gzip.compress([1], level: 10) }
    }
}

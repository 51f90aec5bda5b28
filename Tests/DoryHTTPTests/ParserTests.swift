import Testing

@testable import DoryHTTP

private func parse(_ text: String, limits: HTTPLimits = HTTPLimits()) -> HTTPHeadParser.Outcome {
    parse(Array(text.utf8), limits: limits)
}

private func parse(_ bytes: [UInt8], limits: HTTPLimits = HTTPLimits()) -> HTTPHeadParser.Outcome {
    var parser = HTTPHeadParser(limits: limits)
    return bytes.withUnsafeBytes { parser.parse($0) }
}

private func status(_ outcome: HTTPHeadParser.Outcome) -> Int? {
    switch outcome {
    case .complete: 200
    case .failure(let error): error.status
    case .needMore: nil
    }
}

private func head(_ outcome: HTTPHeadParser.Outcome) -> HTTPRequestHead? {
    if case .complete(let head, _) = outcome { return head }
    return nil
}

@Suite struct HeadParserTests {
    @Test func parsesASimpleRequest() throws {
        let outcome = parse("GET /healthz?verbose&exclude=a%20b HTTP/1.1\r\nHost: x\r\nX-A:  v  \r\n\r\nrest")
        guard case .complete(let head, let length) = outcome else {
            Issue.record("not complete: \(outcome)")
            return
        }
        #expect(length == "GET /healthz?verbose&exclude=a%20b HTTP/1.1\r\nHost: x\r\nX-A:  v  \r\n\r\n".utf8.count)
        #expect(head.method == "GET")
        #expect(head.path == "/healthz")
        #expect(head.query == "verbose&exclude=a%20b")
        #expect(head.queryItems.map(\.name) == ["verbose", "exclude"])
        #expect(head.queryItems.map(\.value) == ["", "a b"])
        #expect(head.headers["x-a"] == "v")
        #expect(head.headers["HOST"] == "x")
        #expect(head.version == .http11)
        #expect(head.keepAlive)
        #expect(head.contentLength == nil && !head.isChunked && !head.hasBody)
    }

    @Test func acceptsBareLineFeedsAndLeadingEmptyLines() {
        let h = head(parse("\r\nGET / HTTP/1.1\nHost: x\n\n"))
        #expect(h?.path == "/")
    }

    @Test func incrementalFeedingGivesTheSameHead() {
        let bytes = Array("POST /state HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n".utf8)
        var parser = HTTPHeadParser()
        for end in 1..<bytes.count {
            let outcome = bytes[0..<end].withUnsafeBytes { parser.parse($0) }
            guard case .needMore = outcome else {
                Issue.record("early outcome at \(end): \(outcome)")
                return
            }
        }
        let outcome = bytes.withUnsafeBytes { parser.parse($0) }
        #expect(head(outcome)?.contentLength == 5)
    }

    @Test func requestLineLimitIsExact() {
        let prefix = "GET /"
        let suffix = " HTTP/1.1"
        let fill = 8192 - prefix.count - suffix.count
        let exact = prefix + String(repeating: "a", count: fill) + suffix
        #expect(exact.utf8.count == 8192)
        #expect(status(parse(exact + "\r\nHost: x\r\n\r\n")) == 200)
        let over = prefix + String(repeating: "a", count: fill + 1) + suffix
        #expect(status(parse(over + "\r\nHost: x\r\n\r\n")) == 414)
        // Known before the line ends.
        #expect(status(parse(prefix + String(repeating: "a", count: 9000))) == 414)
        #expect(status(parse(exact + "\r")) == nil)
    }

    @Test func headerFieldCountLimitIsExact() {
        func request(fields: Int) -> String {
            var text = "GET / HTTP/1.1\r\nHost: x\r\n"
            for index in 1..<fields { text += "X-\(index): v\r\n" }
            return text + "\r\n"
        }
        #expect(status(parse(request(fields: 100))) == 200)
        #expect(status(parse(request(fields: 101))) == 431)
    }

    @Test func headerByteLimitIsExact() {
        // "Host: x\r\n" is 9 bytes; one more field fills the block to exactly 16384 bytes.
        let filler = 16384 - 9 - "X-Fill: \r\n".utf8.count
        let exact = "GET / HTTP/1.1\r\nHost: x\r\nX-Fill: " + String(repeating: "f", count: filler) + "\r\n\r\n"
        #expect(status(parse(exact)) == 200)
        let over = "GET / HTTP/1.1\r\nHost: x\r\nX-Fill: " + String(repeating: "f", count: filler + 1) + "\r\n\r\n"
        #expect(status(parse(over)) == 431)
        // Known while the long line is still arriving.
        #expect(status(parse("GET / HTTP/1.1\r\nX-Fill: " + String(repeating: "f", count: 17000))) == 431)
        #expect(status(parse(exact.dropLast(2) + "\r")) == nil)
    }

    @Test(arguments: [
        "GET\r\n\r\n",
        "GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: a\u{01}b\r\n\r\n",
        "G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET relative HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "GET / HTTP/11\r\nHost: x\r\n\r\n",
        "GET / FTP/1.1\r\nHost: x\r\n\r\n",
    ])
    func malformedHeadsAre400(_ text: String) {
        #expect(status(parse(text)) == 400)
    }

    @Test func versions() {
        #expect(status(parse("GET / HTTP/2.0\r\nHost: x\r\n\r\n")) == 505)
        #expect(status(parse("GET / HTTP/0.9\r\n\r\n")) == 505)
        let http10 = head(parse("GET / HTTP/1.0\r\n\r\n"))
        #expect(http10?.keepAlive == false)
        #expect(head(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"))?.keepAlive == true)
        #expect(head(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade, close\r\n\r\n"))?.keepAlive == false)
        #expect(status(parse("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")) == 501)
    }

    @Test func bodyFraming() {
        #expect(head(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7, 7\r\n\r\n"))?.contentLength == 7)
        let chunked = head(parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"))
        #expect(chunked?.isChunked == true && chunked?.hasBody == true)
    }

    @Test func absoluteFormTargetHasAPath() {
        #expect(head(parse("GET http://example/ready?x=1 HTTP/1.1\r\nHost: example\r\n\r\n"))?.path == "/ready")
    }
}

@Suite struct ChunkedDecoderTests {
    private func decode(_ text: String, limit: Int = 1 << 20, pieces: Int = 1) -> (String, ChunkedBodyDecoder.Outcome, Int) {
        let bytes = Array(text.utf8)
        var decoder = ChunkedBodyDecoder()
        var body: [UInt8] = []
        var offset = 0
        var outcome = ChunkedBodyDecoder.Outcome.needMore
        let step = max(1, bytes.count / pieces)
        var available = min(bytes.count, step)
        while true {
            let (consumed, result) = bytes[offset..<available].withUnsafeBytes { decoder.decode($0, into: &body, limit: limit) }
            offset += consumed
            outcome = result
            if result != .needMore || available == bytes.count { break }
            available = min(bytes.count, available + step)
        }
        return (String(decoding: body, as: UTF8.self), outcome, offset)
    }

    @Test func decodesChunksWithExtensionsAndTrailers() {
        let text = "4;name=value\r\nWiki\r\n5 ; x\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\nNEXT"
        for pieces in [1, 3, text.utf8.count] {
            let (body, outcome, consumed) = decode(text, pieces: pieces)
            #expect(body == "Wikipedia in\r\n\r\nchunks.")
            #expect(outcome == .done)
            #expect(consumed == text.utf8.count - 4)  // "NEXT" stays for the next request
        }
    }

    @Test func countsBytesAgainstTheLimit() {
        let (_, outcome, _) = decode("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", limit: 10)
        #expect(outcome == .tooLarge(bytesRead: 11))
        let (body, fits, _) = decode("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", limit: 10)
        #expect(fits == .done && body == "helloworld")
    }

    @Test(arguments: ["x\r\n", "5\r\nhelloX\r\n", "\r\n", "1234567890abcdef0\r\n", "5\r\nhello\r\n0\r\nbad\u{01}\r\n\r\n"])
    func malformedBodies(_ text: String) {
        let (_, outcome, _) = decode(text)
        guard case .malformed = outcome else {
            Issue.record("expected malformed, got \(outcome)")
            return
        }
    }
}

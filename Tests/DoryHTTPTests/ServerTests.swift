import Dispatch
import Glibc
import Synchronization
import Testing

@testable import DoryHTTP

@Suite struct ServerTests {
    @Test func keepAliveServesSeveralRequestsOnOneConnection() throws {
        let (server, port) = try makeServer()
        defer { server.close() }
        let connection = try RawConnection(port: port)
        for path in ["/a", "/b", "/c"] {
            connection.send("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try #require(connection.readResponse())
            #expect(response.status == 200)
            #expect(response.text == "path=\(path)")
            #expect(response.headers["X-Dory-Version"] == "test")
            #expect(response.headers["Cache-Control"] == "no-store")
            #expect(response.headers["Content-Length"] == "\("path=\(path)".utf8.count)")
            #expect(response.headers["Connection"] == nil)
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let (server, port) = try makeServer()
        defer { server.close() }
        let connection = try RawConnection(port: port)
        var batch = ""
        for path in ["/1", "/async", "/3", "/async", "/5"] { batch += "GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n" }
        batch += "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /7 HTTP/1.1\r\nHost: x\r\n\r\n"
        connection.send(batch)
        var bodies: [String] = []
        for _ in 0..<7 { bodies.append(try #require(connection.readResponse()).text) }
        #expect(bodies == ["path=/1", "later", "path=/3", "later", "path=/5", "abc", "path=/7"])
    }

    @Test func headAnswersGetHeadersWithoutBody() throws {
        let (server, port) = try makeServer()
        defer { server.close() }
        let connection = try RawConnection(port: port)
        connection.send("HEAD /thing HTTP/1.1\r\nHost: x\r\n\r\n")
        let head = try #require(connection.readResponse(isHead: true))
        #expect(head.status == 200)
        #expect(head.headers["Content-Length"] == "\("path=/thing".utf8.count)")
        // No body bytes followed: the next response starts right away.
        connection.send("GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        let next = try #require(connection.readResponse())
        #expect(next.text == "path=/next")
        #expect(connection.unread.isEmpty)
    }

    @Test func admissionRejectsBeforeTheBodyIsRead() throws {
        let (server, port) = try makeServer()
        defer { server.close() }
        let connection = try RawConnection(port: port)
        // The body is announced but never sent: the answer must not wait for it.
        connection.send("POST /reject HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        let response = try #require(connection.readResponse(timeout: 3))
        #expect(response.status == 403)
        #expect(response.text == "rejected")
        #expect(response.headers["Connection"] == "close")
        #expect(connection.closedByPeer())

        // Without a body the connection stays usable.
        let second = try RawConnection(port: port)
        second.send("GET /reject HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(second.readResponse()?.status == 403)
        #expect(second.readResponse()?.text == "path=/ok")
    }

    @Test func contentLengthOverTheLimitIs413WithoutReadingTheBody() throws {
        let (server, port) = try makeServer()
        defer { server.close() }
        let connection = try RawConnection(port: port)
        connection.send("POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
        let response = try #require(connection.readResponse(timeout: 3))
        #expect(response.status == 413)
        #expect(response.text == "read=11 limit=10")
        #expect(connection.closedByPeer())

        // Without a tooLarge closure the server's error shape is used.
        let other = try RawConnection(port: port)
        other.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n")
        let fallback = try #require(other.readResponse(timeout: 3))
        #expect(fallback.status == 413)
        #expect(fallback.text.hasPrefix(#"{"error":"payload_too_large","message":"#))
        #expect(fallback.headers["Content-Type"] == "application/json; charset=utf-8")
        #expect(fallback.headers["X-Dory-Version"] == "test")
    }

    @Test func chunkedBodiesAreDecodedAndCountedAgainstTheLimit() throws {
        let (server, port) = try makeServer()
        defer { server.close() }
        let fits = try RawConnection(port: port)
        fits.send("POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n5\r\nworld\r\n0\r\nT: 1\r\n\r\n")
        let ok = try #require(fits.readResponse())
        #expect(ok.status == 200 && ok.text == "helloworld")

        let tooBig = try RawConnection(port: port)
        tooBig.send("POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n")
        let refused = try #require(tooBig.readResponse())
        #expect(refused.status == 413)
        #expect(refused.text == "read=11 limit=10")
        #expect(tooBig.closedByPeer())
    }

    @Test func expectContinueGetsAnInterimResponse() throws {
        let (server, port) = try makeServer()
        defer { server.close() }
        let connection = try RawConnection(port: port)
        connection.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        #expect(connection.readResponse(isHead: true)?.status == 100)
        connection.send("hi")
        #expect(connection.readResponse()?.text == "hi")
    }

    @Test func headerTimeoutAnswers408() throws {
        let (server, port) = try makeServer { $0.headerTimeout = .milliseconds(200) }
        defer { server.close() }
        let start = nowMilliseconds()
        let connection = try RawConnection(port: port)
        connection.send("GET / HTTP/1.1\r\nHost: x\r\n")
        let response = try #require(connection.readResponse(timeout: 5))
        #expect(response.status == 408)
        #expect(response.text.contains("request_timeout"))
        #expect(nowMilliseconds() - start >= 190)
        #expect(connection.closedByPeer())

        // A connection that sends nothing gets the same answer.
        let silent = try RawConnection(port: port)
        #expect(silent.readResponse(timeout: 5)?.status == 408)
    }

    @Test func idleKeepAliveConnectionsAreClosed() throws {
        let (server, port) = try makeServer { $0.idleTimeout = .milliseconds(300) }
        defer { server.close() }
        let connection = try RawConnection(port: port)
        connection.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(connection.readResponse()?.status == 200)
        let start = nowMilliseconds()
        #expect(connection.closedByPeer(within: 5))
        #expect(nowMilliseconds() - start >= 250)
        #expect(connection.unread.isEmpty)  // closed silently, no 408
    }

    @Test func connectionCapEvictsTheLongestIdle() throws {
        let (server, port) = try makeServer { $0.maxConnections = 3 }
        defer { server.close() }
        var connections: [RawConnection] = []
        for index in 0..<3 {
            let connection = try RawConnection(port: port)
            connection.send("GET /\(index) HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(connection.readResponse()?.status == 200)
            connections.append(connection)
        }
        let newcomer = try RawConnection(port: port)
        newcomer.send("GET /new HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(newcomer.readResponse()?.text == "path=/new")
        #expect(connections[0].closedByPeer(within: 3))
        for connection in connections[1...] {
            connection.send("GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(connection.readResponse()?.text == "path=/again")
        }
    }

    @Test func http10ClosesUnlessKeepAliveIsAsked() throws {
        let (server, port) = try makeServer()
        defer { server.close() }
        let plain = try RawConnection(port: port)
        plain.send("GET /old HTTP/1.0\r\n\r\n")
        let response = try #require(plain.readResponse())
        #expect(response.headers["Connection"] == "close")
        #expect(plain.closedByPeer())

        let kept = try RawConnection(port: port)
        kept.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        #expect(kept.readResponse()?.headers["Connection"] == "keep-alive")
        kept.send("GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(kept.readResponse()?.headers["Connection"] == "close")
        #expect(kept.closedByPeer())
    }

    @Test func asyncResponderAnswersFromAnotherThread() throws {
        let (server, port) = try makeServer()
        defer { server.close() }
        let response = try HTTPClient.request(path: "/async", to: .tcp(host: "127.0.0.1", port: port), timeout: .seconds(5))
        #expect(response.status == 202)
        #expect(response.text == "later")
    }

    @Test func responderAnswersSecondsLaterAndOnlyOnce() throws {
        let parked = Mutex<HTTPResponder?>(nil)
        let server = try HTTPServer(
            handler: HTTPClosureHandler { _, responder in parked.withLock { $0 = responder } })
        defer { server.close() }
        let port = try server.listen(.tcp(host: "127.0.0.1", port: 0)).port!
        let connection = try RawConnection(port: port)
        connection.send("POST /prestop HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        #expect(eventually { parked.withLock { $0 != nil } })
        let responder = try #require(parked.withLock { $0 })
        Thread.detach {
            responder(HTTPResponse(status: 200, contentType: "application/json", body: #"{"status":"saved"}"#))
            responder(HTTPResponse(status: 500))  // ignored
        }
        let response = try #require(connection.readResponse())
        #expect(response.status == 200 && response.text == #"{"status":"saved"}"#)
        connection.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(eventually { parked.withLock { $0 != nil && $0!.serial == 2 } })
        parked.withLock { $0 }!(HTTPResponse(status: 204))
        let second = try #require(connection.readResponse())
        #expect(second.status == 204)
        #expect(second.headers["Content-Length"] == nil)
    }

    @Test func serverErrorsUseTheErrorClosureDefaultHeadersAndReportTheirOrigin() throws {
        let counts = Mutex<[String]>([])
        let (server, port) = try makeServer {
            $0.errorResponse = { status, code, _ in
                HTTPResponse(status: status, contentType: "text/plain", body: "custom \(code)")
            }
            $0.onResponse = { status, origin in counts.withLock { $0.append("\(status)-\(origin)") } }
        }
        defer { server.close() }
        let connection = try RawConnection(port: port)
        connection.send("GET / HTTP/1.1\r\nHost: x\r\n\r\nBROKEN\r\n\r\n")
        #expect(connection.readResponse()?.status == 200)
        let error = try #require(connection.readResponse())
        #expect(error.status == 400)
        #expect(error.text == "custom bad_request")
        #expect(error.headers["X-Dory-Version"] == "test")
        #expect(connection.closedByPeer())
        #expect(eventually { counts.withLock { $0 } == ["200-handler", "400-server"] })
    }

    @Test func malformedRequestsAreAnsweredOrClosedAndTheServerKeepsServing() throws {
        let (server, port) = try makeServer()
        defer { server.close() }
        let samples = [
            "GARBAGE\r\n\r\n", "GET / HTTP/9.9\r\nHost: x\r\n\r\n", "GET /\r\n\r\n", "\u{00}\u{01}\u{02}\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n", "GET / HTTP/1.1\r\n: empty\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\n" + String(repeating: "X: y\r\n", count: 150) + "\r\n",
        ]
        for index in 0..<300 {
            let connection = try RawConnection(port: port)
            connection.send(samples[index % samples.count])
            if let response = connection.readResponse(timeout: 5) {
                #expect((400..<600).contains(response.status), "sample \(index % samples.count)")
            }
            #expect(connection.closedByPeer(within: 5))
        }
        let probe = try HTTPClient.request(path: "/healthz", to: .tcp(host: "127.0.0.1", port: port))
        #expect(probe.status == 200)
    }

    @Test func aProbeIsAnsweredQuicklyWhile500ConnectionsIdleOrTrickle() throws {
        let (server, port) = try makeServer()
        defer { server.close() }
        var crowd: [RawConnection] = []
        for index in 0..<500 {
            let connection = try RawConnection(port: port)
            if index % 2 == 0 { connection.send("GET /slow HTTP/1.1\r\nHo") }  // trickling heads
            crowd.append(connection)
        }
        // Make sure the server has accepted them all: one more request goes through the same accept queue.
        #expect(try HTTPClient.request(path: "/warm", to: .tcp(host: "127.0.0.1", port: port)).status == 200)
        var timings: [Double] = []
        for round in 0..<5 {
            for connection in crowd[(round * 50)..<(round * 50 + 50)] where round % 2 == 0 { connection.send("s") }
            let start = nowMilliseconds()
            let response = try HTTPClient.request(path: "/healthz", to: .tcp(host: "127.0.0.1", port: port))
            timings.append(nowMilliseconds() - start)
            #expect(response.status == 200)
        }
        timings.sort()
        #expect(timings[2] < 50, "probe latencies \(timings) ms")
        withExtendedLifetime(crowd) {}
    }

    @Test func closeStopsListeningAndAnswersNothingMore() throws {
        let (server, port) = try makeServer()
        let connection = try RawConnection(port: port)
        connection.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(connection.readResponse()?.status == 200)
        server.close()
        #expect(connection.closedByPeer(within: 3))
        #expect(throws: (any Error).self) { try RawConnection(port: port) }
        #expect(throws: HTTPBindError(address: "tcp *:0", reason: .serverClosed)) {
            try server.listen(.tcp(host: nil, port: 0))
        }
    }

    @Test func seededRandomBytesNeverBreakTheServer() throws {
        let (server, port) = try makeServer()
        defer { server.close() }
        var random = SeededRandom(seed: 0xD0C5_EED)
        let prefixes = ["", "GET / HTTP/1.1\r\n", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"]
        for round in 0..<120 {
            var bytes = Array(prefixes[round % prefixes.count].utf8)
            let count = Int(random.next() % 300)
            for _ in 0..<count {
                // Mostly printable with CR/LF/NUL and high bytes mixed in.
                let roll = random.next() % 20
                bytes.append(roll == 0 ? 13 : roll == 1 ? 10 : roll == 2 ? 0 : roll == 3 ? UInt8(truncatingIfNeeded: random.next()) : UInt8(32 + random.next() % 95))
            }
            bytes += Array("\r\n\r\n".utf8)
            let connection = try RawConnection(port: port)
            connection.send(bytes)
            while let response = connection.readResponse(timeout: 3) {
                #expect((200..<600).contains(response.status))
            }
        }
        #expect(try HTTPClient.request(path: "/after", to: .tcp(host: "127.0.0.1", port: port)).text == "path=/after")

        // The parser alone, fed random prefixes split at random points, never traps.
        for _ in 0..<2000 {
            var parser = HTTPHeadParser(limits: HTTPLimits(maxRequestLineBytes: 64, maxHeaderBytes: 128, maxHeaderFields: 4))
            var bytes = Array("GET /x HTTP/1.1\r\nHost: y\r\n".utf8)
            for _ in 0..<Int(random.next() % 200) { bytes.append(UInt8(truncatingIfNeeded: random.next())) }
            var end = 0
            while end < bytes.count {
                end = min(bytes.count, end + 1 + Int(random.next() % 40))
                if case .needMore = bytes[0..<end].withUnsafeBytes({ parser.parse($0) }) { continue }
                break
            }
        }
    }
}

/// A small deterministic generator (xorshift64*), so a failing fuzz case can be replayed.
struct SeededRandom {
    private var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 1 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
}

/// Runs a closure on a new detached thread.
enum Thread {
    static func detach(_ body: @escaping @Sendable () -> Void) {
        DispatchQueue.global().async(execute: body)
    }
}

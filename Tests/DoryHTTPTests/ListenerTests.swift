import Glibc
import Testing

@testable import DoryHTTP

@Suite struct ListenerTests {
    @Test func dualStackListenerIsReachableOverIPv4AndIPv6() throws {
        let server = try HTTPServer(handler: TestHandler())
        defer { server.close() }
        let listener = try server.listen(.tcp(host: nil, port: 0))
        let port = try #require(listener.port)
        #expect(port > 0)
        #expect(try HTTPClient.request(path: "/v4", to: .tcp(host: "127.0.0.1", port: port)).text == "path=/v4")
        if listener.kind == .dualStack {
            #expect(try HTTPClient.request(path: "/v6", to: .tcp(host: "::1", port: port)).text == "path=/v6")
        } else {
            #expect(listener.isIPv4Fallback)
        }
        let explicit = try server.listen(.tcp(host: "0.0.0.0", port: 0))
        #expect(explicit.kind == listener.kind)
    }

    @Test func specificHostsBindOneFamily() throws {
        let server = try HTTPServer(handler: TestHandler())
        defer { server.close() }
        let v4 = try server.listen(.tcp(host: "127.0.0.1", port: 0))
        #expect(v4.kind == .ipv4)
        #expect(try HTTPClient.request(path: "/x", to: .tcp(host: "localhost", port: v4.port!)).status == 200)
        if let v6 = try? server.listen(.tcp(host: "[::1]", port: 0)) {
            #expect(v6.kind == .ipv6)
            #expect(try HTTPClient.request(path: "/y", to: .tcp(host: "::1", port: v6.port!)).status == 200)
        }
        #expect(throws: HTTPBindError(address: "tcp example.com:0", reason: .invalidHost)) {
            try server.listen(.tcp(host: "example.com", port: 0))
        }
    }

    @Test func portInUseIsATypedErrorWithErrnoText() throws {
        let server = try HTTPServer(handler: TestHandler())
        defer { server.close() }
        let first = try server.listen(.tcp(host: "127.0.0.1", port: 0))
        do {
            try server.listen(.tcp(host: "127.0.0.1", port: first.port!))
            Issue.record("second bind succeeded")
        } catch {
            #expect(error.errno == EADDRINUSE)
            #expect(error.description.contains("bind: Address already in use"))
        }
    }

    @Test func unixSocketHasMode0600AndIsRemovedOnClose() throws {
        let directory = temporaryDirectory()
        let path = directory + "/control.sock"
        let server = try HTTPServer(handler: TestHandler())
        let listener = try server.listen(.unix(path: path))
        #expect(listener.kind == .unix && listener.port == nil)
        var status = stat()
        #expect(lstat(path, &status) == 0)
        #expect(status.st_mode & 0o777 == 0o600)
        #expect(status.st_mode & S_IFMT == S_IFSOCK)
        let response = try HTTPClient.request(method: "POST", path: "/prestop", to: .unix(path: path))
        #expect(response.text == "path=/prestop")
        server.close()
        #expect(lstat(path, &status) != 0)
        rmdir(directory)
    }

    @Test func staleSocketIsReplacedButALiveOneOrAFileIsRefused() throws {
        let directory = temporaryDirectory()
        let path = directory + "/stale.sock"
        defer {
            unlink(path)
            rmdir(directory)
        }
        // A leftover socket file: bound, never listening, closed.
        let leftover = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var (address, length) = SocketBinding.unixAddress(Array(path.utf8))!
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(leftover, $0, length) }
        }
        #expect(bound == 0)
        close(leftover)

        let server = try HTTPServer(handler: TestHandler())
        defer { server.close() }
        try server.listen(.unix(path: path))
        #expect(try HTTPClient.request(path: "/fresh", to: .unix(path: path)).text == "path=/fresh")

        let rival = try HTTPServer(handler: TestHandler())
        defer { rival.close() }
        #expect(throws: HTTPBindError(address: "unix \(path)", reason: .liveSocket)) {
            try rival.listen(.unix(path: path))
        }
        // Still served by the first server.
        #expect(try HTTPClient.request(path: "/still", to: .unix(path: path)).text == "path=/still")

        let filePath = directory + "/plain"
        let file = open(filePath, O_CREAT | O_WRONLY, 0o600)
        close(file)
        defer { unlink(filePath) }
        #expect(throws: HTTPBindError(address: "unix \(filePath)", reason: .notASocket)) {
            try rival.listen(.unix(path: filePath))
        }
        let longPath = directory + "/" + String(repeating: "p", count: 120)
        #expect(throws: HTTPBindError(address: "unix \(longPath)", reason: .nameTooLong)) {
            try rival.listen(.unix(path: longPath))
        }
    }

    @Test func abstractSocketServesOwnUID() throws {
        let name = "dory-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let server = try HTTPServer(handler: TestHandler())
        defer { server.close() }
        let listener = try server.listen(.abstract(name: name, onlyOwnUID: true))
        #expect(listener.kind == .abstract)
        #expect(try HTTPClient.request(path: "/abstract", to: .abstract(name: name)).text == "path=/abstract")
        #expect(throws: HTTPBindError.self) { try server.listen(.abstract(name: name)) }
    }

    @Test func clientDecodesChunkedAndReadToEndResponses() throws {
        let name = "dory-client-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let bound = try SocketBinding.bind(.abstract(name: name), backlog: 4)
        defer { close(bound.fd) }
        let replies = [
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;e=1\r\nde\r\n0\r\n\r\n",
            "HTTP/1.1 201 Created\r\nX-A: b\r\n\r\nuntil-eof",
        ]
        let fd = bound.fd
        Thread.detach {
            for reply in replies {
                var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&descriptor, 1, 5000)
                let connection = accept(fd, nil, nil)
                var scratch = [UInt8](repeating: 0, count: 4096)
                _ = recv(connection, &scratch, scratch.count, 0)
                _ = Array(reply.utf8).withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                close(connection)
            }
        }
        let chunked = try HTTPClient.request(method: "POST", path: "/", body: Array("x".utf8), to: .abstract(name: name))
        #expect(chunked.status == 200 && chunked.text == "abcde")
        let toEnd = try HTTPClient.request(path: "/", to: .abstract(name: name))
        #expect(toEnd.status == 201 && toEnd.text == "until-eof" && toEnd.headers["x-a"] == "b")
    }

    @Test func clientReportsConnectFailuresAndTimeouts() throws {
        #expect(throws: HTTPClientError.self) {
            try HTTPClient.request(path: "/", to: .unix(path: "/nonexistent/dory.sock"))
        }
        let server = try HTTPServer(handler: HTTPClosureHandler { _, _ in })  // never answers
        defer { server.close(gracePeriod: .milliseconds(10)) }
        let port = try server.listen(.tcp(host: "127.0.0.1", port: 0)).port!
        do {
            _ = try HTTPClient.request(path: "/", to: .tcp(host: "127.0.0.1", port: port), timeout: .milliseconds(200))
            Issue.record("expected a timeout")
        } catch {
            #expect(error.kind == .timeout)
        }
    }
}

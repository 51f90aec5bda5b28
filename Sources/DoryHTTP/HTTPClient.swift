import Glibc

/// A failed client request: what went wrong, with the errno text when a system call failed.
public struct HTTPClientError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case invalidDestination, connect, timeout, io, malformedResponse
    }
    public var kind: Kind
    public var message: String
    public var errno: Int32?

    public var description: String { message }

    static func system(_ kind: Kind, _ what: String, _ code: Int32) -> HTTPClientError {
        HTTPClientError(kind: kind, message: "\(what): \(SystemCalls.errnoText(code))", errno: code)
    }
}

/// A tiny blocking HTTP/1.1 client for tests and the CLI: one request per connection (`Connection: close`),
/// `Content-Length`, chunked and read-to-end bodies, one overall deadline.
public enum HTTPClient {
    /// Where to connect.
    public enum Destination: Sendable, Equatable {
        /// An IPv4/IPv6 literal (brackets allowed) or `localhost`.
        case tcp(host: String, port: Int)
        case unix(path: String)
        /// A Linux abstract socket name, without the leading NUL.
        case abstract(name: String)
    }

    public struct Response: Sendable {
        public var status: Int
        public var headers: HTTPHeaders
        public var body: [UInt8]
        /// The body as UTF-8 text.
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// Sends one request and waits for the whole response, at most `timeout` in total.
    /// `Host`, `Connection: close` and `Content-Length` (when a body is given or the method is POST/PUT/PATCH)
    /// are added unless `headers` sets them.
    public static func request(
        method: String = "GET", path: String, headers: HTTPHeaders = [:], body: [UInt8] = [],
        to destination: Destination, timeout: Duration = .seconds(10)
    ) throws(HTTPClientError) -> Response {
        let deadline = SystemCalls.monotonicNanoseconds() &+ ServerContext.nanoseconds(timeout)
        let fd = try connect(destination, deadline: deadline)
        defer { Glibc.close(fd) }

        var request = "\(method) \(path) HTTP/1.1\r\n"
        if !headers.contains("Host") {
            switch destination {
            case .tcp(let host, let port):
                let bracketed = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
                request += "Host: \(bracketed):\(port)\r\n"
            case .unix, .abstract:
                request += "Host: localhost\r\n"
            }
        }
        if !headers.contains("Connection") { request += "Connection: close\r\n" }
        let sendsLength = !body.isEmpty || ["POST", "PUT", "PATCH"].contains(method)
        if sendsLength && !headers.contains("Content-Length") && !headers.contains("Transfer-Encoding") {
            request += "Content-Length: \(body.count)\r\n"
        }
        for field in headers { request += "\(field.name): \(field.value)\r\n" }
        request += "\r\n"
        try sendAll(fd, Array(request.utf8) + body, deadline: deadline)
        return try readResponse(fd, isHead: method == "HEAD", deadline: deadline)
    }

    // MARK: Connecting

    private static func connect(_ destination: Destination, deadline: UInt64) throws(HTTPClientError) -> Int32 {
        var storage = sockaddr_storage()
        var length: socklen_t = 0
        var family: Int32 = AF_UNIX
        switch destination {
        case .tcp(let host, let port):
            var literal = host
            if literal.hasPrefix("[") && literal.hasSuffix("]") { literal = String(literal.dropFirst().dropLast()) }
            if literal == "localhost" { literal = "127.0.0.1" }
            guard (0...65535).contains(port) else {
                throw HTTPClientError(kind: .invalidDestination, message: "invalid port \(port)")
            }
            var address4 = sockaddr_in()
            var address6 = sockaddr_in6()
            if inet_pton(AF_INET, literal, &address4.sin_addr) == 1 {
                address4.sin_family = sa_family_t(AF_INET)
                address4.sin_port = UInt16(port).bigEndian
                family = AF_INET
                length = socklen_t(MemoryLayout<sockaddr_in>.size)
                withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address4, as: sockaddr_in.self) }
            } else if inet_pton(AF_INET6, literal, &address6.sin6_addr) == 1 {
                address6.sin6_family = sa_family_t(AF_INET6)
                address6.sin6_port = UInt16(port).bigEndian
                family = AF_INET6
                length = socklen_t(MemoryLayout<sockaddr_in6>.size)
                withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address6, as: sockaddr_in6.self) }
            } else {
                throw HTTPClientError(kind: .invalidDestination, message: "\(host) is not an IP address")
            }
        case .unix(let path):
            guard let (address, addressLength) = SocketBinding.unixAddress(Array(path.utf8)) else {
                throw HTTPClientError(kind: .invalidDestination, message: "socket path too long: \(path)")
            }
            length = addressLength
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address, as: sockaddr_un.self) }
        case .abstract(let name):
            guard let (address, addressLength) = SocketBinding.unixAddress([0] + Array(name.utf8)) else {
                throw HTTPClientError(kind: .invalidDestination, message: "abstract name too long: \(name)")
            }
            length = addressLength
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address, as: sockaddr_un.self) }
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | SystemCalls.socketFlags, 0)
        if fd < 0 { throw .system(.connect, "socket", errno) }
        let result = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
        }
        if result != 0 {
            let code = errno
            guard code == EINPROGRESS || code == EAGAIN else {
                Glibc.close(fd)
                throw .system(.connect, "connect to \(destination)", code)
            }
            do {
                try wait(fd, for: Int16(POLLOUT), deadline: deadline, what: "connect to \(destination)")
            } catch {
                Glibc.close(fd)
                throw error
            }
            var socketError: Int32 = 0
            var errorLength = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &socketError, &errorLength)
            if socketError != 0 {
                Glibc.close(fd)
                throw .system(.connect, "connect to \(destination)", socketError)
            }
        }
        return fd
    }

    private static func wait(_ fd: Int32, for events: Int16, deadline: UInt64, what: String) throws(HTTPClientError) {
        while true {
            let now = SystemCalls.monotonicNanoseconds()
            guard now < deadline else { throw HTTPClientError(kind: .timeout, message: "\(what): timed out") }
            var descriptor = pollfd(fd: fd, events: events, revents: 0)
            let milliseconds = Int32(min(UInt64(Int32.max), (deadline - now + 999_999) / 1_000_000))
            let ready = poll(&descriptor, 1, milliseconds)
            if ready > 0 { return }
            if ready < 0 && errno != EINTR { throw .system(.io, "poll", errno) }
        }
    }

    // MARK: Exchanging

    private static func sendAll(_ fd: Int32, _ bytes: [UInt8], deadline: UInt64) throws(HTTPClientError) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes {
                send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
            }
            if sent > 0 {
                offset += sent
            } else if sent < 0 && (errno == EAGAIN || errno == EINTR) {
                try wait(fd, for: Int16(POLLOUT), deadline: deadline, what: "send")
            } else {
                throw .system(.io, "send", errno)
            }
        }
    }

    private static func readResponse(_ fd: Int32, isHead: Bool, deadline: UInt64) throws(HTTPClientError) -> Response {
        var buffer: [UInt8] = []
        var eof = false
        func readMore() throws(HTTPClientError) {
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if count > 0 {
                    buffer.append(contentsOf: chunk[0..<count])
                    return
                }
                if count == 0 {
                    eof = true
                    return
                }
                let code = errno
                if code == EAGAIN || code == EINTR {
                    try wait(fd, for: Int16(POLLIN), deadline: deadline, what: "read response")
                } else {
                    throw .system(.io, "recv", code)
                }
            }
        }
        while true {
            // Head
            var headEnd: Int?
            while headEnd == nil {
                headEnd = findHeadEnd(buffer)
                if headEnd == nil {
                    if eof { throw HTTPClientError(kind: .malformedResponse, message: "connection closed before a response head") }
                    try readMore()
                }
            }
            let (status, headers) = try parseHead(Array(buffer[0..<headEnd!]))
            buffer.removeFirst(headEnd!)
            if status >= 100 && status < 200 { continue }  // interim response (100 Continue)

            if isHead || status == 204 || status == 304 {
                return Response(status: status, headers: headers, body: [])
            }
            if let encoding = headers["Transfer-Encoding"], encoding.lowercased().contains("chunked") {
                var decoder = ChunkedBodyDecoder()
                var body: [UInt8] = []
                var consumedTotal = 0
                while true {
                    let remaining = Array(buffer[consumedTotal...])
                    let (consumed, outcome) = remaining.withUnsafeBytes {
                        decoder.decode($0, into: &body, limit: Int.max)
                    }
                    consumedTotal += consumed
                    switch outcome {
                    case .done: return Response(status: status, headers: headers, body: body)
                    case .malformed(let message):
                        throw HTTPClientError(kind: .malformedResponse, message: "chunked body: \(message)")
                    case .tooLarge, .needMore:
                        if eof { throw HTTPClientError(kind: .malformedResponse, message: "chunked body cut short") }
                        try readMore()
                    }
                }
            }
            if let lengthText = headers["Content-Length"] {
                guard let length = HTTPSyntax.parseContentLength(lengthText) else {
                    throw HTTPClientError(kind: .malformedResponse, message: "invalid Content-Length \(lengthText)")
                }
                while buffer.count < length {
                    if eof { throw HTTPClientError(kind: .malformedResponse, message: "body cut short") }
                    try readMore()
                }
                return Response(status: status, headers: headers, body: Array(buffer[0..<length]))
            }
            while !eof { try readMore() }
            return Response(status: status, headers: headers, body: buffer)
        }
    }

    /// Offset just past the empty line ending a head, or nil.
    private static func findHeadEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 3..<bytes.count
        where bytes[index] == 0x0A && bytes[index - 1] == 0x0D && bytes[index - 2] == 0x0A && bytes[index - 3] == 0x0D {
            return index + 1
        }
        return nil
    }

    private static func parseHead(_ bytes: [UInt8]) throws(HTTPClientError) -> (Int, HTTPHeaders) {
        let text = String(decoding: bytes, as: UTF8.self)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: true)
        guard !lines.isEmpty else { throw HTTPClientError(kind: .malformedResponse, message: "empty response head") }
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw HTTPClientError(kind: .malformedResponse, message: "invalid status line: \(statusLine)")
        }
        var headers = HTTPHeaders()
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else {
                throw HTTPClientError(kind: .malformedResponse, message: "invalid header line: \(line)")
            }
            headers.add(String(line[..<colon]), String(line[line.index(after: colon)...].trimmingASCIIWhitespace()))
        }
        return (status, headers)
    }
}

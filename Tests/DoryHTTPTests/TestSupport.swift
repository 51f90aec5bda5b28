import Dispatch
import Glibc
import Synchronization

@testable import DoryHTTP

/// Monotonic milliseconds.
func nowMilliseconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1_000_000
}

/// Polls `condition` until it holds or `seconds` pass (no fixed sleeps: yields to the scheduler in 1 ms steps).
func eventually(within seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = nowMilliseconds() + seconds * 1000
    while nowMilliseconds() < deadline {
        if condition() { return true }
        var request = timespec(tv_sec: 0, tv_nsec: 1_000_000)
        nanosleep(&request, nil)
    }
    return condition()
}

/// A response read off a raw connection.
struct RawResponse {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// A blocking test connection that sends arbitrary bytes and reads responses one at a time.
final class RawConnection {
    let fd: Int32
    private var buffer: [UInt8] = []

    /// Connects over TCP to an IPv4/IPv6 literal, or to a Unix path / abstract name.
    init(_ destination: HTTPClient.Destination) throws {
        var storage = sockaddr_storage()
        var length: socklen_t = 0
        var family: Int32 = AF_UNIX
        switch destination {
        case .tcp(let host, let port):
            var address4 = sockaddr_in()
            var address6 = sockaddr_in6()
            if inet_pton(AF_INET, host, &address4.sin_addr) == 1 {
                address4.sin_family = sa_family_t(AF_INET)
                address4.sin_port = UInt16(port).bigEndian
                family = AF_INET
                length = socklen_t(MemoryLayout<sockaddr_in>.size)
                withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address4, as: sockaddr_in.self) }
            } else {
                guard inet_pton(AF_INET6, host, &address6.sin6_addr) == 1 else { throw TestError("bad host \(host)") }
                address6.sin6_family = sa_family_t(AF_INET6)
                address6.sin6_port = UInt16(port).bigEndian
                family = AF_INET6
                length = socklen_t(MemoryLayout<sockaddr_in6>.size)
                withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address6, as: sockaddr_in6.self) }
            }
        case .unix(let path):
            let (address, addressLength) = SocketBinding.unixAddress(Array(path.utf8))!
            length = addressLength
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address, as: sockaddr_un.self) }
        case .abstract(let name):
            let (address, addressLength) = SocketBinding.unixAddress([0] + Array(name.utf8))!
            length = addressLength
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address, as: sockaddr_un.self) }
        }
        fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestError("socket: \(SystemCalls.errnoText(errno))") }
        let result = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
        }
        // No close here: a class whose stored properties are all set runs deinit (which closes) when init throws.
        guard result == 0 else { throw TestError("connect: \(SystemCalls.errnoText(errno))") }
    }

    convenience init(port: Int, host: String = "127.0.0.1") throws {
        try self.init(.tcp(host: host, port: port))
    }

    deinit { Glibc.close(fd) }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return }
            offset += sent
        }
    }

    /// Reads more bytes; false on EOF, error or timeout.
    private func fill(deadline: Double) -> Bool {
        while true {
            let remaining = deadline - nowMilliseconds()
            if remaining <= 0 { return false }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(remaining.rounded(.up)))
            if ready < 0 { return false }
            if ready == 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return false }
            buffer += chunk[0..<count]
            return true
        }
    }

    /// Reads one response (`isHead`: no body follows); nil when the connection closed or timed out first.
    func readResponse(isHead: Bool = false, timeout: Double = 5) -> RawResponse? {
        let deadline = nowMilliseconds() + timeout * 1000
        var headEnd: Int?
        while true {
            if buffer.count >= 4 {
                for index in 3..<buffer.count where buffer[index - 3...index] == [13, 10, 13, 10] {
                    headEnd = index + 1
                    break
                }
            }
            if headEnd != nil { break }
            if !fill(deadline: deadline) { return nil }
        }
        let headText = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
        var lines = headText.split(separator: "\r\n")
        let statusLine = lines.removeFirst()
        let status = Int(statusLine.split(separator: " ")[1])!
        var headers = HTTPHeaders()
        for line in lines {
            let colon = line.firstIndex(of: ":")!
            headers.add(String(line[..<colon]), String(line[line.index(after: colon)...].drop(while: { $0 == " " })))
        }
        buffer.removeFirst(headEnd!)
        let length = isHead ? 0 : Int(headers["Content-Length"] ?? "0")!
        while buffer.count < length {
            if !fill(deadline: deadline) { return nil }
        }
        let body = Array(buffer[0..<length])
        buffer.removeFirst(length)
        return RawResponse(status: status, headers: headers, body: body)
    }

    /// Whether the server closes the connection within `timeout` seconds (EOF or reset; data before it is dropped).
    func closedByPeer(within timeout: Double = 5) -> Bool {
        let deadline = nowMilliseconds() + timeout * 1000
        while true {
            let remaining = deadline - nowMilliseconds()
            if remaining <= 0 { return false }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(remaining.rounded(.up)))
            if ready <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return true }
            buffer += chunk[0..<count]
        }
    }

    /// Bytes received but not consumed by `readResponse`.
    var unread: [UInt8] { buffer }
}

struct TestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A handler for the server tests, routing on the path.
struct TestHandler: HTTPHandler {

    func admit(_ head: HTTPRequestHead) -> HTTPAdmission {
        switch head.path {
        case "/reject":
            return .reject(HTTPResponse(status: 403, contentType: "text/plain", body: "rejected"))
        case "/small":
            return .accept(maxBodyBytes: 10) { read, limit in
                HTTPResponse(status: 413, contentType: "text/plain", body: "read=\(read) limit=\(limit)")
            }
        default:
            return .accept(maxBodyBytes: 1 << 20)
        }
    }

    func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        switch request.path {
        case "/async":
            // Answer later, from another thread.
            DispatchQueue.global().async {
                responder(HTTPResponse(status: 202, contentType: "text/plain", body: "later"))
            }
        case "/echo", "/small":
            var headers: HTTPHeaders = ["X-Method": request.method]
            headers.add("X-Body-Count", "\(request.body.count)")
            responder(HTTPResponse(status: 200, headers: headers, body: request.body))
        case "/query":
            let items = request.head.queryItems.map { "\($0.name)=\($0.value)" }.joined(separator: ",")
            responder(HTTPResponse(status: 200, contentType: "text/plain", body: items))
        default:
            responder(HTTPResponse(status: 200, contentType: "text/plain", body: "path=\(request.path)"))
        }
    }
}

/// A server on an ephemeral loopback port (dual-stack) with test-friendly timeouts.
func makeServer(
    _ configure: (inout HTTPServerConfiguration) -> Void = { _ in }
) throws -> (HTTPServer, Int) {
    var configuration = HTTPServerConfiguration()
    configuration.defaultHeaders = ["X-Dory-Version": "test", "Cache-Control": "no-store"]
    configure(&configuration)
    let server = try HTTPServer(configuration: configuration, handler: TestHandler())
    let listener = try server.listen(.tcp(host: nil, port: 0))
    return (server, listener.port!)
}

/// A fresh temporary directory.
func temporaryDirectory() -> String {
    var template = Array("/tmp/doryhttp-XXXXXX".utf8CString)
    let path = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    return String(cString: path!)
}

import Glibc

/// Where a server listens.
public enum HTTPListenAddress: Sendable, Equatable, CustomStringConvertible {
    /// TCP. `host` nil, `"0.0.0.0"` or `"::"`: all interfaces through one dual-stack `[::]` socket
    /// (IPv4 `0.0.0.0` when IPv6 is unavailable). Otherwise an IPv4 or IPv6 literal (brackets allowed)
    /// or `localhost` (127.0.0.1). Port 0 picks a free port (see `HTTPListener.port`).
    case tcp(host: String?, port: Int)
    /// A Unix stream socket at `path`, mode 0600. A leftover socket file nobody accepts on is replaced;
    /// a live socket or another kind of file is a bind error. The file is removed on close.
    case unix(path: String)
    /// A Linux abstract socket (`name` without the leading NUL). With `onlyOwnUID`, peers whose
    /// `SO_PEERCRED` uid is neither ours nor 0 are disconnected at once.
    case abstract(name: String, onlyOwnUID: Bool = true)

    public var description: String {
        switch self {
        case .tcp(let host, let port): "tcp \(host ?? "*"):\(port)"
        case .unix(let path): "unix \(path)"
        case .abstract(let name, _): "abstract @\(name)"
        }
    }
}

/// How a listener ended up bound.
public enum HTTPListenerKind: Sendable, Equatable {
    /// All interfaces on one `[::]` socket accepting IPv4 and IPv6.
    case dualStack
    /// All interfaces, but IPv6 was unavailable (EAFNOSUPPORT/EADDRNOTAVAIL): `0.0.0.0` only.
    /// The caller logs `event=http.ipv4_only`.
    case ipv4Fallback
    case ipv4
    case ipv6
    case unix
    case abstract
}

/// A listener could not be set up. `description` names the address, the step and the errno text.
public struct HTTPBindError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        /// A system call failed.
        case system(operation: String, errno: Int32)
        /// A Unix socket path is served by a live process.
        case liveSocket
        /// The Unix socket path holds a file that is not a socket.
        case notASocket
        /// The path or abstract name does not fit `sun_path` (107 bytes).
        case nameTooLong
        /// The host is not an IP literal (no name resolution here).
        case invalidHost
        /// The port is outside 0...65535.
        case invalidPort
        /// `listen` was called after `HTTPServer.close()`.
        case serverClosed
    }

    public var address: String
    public var reason: Reason

    public init(address: String, reason: Reason) {
        self.address = address
        self.reason = reason
    }

    /// The errno of a failed system call, if that is the reason.
    public var errno: Int32? {
        if case .system(_, let code) = reason { return code }
        return nil
    }

    public var description: String {
        switch reason {
        case .system(let operation, let code):
            "cannot listen on \(address): \(operation): \(SystemCalls.errnoText(code))"
        case .liveSocket:
            "cannot listen on \(address): another process is accepting connections on this socket"
        case .notASocket:
            "cannot listen on \(address): the path exists and is not a socket"
        case .nameTooLong:
            "cannot listen on \(address): longer than the 107 bytes a Unix socket address holds"
        case .invalidHost:
            "cannot listen on \(address): the host must be an IPv4 or IPv6 address"
        case .invalidPort:
            "cannot listen on \(address): the port must be within 0...65535"
        case .serverClosed:
            "cannot listen on \(address): the server is closed"
        }
    }
}

/// A bound, listening socket of an `HTTPServer`.
public final class HTTPListener: Sendable {
    public let address: HTTPListenAddress
    public let kind: HTTPListenerKind
    /// The bound TCP port (the chosen one for port 0); nil for Unix and abstract sockets.
    public let port: Int?
    let socket: ListeningSocket

    init(address: HTTPListenAddress, kind: HTTPListenerKind, port: Int?, socket: ListeningSocket) {
        self.address = address
        self.kind = kind
        self.port = port
        self.socket = socket
    }

    /// True when "all interfaces" fell back to IPv4 only (log `event=http.ipv4_only`).
    public var isIPv4Fallback: Bool { kind == .ipv4Fallback }

    /// Stops accepting; open connections stay. A Unix socket file is removed.
    public func close() {
        let socket = socket
        socket.loop.execute { socket.closeTarget() }
    }
}

/// The listening descriptor on the event loop: accepts connections and applies the cap.
final class ListeningSocket: PollTarget, @unchecked Sendable {
    let loop: EventLoop
    private var fd: Int32
    private let isTCP: Bool
    private let unixPath: String?
    private let onlyOwnUID: Bool
    private var pausedUntil: UInt64 = 0

    init(fd: Int32, loop: EventLoop, isTCP: Bool, unixPath: String?, onlyOwnUID: Bool) {
        self.fd = fd
        self.loop = loop
        self.isTCP = isTCP
        self.unixPath = unixPath
        self.onlyOwnUID = onlyOwnUID
    }

    override func handleEvents(_ revents: UInt32) {
        let context = loop.context
        for _ in 0..<64 {
            let connectionFD = SystemCalls.acceptConnection(fd)
            if connectionFD < 0 {
                switch errno {
                case EINTR, ECONNABORTED, EPROTO:
                    continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    // Out of descriptors: make room, or pause accepting briefly instead of spinning.
                    if loop.evictLongestIdle() { continue }
                    pause()
                    return
                default:
                    return  // EAGAIN and the rest: nothing more to accept now.
                }
            }
            if onlyOwnUID {
                let uid = SystemCalls.peerUID(connectionFD)
                if uid == nil || (uid != getuid() && uid != 0) {
                    Glibc.close(connectionFD)
                    continue
                }
            }
            if isTCP { SystemCalls.setOption(connectionFD, Int32(IPPROTO_TCP), TCP_NODELAY, 1) }
            if loop.connectionCount >= context.maxConnections && !loop.evictLongestIdle() {
                Glibc.close(connectionFD)  // every connection is busy with a request
                continue
            }
            let connection = HTTPConnection(fd: connectionFD, loop: loop)
            loop.connectionCount += 1
            loop.register(connection, fd: connectionFD, events: SystemCalls.epollIn)
        }
    }

    private func pause() {
        guard pausedUntil == 0 else { return }
        pausedUntil = loop.now &+ 100_000_000
        loop.pausedListenerCount += 1
        loop.setEvents(self, 0)
    }

    override func sweep(now: UInt64) {
        if pausedUntil != 0 && now >= pausedUntil {
            pausedUntil = 0
            loop.pausedListenerCount -= 1
            loop.setEvents(self, SystemCalls.epollIn)
        }
    }

    override func closeTarget() {
        guard fd >= 0 else { return }
        if pausedUntil != 0 {
            pausedUntil = 0
            loop.pausedListenerCount -= 1
        }
        loop.unregister(self)
        Glibc.close(fd)
        fd = -1
        if let unixPath { unlink(unixPath) }
    }

    override func beginShutdown() { closeTarget() }
}

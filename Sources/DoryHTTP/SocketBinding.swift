import Glibc

/// Creating, binding and listening on sockets (runs on the caller's thread so errors return directly).
enum SocketBinding {
    struct Bound {
        var fd: Int32
        var kind: HTTPListenerKind
        var port: Int?
        var unixPath: String?
        var onlyOwnUID: Bool
    }

    static func bind(_ address: HTTPListenAddress, backlog: Int32) throws(HTTPBindError) -> Bound {
        switch address {
        case .tcp(let host, let port):
            guard (0...65535).contains(port) else { throw HTTPBindError(address: address.description, reason: .invalidPort) }
            return try bindTCP(host: host, port: UInt16(port), backlog: backlog, label: address.description)
        case .unix(let path):
            return try bindUnix(path: path, backlog: backlog, label: address.description)
        case .abstract(let name, let onlyOwnUID):
            var bound = try bindAbstract(name: name, backlog: backlog, label: address.description)
            bound.onlyOwnUID = onlyOwnUID
            return bound
        }
    }

    // MARK: TCP

    private static func bindTCP(host: String?, port: UInt16, backlog: Int32, label: String) throws(HTTPBindError) -> Bound {
        var literal = host ?? "::"
        if literal.hasPrefix("[") && literal.hasSuffix("]") { literal = String(literal.dropFirst().dropLast()) }
        if literal == "localhost" { literal = "127.0.0.1" }

        if literal.isEmpty || literal == "::" || literal == "0.0.0.0" {
            var any6 = sockaddr_in6()
            any6.sin6_family = sa_family_t(AF_INET6)
            any6.sin6_port = port.bigEndian
            do {
                let fd = try listenInet(family: AF_INET6, address: any6, dualStack: true, backlog: backlog, label: label)
                return Bound(fd: fd, kind: .dualStack, port: boundPort(fd), unixPath: nil, onlyOwnUID: false)
            } catch let error where error.errno == EAFNOSUPPORT || error.errno == EADDRNOTAVAIL {
                var any4 = sockaddr_in()
                any4.sin_family = sa_family_t(AF_INET)
                any4.sin_port = port.bigEndian
                let fd = try listenInet(family: AF_INET, address: any4, dualStack: false, backlog: backlog, label: label)
                return Bound(fd: fd, kind: .ipv4Fallback, port: boundPort(fd), unixPath: nil, onlyOwnUID: false)
            }
        }
        var address4 = sockaddr_in()
        if inet_pton(AF_INET, literal, &address4.sin_addr) == 1 {
            address4.sin_family = sa_family_t(AF_INET)
            address4.sin_port = port.bigEndian
            let fd = try listenInet(family: AF_INET, address: address4, dualStack: false, backlog: backlog, label: label)
            return Bound(fd: fd, kind: .ipv4, port: boundPort(fd), unixPath: nil, onlyOwnUID: false)
        }
        var address6 = sockaddr_in6()
        if inet_pton(AF_INET6, literal, &address6.sin6_addr) == 1 {
            address6.sin6_family = sa_family_t(AF_INET6)
            address6.sin6_port = port.bigEndian
            let fd = try listenInet(family: AF_INET6, address: address6, dualStack: false, backlog: backlog, label: label)
            return Bound(fd: fd, kind: .ipv6, port: boundPort(fd), unixPath: nil, onlyOwnUID: false)
        }
        throw HTTPBindError(address: label, reason: .invalidHost)
    }

    private static func listenInet<Address>(
        family: Int32, address: Address, dualStack: Bool, backlog: Int32, label: String
    ) throws(HTTPBindError) -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | SystemCalls.socketFlags, 0)
        if fd < 0 { throw failure(label, "socket", errno) }
        SystemCalls.setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        if family == AF_INET6 {
            SystemCalls.setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, dualStack ? 0 : 1)
        }
        var address = address
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<Address>.size))
            }
        }
        if result != 0 { throw closing(fd, failure(label, "bind", errno)) }
        if listen(fd, backlog) != 0 { throw closing(fd, failure(label, "listen", errno)) }
        return fd
    }

    private static func boundPort(_ fd: Int32) -> Int? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard result == 0 else { return nil }
        return withUnsafeBytes(of: &storage) { raw in
            // sin_port and sin6_port share offset 2 in network byte order.
            Int(UInt16(raw[2]) << 8 | UInt16(raw[3]))
        }
    }

    // MARK: Unix

    /// `sockaddr_un` for a path (or, with a leading NUL, an abstract name); nil when it does not fit.
    static func unixAddress(_ name: [UInt8]) -> (sockaddr_un, socklen_t)? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard name.count < capacity else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (offset, byte) in name.enumerated() { raw[offset] = byte }
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path) ?? 2
        // A path is NUL-terminated; an abstract name's length is exact.
        let length = name.first == 0 ? pathOffset + name.count : pathOffset + name.count + 1
        return (address, socklen_t(length))
    }

    private static func bindUnix(path: String, backlog: Int32, label: String) throws(HTTPBindError) -> Bound {
        guard !path.isEmpty, let (address, length) = unixAddress(Array(path.utf8)) else {
            throw HTTPBindError(address: label, reason: .nameTooLong)
        }
        var status = stat()
        if lstat(path, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFSOCK else { throw HTTPBindError(address: label, reason: .notASocket) }
            if isLive(address, length) { throw HTTPBindError(address: label, reason: .liveSocket) }
            if unlink(path) != 0 && errno != ENOENT { throw failure(label, "unlink stale socket", errno) }
        }
        let fd = try bindUnixSocket(address, length, label: label)
        if chmod(path, 0o600) != 0 {
            let code = errno
            unlink(path)
            throw closing(fd, failure(label, "chmod 0600", code))
        }
        if listen(fd, backlog) != 0 {
            let code = errno
            unlink(path)
            throw closing(fd, failure(label, "listen", code))
        }
        return Bound(fd: fd, kind: .unix, port: nil, unixPath: path, onlyOwnUID: false)
    }

    private static func bindAbstract(name: String, backlog: Int32, label: String) throws(HTTPBindError) -> Bound {
        guard let (address, length) = unixAddress([0] + Array(name.utf8)) else {
            throw HTTPBindError(address: label, reason: .nameTooLong)
        }
        let fd = try bindUnixSocket(address, length, label: label)
        if listen(fd, backlog) != 0 { throw closing(fd, failure(label, "listen", errno)) }
        return Bound(fd: fd, kind: .abstract, port: nil, unixPath: nil, onlyOwnUID: false)
    }

    private static func bindUnixSocket(_ address: sockaddr_un, _ length: socklen_t, label: String) throws(HTTPBindError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | SystemCalls.socketFlags, 0)
        if fd < 0 { throw failure(label, "socket", errno) }
        var address = address
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
        }
        if result != 0 { throw closing(fd, failure(label, "bind", errno)) }
        return fd
    }

    /// Whether something accepts connections at a socket path (a refused connect means a leftover file).
    private static func isLive(_ address: sockaddr_un, _ length: socklen_t) -> Bool {
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | SystemCalls.socketFlags, 0)
        guard probe >= 0 else { return true }
        defer { Glibc.close(probe) }
        var address = address
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, length) }
        }
        if result == 0 { return true }
        // EAGAIN: a live listener with a full backlog. ECONNREFUSED: nobody listens.
        return errno != ECONNREFUSED && errno != ENOENT
    }

    private static func failure(_ label: String, _ operation: String, _ code: Int32) -> HTTPBindError {
        HTTPBindError(address: label, reason: .system(operation: operation, errno: code))
    }

    private static func closing(_ fd: Int32, _ error: HTTPBindError) -> HTTPBindError {
        Glibc.close(fd)
        return error
    }
}

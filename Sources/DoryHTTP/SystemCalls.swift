import Glibc

/// Linux calls that Swift's Glibc module does not export (they sit behind `_GNU_SOURCE`): `accept4`
/// and `pipe2`, looked up once with `dlsym` so every descriptor is created close-on-exec atomically
/// (doryd forks children; an `accept` + `fcntl` pair would leak a descriptor into a child spawned
/// between the two calls). `SOCK_CLOEXEC`/`SOCK_NONBLOCK` are exported and used directly with `socket`.
enum SystemCalls {
    private typealias Accept4 = @convention(c) (
        Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?, Int32
    ) -> Int32
    private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32

    private static let accept4Function: Accept4 = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "accept4") else {
            fatalError("DoryHTTP needs accept4(2), which this C library does not provide")
        }
        return unsafeBitCast(symbol, to: Accept4.self)
    }()

    private static let pipe2Function: Pipe2 = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "pipe2") else {
            fatalError("DoryHTTP needs pipe2(2), which this C library does not provide")
        }
        return unsafeBitCast(symbol, to: Pipe2.self)
    }()

    /// Flags for sockets and accepted connections: non-blocking, close-on-exec.
    static let socketFlags = Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)

    /// `accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)`.
    static func acceptConnection(_ listener: Int32) -> Int32 {
        accept4Function(listener, nil, nil, socketFlags)
    }

    /// A non-blocking, close-on-exec pipe; returns (read end, write end) or the errno.
    static func makePipe() -> Result<(Int32, Int32), SystemError> {
        var ends: [Int32] = [-1, -1]
        if pipe2Function(&ends, O_CLOEXEC | O_NONBLOCK) != 0 {
            return .failure(SystemError(operation: "pipe2", errno: errno))
        }
        return .success((ends[0], ends[1]))
    }

    /// Monotonic clock in nanoseconds.
    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// `strerror` text of an errno value.
    static func errnoText(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "errno \(code)" }
        return String(cString: text)
    }

    /// Sets an integer socket option; returns the errno on failure.
    @discardableResult
    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) -> Int32 {
        var value = value
        if setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) != 0 { return errno }
        return 0
    }

    /// The uid of the process at the other end of a Unix socket (`SO_PEERCRED`), or nil.
    static func peerUID(_ fd: Int32) -> uid_t? {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; } is not exported by the Glibc module.
        var credentials: (Int32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout<(Int32, UInt32, UInt32)>.size)
        let result = withUnsafeMutablePointer(to: &credentials) {
            getsockopt(fd, SOL_SOCKET, SO_PEERCRED, $0, &length)
        }
        guard result == 0, length == 12 else { return nil }
        return credentials.1
    }
}

/// A failed system call: the operation and its errno.
struct SystemError: Error, Sendable {
    var operation: String
    var errno: Int32
    var text: String { "\(operation): \(SystemCalls.errnoText(errno))" }
}

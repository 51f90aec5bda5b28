import Glibc

/// Linux calls that Swift's Glibc module does not export (behind `_GNU_SOURCE`, or in `<sys/epoll.h>`,
/// which the module leaves out): `accept4`, `pipe2` and epoll, looked up once with `dlsym`. Every
/// descriptor is created close-on-exec atomically (doryd forks children; an `accept` + `fcntl` pair
/// would leak a descriptor into a child spawned between the two calls). `SOCK_CLOEXEC`/`SOCK_NONBLOCK` are exported and used directly with `socket`.
enum SystemCalls {
    private typealias Accept4 = @convention(c) (
        Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?, Int32
    ) -> Int32
    private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32

    private static let accept4Function = symbol("accept4", as: Accept4.self)
    private static let pipe2Function = symbol("pipe2", as: Pipe2.self)

    private typealias EpollCreate1 = @convention(c) (Int32) -> Int32
    private typealias EpollControl = @convention(c) (Int32, Int32, Int32, UnsafeMutableRawPointer?) -> Int32
    private typealias EpollWait = @convention(c) (Int32, UnsafeMutableRawPointer?, Int32, Int32) -> Int32

    private static func symbol<T>(_ name: String, as type: T.Type) -> T {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), name) else {
            fatalError("DoryHTTP needs \(name)(2), which this C library does not provide")
        }
        return unsafeBitCast(symbol, to: type)
    }

    private static let epollCreate1Function = symbol("epoll_create1", as: EpollCreate1.self)
    private static let epollControlFunction = symbol("epoll_ctl", as: EpollControl.self)
    private static let epollWaitFunction = symbol("epoll_wait", as: EpollWait.self)

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

    // MARK: epoll (Linux ABI constants; <sys/epoll.h> is not exported to Swift)

    static let epollIn: UInt32 = 0x001
    static let epollOut: UInt32 = 0x004
    static let epollErr: UInt32 = 0x008
    static let epollHup: UInt32 = 0x010
    static let epollCloexec: Int32 = 0o2000000
    static let epollAdd: Int32 = 1
    static let epollDelete: Int32 = 2
    static let epollModify: Int32 = 3

    /// `struct epoll_event` is packed on x86-64 (12 bytes, data at offset 4) and naturally aligned elsewhere.
    #if arch(x86_64)
        static let epollEventStride = 12
        static let epollDataOffset = 4
    #else
        static let epollEventStride = 16
        static let epollDataOffset = 8
    #endif

    static func epollCreate() -> Int32 { epollCreate1Function(epollCloexec) }

    /// `epoll_ctl`; returns 0 or the errno.
    static func epollControl(_ epoll: Int32, _ operation: Int32, _ fd: Int32, events: UInt32, data: UInt64) -> Int32 {
        var event: (UInt64, UInt64) = (0, 0)
        return withUnsafeMutableBytes(of: &event) { raw in
            raw.storeBytes(of: events, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: data, toByteOffset: epollDataOffset, as: UInt64.self)
            return epollControlFunction(epoll, operation, fd, raw.baseAddress) == 0 ? 0 : errno
        }
    }

    /// `epoll_wait` into a buffer of `capacity` events; returns the count (or -1 with errno).
    static func epollWait(_ epoll: Int32, _ events: UnsafeMutableRawPointer, capacity: Int32, timeout: Int32) -> Int32 {
        epollWaitFunction(epoll, events, capacity, timeout)
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

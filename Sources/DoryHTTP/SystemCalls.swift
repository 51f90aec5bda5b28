import CDorySys
import Glibc

/// Linux calls that Swift's Glibc module does not export (behind `_GNU_SOURCE`, or in `<sys/epoll.h>`, which the
/// module leaves out), through the `CDorySys` wrappers: `accept4` and `pipe2`, so every descriptor is created
/// close-on-exec atomically (doryd spawns children; an `accept` + `fcntl` pair would leak a descriptor into a child
/// spawned between the two calls), epoll, and `SO_PEERCRED`. `SOCK_CLOEXEC`/`SOCK_NONBLOCK` are exported and used
/// directly with `socket`.
enum SystemCalls {
    /// Flags for sockets and accepted connections: non-blocking, close-on-exec.
    static let socketFlags = Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)

    /// `accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)`.
    static func acceptConnection(_ listener: Int32) -> Int32 {
        dory_accept4(listener, nil, nil, socketFlags)
    }

    /// A non-blocking, close-on-exec pipe; returns (read end, write end) or the errno.
    static func makePipe() -> Result<(Int32, Int32), SystemError> {
        var ends: [Int32] = [-1, -1]
        if dory_pipe2(&ends, O_CLOEXEC | O_NONBLOCK) != 0 {
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

    static func epollCreate() -> Int32 { dory_epoll_create1(epollCloexec) }

    /// `epoll_ctl`; returns 0 or the errno.
    static func epollControl(_ epoll: Int32, _ operation: Int32, _ fd: Int32, events: UInt32, data: UInt64) -> Int32 {
        var event: (UInt64, UInt64) = (0, 0)
        return withUnsafeMutableBytes(of: &event) { raw in
            raw.storeBytes(of: events, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: data, toByteOffset: epollDataOffset, as: UInt64.self)
            return dory_epoll_ctl(epoll, operation, fd, raw.baseAddress) == 0 ? 0 : errno
        }
    }

    /// `epoll_wait` into a buffer of `capacity` events; returns the count (or -1 with errno).
    static func epollWait(_ epoll: Int32, _ events: UnsafeMutableRawPointer, capacity: Int32, timeout: Int32) -> Int32 {
        dory_epoll_wait(epoll, events, capacity, timeout)
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
        var uid: UInt32 = 0
        return dory_peer_uid(fd, &uid) == 0 ? uid : nil
    }
}

/// A failed system call: the operation and its errno.
struct SystemError: Error, Sendable {
    var operation: String
    var errno: Int32
    var text: String { "\(operation): \(SystemCalls.errnoText(errno))" }
}

@preconcurrency import Dispatch
import CDorySys
import Glibc
import Logging
import Synchronization

/// One line of a notify datagram (spec/supervise.md §7.2).
public enum NotifyMessage: Sendable, Equatable {
    case ready
    /// `STATUS=`: one line, at most 512 bytes of UTF-8 (invalid bytes replaced).
    case status(String)
    case watchdog
    case stopping
    /// Any other key (`RELOADING=1`, `MAINPID=`, `WATCHDOG=trigger`, `X_…`): ignored, logged once at DEBUG.
    case ignored(key: String)

    /// Parses a datagram: one `KEY=VALUE` per line.
    public static func parse(_ bytes: [UInt8]) -> [NotifyMessage] {
        bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).map { line in
            let text = String(decoding: line, as: UTF8.self)
            guard let eq = text.firstIndex(of: "=") else { return .ignored(key: text) }
            let key = String(text[..<eq])
            let value = text[text.index(after: eq)...]
            switch (key, value) {
            case ("READY", "1"): return .ready
            case ("WATCHDOG", "1"): return .watchdog
            case ("STOPPING", "1"): return .stopping
            case ("STATUS", _): return .status(Self.cut(String(value)))
            default: return .ignored(key: key)
            }
        }
    }

    /// At most 512 bytes of UTF-8, never splitting a character.
    static func cut(_ text: String) -> String {
        var result = ""
        var bytes = 0
        for character in text {
            let size = character.utf8.count
            if bytes + size > 512 { break }
            result.append(character)
            bytes += size
        }
        return result
    }
}

/// A notify socket could not be created (exit 7).
public struct NotifyBridgeError: Error, Sendable, CustomStringConvertible {
    public let address: String
    public let step: String
    public let errno: Int32
    public var description: String { "notify socket \(address): \(step): \(String(cString: strerror(errno)))" }
}

/// The notify bridge of spec/supervise.md §7.2: a datagram socket for one child (`NOTIFY_SOCKET`), with
/// `SO_PASSCRED`, read on its own queue; accepted messages drive `ChildLiveness` and the event stream.
public final class NotifyBridge: Sendable {
    /// The `NOTIFY_SOCKET` value: a path, or `@name` for an abstract socket.
    public let address: String
    private let fd: Int32
    private let path: String?
    private let queue = DispatchQueue(label: "doryd.child.notify")
    private let source: Mutex<(any DispatchSourceRead)?> = Mutex(nil)
    /// Reads every pending datagram; set by `start`, run on `queue` (by the read source, and once more by `close`).
    private let drain: Mutex<(@Sendable () -> Void)?> = Mutex(nil)
    private let seenUnknown = Mutex(Set<String>())
    private let logger = Logger(label: "doryd.child")
    /// `dory_notify_messages_total{result}`: accepted, rejected, dropped.
    public let counters = Mutex<[String: Int]>(["accepted": 0, "rejected": 0, "dropped": 0])

    /// Creates the socket at `path` (mode 0600 before the spawn), or the abstract `abstractName` when the path does
    /// not fit `sun_path` (107 bytes) or is nil.
    public init(path: String?, abstractName: String) throws(NotifyBridgeError) {
        let usePath = path.flatMap { $0.utf8.count <= 107 ? $0 : nil }
        let label = usePath ?? "@" + abstractName
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw NotifyBridgeError(address: label, step: "socket", errno: errno) }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let nameBytes: [UInt8] = usePath.map { Array($0.utf8) } ?? [0] + Array(abstractName.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in nameBytes.prefix(raw.count - 1).enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + nameBytes.count + (usePath == nil ? 0 : 1))
        if let usePath { unlink(usePath) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else {
            let error = errno
            Glibc.close(fd)
            throw NotifyBridgeError(address: label, step: "bind", errno: error)
        }
        if let usePath, chmod(usePath, 0o600) != 0 {
            let error = errno
            Glibc.close(fd)
            unlink(usePath)
            throw NotifyBridgeError(address: label, step: "chmod", errno: error)
        }
        self.fd = fd
        self.path = usePath
        self.address = label
    }

    /// Starts reading. `isAcceptedSender(pid, uid)` decides on the `SCM_CREDENTIALS` of each datagram (use
    /// `ChildController.isNotifySenderAccepted`); accepted keys go to `liveness` (READY=1 only counts for
    /// `--ready=notify`) and, through it, to the event stream.
    public func start(liveness: ChildLiveness, events: ChildEvents? = nil,
                      isAcceptedSender: @escaping @Sendable (_ pid: pid_t, _ uid: uid_t) -> Bool) {
        let fd = self.fd
        let readAll: @Sendable () -> Void = { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                var pid: Int32 = -1, uid: Int32 = -1, truncated: Int32 = 0
                let n = buffer.withUnsafeMutableBytes {
                    dory_recv_with_credentials(fd, $0.baseAddress, UInt($0.count), &pid, &uid, &truncated)
                }
                if n < 0 {
                    if errno == EINTR { continue }
                    return  // EAGAIN: drained
                }
                if truncated != 0 {
                    counters.withLock { $0["dropped", default: 0] += 1 }
                    logger.warning("notify message rejected", metadata: ["reason": "longer than 4096 bytes"])
                    continue
                }
                guard isAcceptedSender(pid, uid_t(bitPattern: uid)) else {
                    counters.withLock { $0["rejected", default: 0] += 1 }
                    logger.debug("notify message rejected", metadata: ["pid": "\(pid)", "reason": "not a descendant"])
                    events?.yield(.notifyRejected(pid: pid))
                    continue
                }
                counters.withLock { $0["accepted", default: 0] += 1 }
                for message in NotifyMessage.parse(Array(buffer[..<Int(n)])) {
                    apply(message, liveness: liveness)
                }
            }
        }
        drain.withLock { $0 = readAll }
        let readSource = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        readSource.setEventHandler(handler: readAll)
        source.withLock { $0 = readSource }
        readSource.resume()
    }

    private func apply(_ message: NotifyMessage, liveness: ChildLiveness) {
        switch message {
        case .ready: liveness.markReady(via: .notify)
        case .watchdog: liveness.heartbeat()
        case .stopping:
            logger.info("child sent STOPPING=1")
            liveness.noteStopping()
        case .status(let text): liveness.setStatus(text)
        case .ignored(let key):
            if seenUnknown.withLock({ $0.insert(key).inserted }) {
                logger.debug("notify key ignored", metadata: ["key": "\(key)"])
            }
        }
    }

    /// Closes and removes the socket (once the child is reaped and its descendants are gone). Datagrams already
    /// queued (a descendant's last message before it exited) are handled first.
    public func close() {
        if let readAll = drain.withLock({ d -> (@Sendable () -> Void)? in defer { d = nil }; return d }) {
            queue.sync(execute: readAll)
        }
        let readSource = source.withLock { s -> (any DispatchSourceRead)? in
            defer { s = nil }
            return s
        }
        if let readSource {
            let fd = self.fd
            readSource.setCancelHandler { _ = Glibc.close(fd) }
            readSource.cancel()
        } else {
            Glibc.close(fd)
        }
        if let path { unlink(path) }
    }
}

extension ChildController {
    /// The sender rule of §7.2: the pid is in the child's process group or another descendant; or it no longer
    /// exists, or is 0 (another PID namespace), and its UID is doryd's.
    public func isNotifySenderAccepted(pid: pid_t, uid: uid_t) -> Bool {
        // Gone: no longer there, or a zombie not reaped yet (a descendant that sent its last message and exited).
        func gone() -> Bool { pid <= 0 || ProcessTable.entry(pid: pid).map(\.isGone) ?? true }
        if gone() { return uid == getuid() }
        if let child = aliveChild, let entry = ProcessTable.entry(pid: pid), entry.pgid == child.pgid { return true }
        if descendants()?.contains(where: { $0.pid == pid }) ?? false { return true }
        // It may have exited while the table was read (the scan skips zombies).
        return gone() && uid == getuid()
    }
}

import Glibc
import Synchronization

/// A Unix datagram socket standing in for systemd's `NOTIFY_SOCKET`: every datagram is recorded with its arrival time.
final class NotifySocket: Sendable {
    struct Message: Sendable {
        let at: ContinuousClock.Instant
        let text: String
    }
    let path: String
    private let fd: Int32
    private let messages = Mutex<[Message]>([])
    private let running = Atomic<Bool>(true)

    struct Failure: Error, CustomStringConvertible { let description: String }

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw Failure(description: "path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(self.fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else { throw Failure(description: "bind \(path): \(String(cString: strerror(errno)))") }
        Threads.start { [self] in
            let fd = self.fd
            var buffer = [UInt8](repeating: 0, count: 65536)
            while running.load(ordering: .acquiring) {
                var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&descriptor, 1, 50) > 0 else { continue }
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n > 0 {
                    let text = String(decoding: buffer[0..<n], as: UTF8.self)
                    messages.withLock { $0.append(Message(at: .now, text: text)) }
                }
            }
            Glibc.close(fd)
        }
    }

    func close() { running.store(false, ordering: .releasing) }

    /// Every datagram so far.
    var all: [Message] { messages.withLock { $0 } }

    /// Every `KEY=value` line so far, in order.
    var lines: [String] { all.flatMap { $0.text.split(separator: "\n").map(String.init) } }
}

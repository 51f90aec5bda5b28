import Glibc
import Synchronization

/// An HTTP/1.1 server on POSIX sockets: one event-loop thread serving any number of listeners.
///
/// ```swift
/// let server = try HTTPServer(configuration: config, handler: MyRoutes())
/// let tcp = try server.listen(.tcp(host: nil, port: 8080))
/// if tcp.isIPv4Fallback { log.info("event=http.ipv4_only") }
/// let control = try server.listen(.unix(path: socketPath))
/// …
/// server.close()
/// ```
/// SIGPIPE is ignored process-wide when the first server starts (writes also pass MSG_NOSIGNAL).
public final class HTTPServer: Sendable {
    let loop: EventLoop
    private let context: ServerContext
    private let closed = Atomic<Bool>(false)

    public init(configuration: HTTPServerConfiguration = HTTPServerConfiguration(), handler: some HTTPHandler) throws(HTTPBindError) {
        signal(SIGPIPE, SIG_IGN)
        context = ServerContext(configuration: configuration, handler: handler)
        loop = try EventLoop(context: context)
        loop.start()
    }

    /// Binds and listens on `address` now (errors are thrown here), then serves it on the loop.
    @discardableResult
    public func listen(_ address: HTTPListenAddress) throws(HTTPBindError) -> HTTPListener {
        guard !closed.load(ordering: .acquiring) else {
            throw HTTPBindError(address: address.description, reason: .serverClosed)
        }
        let bound = try SocketBinding.bind(address, backlog: context.backlog)
        let socket = ListeningSocket(
            fd: bound.fd, loop: loop, isTCP: bound.port != nil, unixPath: bound.unixPath, onlyOwnUID: bound.onlyOwnUID)
        let loop = loop
        loop.execute { loop.register(socket, fd: bound.fd, events: SystemCalls.epollIn) }
        return HTTPListener(address: address, kind: bound.kind, port: bound.port, socket: socket)
    }

    /// Stops the server: listeners close at once (Unix socket files are removed), idle connections close,
    /// requests in progress get up to `gracePeriod` to be answered (with `Connection: close`), then every
    /// connection is closed. Blocks until the loop thread has ended, except when called from a handler.
    public func close(gracePeriod: Duration = .seconds(1)) {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        loop.stop(gracePeriodNanos: ServerContext.nanoseconds(gracePeriod))
        loop.join()
    }
}

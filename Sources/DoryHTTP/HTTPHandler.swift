/// What the server does with a request head before reading any body byte.
public enum HTTPAdmission: Sendable {
    /// Read the body, at most `maxBodyBytes` of it. A larger `Content-Length` is answered 413 without
    /// reading the body; a chunked body crossing the limit is answered 413 and the connection is closed.
    /// `tooLarge(bytesRead, limit)` builds that 413 (`bytesRead` is the declared `Content-Length`, or for a
    /// chunked body the count read when the limit was crossed); nil uses the server's error response.
    case accept(maxBodyBytes: Int, tooLarge: (@Sendable (_ bytesRead: Int, _ limit: Int) -> HTTPResponse)? = nil)
    /// Answer this response without calling `handle`; when a body was announced, the connection is
    /// closed after the answer (the body is never read).
    case reject(HTTPResponse)

    /// Accept a request that must not carry a body (a body of any size is answered 413).
    public static let noBody = HTTPAdmission.accept(maxBodyBytes: 0)
}

/// The application side of the server. Both methods run on the connection's event-loop thread, so
/// they must return quickly: do slow work elsewhere and answer through the responder later.
public protocol HTTPHandler: Sendable {
    /// Called once the head is complete, before any body byte is read. Default: accept up to 1 MiB.
    func admit(_ head: HTTPRequestHead) -> HTTPAdmission

    /// Called with the complete request. Call `responder` exactly once, now or later from any thread.
    func handle(_ request: HTTPRequest, responder: HTTPResponder)
}

extension HTTPHandler {
    public func admit(_ head: HTTPRequestHead) -> HTTPAdmission { .accept(maxBodyBytes: 1 << 20) }
}

/// A handler made of two closures.
public struct HTTPClosureHandler: HTTPHandler {
    private let admitClosure: @Sendable (HTTPRequestHead) -> HTTPAdmission
    private let handleClosure: @Sendable (HTTPRequest, HTTPResponder) -> Void

    public init(
        admit: @escaping @Sendable (HTTPRequestHead) -> HTTPAdmission = { _ in .accept(maxBodyBytes: 1 << 20) },
        handle: @escaping @Sendable (HTTPRequest, HTTPResponder) -> Void
    ) {
        admitClosure = admit
        handleClosure = handle
    }

    public func admit(_ head: HTTPRequestHead) -> HTTPAdmission { admitClosure(head) }
    public func handle(_ request: HTTPRequest, responder: HTTPResponder) { handleClosure(request, responder) }
}

/// Sends the response to one request. Call it exactly once, from any thread or task: on the event
/// loop (inside `handle`) the response is written at once; from elsewhere it is handed to the loop.
/// Later calls, and calls after the client went away, are ignored.
public struct HTTPResponder: Sendable {
    let connection: HTTPConnection
    let serial: UInt64
    /// Sees each response before it is sent (a composed handler counting responses per route).
    var observer: (@Sendable (HTTPResponse) -> Void)? = nil

    /// This responder, with `observe` called with the response before it is sent.
    public func observing(_ observe: @escaping @Sendable (HTTPResponse) -> Void) -> HTTPResponder {
        let previous = observer
        var copy = self
        copy.observer = { response in
            previous?(response)
            observe(response)
        }
        return copy
    }

    public func respond(_ response: HTTPResponse) {
        observer?(response)
        let connection = connection, serial = serial
        if connection.loop.isLoopThread {
            connection.deliver(response, serial: serial)
        } else {
            connection.loop.execute { connection.deliver(response, serial: serial) }
        }
    }

    public func callAsFunction(_ response: HTTPResponse) { respond(response) }
}

/// Who produced a response, for `HTTPServerConfiguration.onResponse`.
public enum HTTPResponseOrigin: Sendable, Equatable {
    /// The handler: through the responder, an admission rejection or its `tooLarge` closure.
    case handler
    /// The server itself: 400, 408, 413 (no `tooLarge` closure), 414, 431, 501, 505.
    case server
}

/// Server settings.
public struct HTTPServerConfiguration: Sendable {
    public var limits = HTTPLimits()
    /// A request head must be complete this long after the connection opened or the request's first byte (408).
    public var headerTimeout: Duration = .seconds(10)
    /// A keep-alive connection with no request in progress is closed after this long; also the longest
    /// pause allowed while a body is read or a response is written.
    public var idleTimeout: Duration = .seconds(60)
    /// Most open connections; when full, the connection idle the longest is closed to admit a new one.
    public var maxConnections = 512
    /// Added to every response, the server's own errors included (before the response's own headers).
    public var defaultHeaders: HTTPHeaders = [:]
    /// Builds the server's own error answers from (status, code, message). Default: `HTTPResponse.jsonError`.
    public var errorResponse: @Sendable (_ status: Int, _ code: String, _ message: String) -> HTTPResponse =
        HTTPResponse.jsonError
    /// Called on the event loop after every response is queued; keep it cheap (an atomic increment).
    public var onResponse: (@Sendable (_ status: Int, _ origin: HTTPResponseOrigin) -> Void)?
    /// `listen(2)` backlog.
    public var backlog: Int32 = 511

    public init() {}
}

/// What every connection of a server shares: settings in the form the hot path wants, and the handler.
final class ServerContext: Sendable {
    let handler: any HTTPHandler
    let limits: HTTPLimits
    let headerTimeoutNanos: UInt64
    let idleTimeoutNanos: UInt64
    let lingerNanos: UInt64
    let maxConnections: Int
    let backlog: Int32
    /// The default headers, serialized once (`Name: value\r\n` each).
    let defaultHeaderBytes: [UInt8]
    let errorResponse: @Sendable (Int, String, String) -> HTTPResponse
    let onResponse: (@Sendable (Int, HTTPResponseOrigin) -> Void)?
    /// Input buffer bound: the largest head plus room for a read.
    let maxInputBytes: Int

    init(configuration: HTTPServerConfiguration, handler: any HTTPHandler) {
        self.handler = handler
        limits = configuration.limits
        headerTimeoutNanos = Self.nanoseconds(configuration.headerTimeout)
        idleTimeoutNanos = Self.nanoseconds(configuration.idleTimeout)
        lingerNanos = min(2_000_000_000, idleTimeoutNanos)
        maxConnections = max(1, configuration.maxConnections)
        backlog = configuration.backlog
        var bytes: [UInt8] = []
        for field in configuration.defaultHeaders {
            bytes += Array(field.name.utf8) + Array(": ".utf8) + Array(field.value.utf8) + [0x0D, 0x0A]
        }
        defaultHeaderBytes = bytes
        errorResponse = configuration.errorResponse
        onResponse = configuration.onResponse
        maxInputBytes = configuration.limits.maxHeadBytes + 4096
    }

    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) &* 1_000_000_000 &+ UInt64(attoseconds / 1_000_000_000)
    }
}

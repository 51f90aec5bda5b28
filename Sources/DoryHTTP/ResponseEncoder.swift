/// Writes a response head and body into a connection's output buffer.
enum ResponseEncoder {
    /// Appends `response`. `isHead`: send the headers (with the body's length) but not the body.
    /// `close`: add `Connection: close`. `http10KeepAlive`: add `Connection: keep-alive` (HTTP/1.0 clients).
    /// Returns whether the response itself asked to close (`Connection: close`).
    static func encode(
        _ response: HTTPResponse, into output: ByteBuffer, isHead: Bool, close: Bool, http10KeepAlive: Bool,
        defaultHeaders: [UInt8]
    ) {
        appendStatusLine(response.status, to: output)
        output.append(defaultHeaders)
        for field in response.headers where !isFramingField(field.name) {
            output.append(field.name)
            output.append(": ")
            output.append(field.value)
            output.append("\r\n")
        }
        let status = response.status
        let bodyAllowed = !(status < 200 || status == 204 || status == 304)
        if bodyAllowed {
            output.append("Content-Length: ")
            output.append(decimal: response.body.count)
            output.append("\r\n")
        }
        if close {
            output.append("Connection: close\r\n")
        } else if http10KeepAlive {
            output.append("Connection: keep-alive\r\n")
        }
        output.append("\r\n")
        if bodyAllowed && !isHead { output.append(response.body) }
    }

    /// Whether the response asks the server to close the connection.
    static func asksToClose(_ response: HTTPResponse) -> Bool {
        response.headers.fields.isEmpty ? false : response.headers.containsToken("close", in: "Connection")
    }

    /// Content-Length, Transfer-Encoding and Connection belong to the server.
    @inline(__always)
    private static func isFramingField(_ name: String) -> Bool {
        switch name.utf8.count {
        case 10: HTTPHeaders.namesEqual(name, "connection")
        case 14: HTTPHeaders.namesEqual(name, "content-length")
        case 17: HTTPHeaders.namesEqual(name, "transfer-encoding")
        default: false
        }
    }

    private static func appendStatusLine(_ status: Int, to output: ByteBuffer) {
        switch status {
        case 200: output.append("HTTP/1.1 200 OK\r\n")
        case 204: output.append("HTTP/1.1 204 No Content\r\n")
        case 400: output.append("HTTP/1.1 400 Bad Request\r\n")
        case 404: output.append("HTTP/1.1 404 Not Found\r\n")
        case 503: output.append("HTTP/1.1 503 Service Unavailable\r\n")
        default:
            output.append("HTTP/1.1 ")
            output.append(decimal: max(0, min(999, status)))
            output.append(" ")
            output.append(HTTPResponse.reasonPhrase(status))
            output.append("\r\n")
        }
    }
}

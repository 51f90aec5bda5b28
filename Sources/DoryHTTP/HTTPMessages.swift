/// An HTTP protocol version (`HTTP/1.1`).
public struct HTTPVersion: Sendable, Hashable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }
    public static let http11 = HTTPVersion(major: 1, minor: 1)
    public static let http10 = HTTPVersion(major: 1, minor: 0)
    public var description: String { "HTTP/\(major).\(minor)" }
}

/// The head of a request: request line and header fields, known before any body byte is read.
public struct HTTPRequestHead: Sendable {
    /// The method token, case-sensitive as sent (`GET`, `HEAD`, `POST`, …).
    public var method: String
    /// The request target as sent (`/healthz?verbose`; an absolute-form target keeps its scheme and authority).
    public var target: String
    public var version: HTTPVersion
    public var headers: HTTPHeaders
    /// Whether the connection stays open after this exchange (HTTP/1.1 unless `Connection: close`;
    /// HTTP/1.0 only with `Connection: keep-alive`).
    public var keepAlive: Bool
    /// The declared body length; nil when there is no `Content-Length` (chunked or no body).
    public var contentLength: Int?
    /// Whether the body uses `Transfer-Encoding: chunked`.
    public var isChunked: Bool

    public init(
        method: String, target: String, version: HTTPVersion = .http11, headers: HTTPHeaders = [:],
        keepAlive: Bool = true, contentLength: Int? = nil, isChunked: Bool = false
    ) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.keepAlive = keepAlive
        self.contentLength = contentLength
        self.isChunked = isChunked
    }

    /// Whether a body follows the head (chunked, or a `Content-Length` above 0).
    public var hasBody: Bool { isChunked || (contentLength ?? 0) > 0 }

    /// The path part of the target, not percent-decoded (`/healthz` for `/healthz?verbose`;
    /// `/x` for `http://host/x`; `*` for `OPTIONS *`).
    public var path: Substring {
        var rest = target[...]
        if rest.first != "/" && rest != "*" {
            // absolute-form: scheme "://" authority path
            if let colon = rest.firstIndex(of: ":"), rest[colon...].hasPrefix("://") {
                let authority = rest[rest.index(colon, offsetBy: 3)...]
                rest = authority.firstIndex(of: "/").map { authority[$0...] } ?? "/"
            }
        }
        if let q = rest.firstIndex(of: "?") { return rest[..<q] }
        return rest
    }

    /// The query string without `?`, or nil when the target has none.
    public var query: Substring? {
        guard let q = target.firstIndex(of: "?") else { return nil }
        return target[target.index(after: q)...]
    }

    /// The query as percent-decoded `name=value` pairs in order (`+` is a space; `?verbose` → ("verbose", "")).
    public var queryItems: [(name: String, value: String)] {
        guard let query else { return [] }
        return query.split(separator: "&", omittingEmptySubsequences: true).map { item in
            if let eq = item.firstIndex(of: "=") {
                return (
                    PercentDecoding.decode(item[..<eq]),
                    PercentDecoding.decode(item[item.index(after: eq)...])
                )
            }
            return (PercentDecoding.decode(item), "")
        }
    }
}

/// A complete request: its head and its whole body (empty when there is none).
public struct HTTPRequest: Sendable {
    public var head: HTTPRequestHead
    public var body: [UInt8]

    public init(head: HTTPRequestHead, body: [UInt8] = []) {
        self.head = head
        self.body = body
    }

    public var method: String { head.method }
    public var path: Substring { head.path }
    public var headers: HTTPHeaders { head.headers }
}

/// A response. The server adds `Content-Length` (and `Connection` when needed) and the configured
/// default headers; `Content-Length`/`Transfer-Encoding` set here are ignored (the server owns framing),
/// and `Connection: close` here makes the server close the connection after the response.
/// For a HEAD request give the GET body: the server sends its length and strips the bytes.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: Int, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A response with a text body and its `Content-Type`.
    public init(status: Int, contentType: String, body: String, headers: HTTPHeaders = [:]) {
        var headers = headers
        headers.add("Content-Type", contentType)
        self.init(status: status, headers: headers, body: Array(body.utf8))
    }

    /// The server's default error answer: `{"error":"<code>","message":"<message>"}` as JSON.
    public static func jsonError(status: Int, code: String, message: String) -> HTTPResponse {
        var text = "{\"error\":"
        JSONText.appendString(code, to: &text)
        text += ",\"message\":"
        JSONText.appendString(message, to: &text)
        text += "}"
        return HTTPResponse(status: status, contentType: "application/json; charset=utf-8", body: text)
    }

    /// The standard reason phrase of a status code ("Unknown" when it has none here).
    public static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 411: "Length Required"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 415: "Unsupported Media Type"
        case 422: "Unprocessable Content"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        default: "Unknown"
        }
    }
}

/// Minimal JSON string escaping for the fixed error shape (no JSON library in this target).
enum JSONText {
    static func appendString(_ value: String, to text: inout String) {
        text += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    text.unicodeScalars.append(scalar)
                }
            }
        }
        text += "\""
    }
}

/// Percent-decoding of query components (`+` is a space; invalid escapes are kept as written).
enum PercentDecoding {
    static func decode(_ text: Substring) -> String {
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) else {
            return String(text)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%"), iterator.count >= 2,
                let high = hexValue(iterator[iterator.startIndex]),
                let low = hexValue(iterator[iterator.startIndex + 1])
            {
                bytes.append(high << 4 | low)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

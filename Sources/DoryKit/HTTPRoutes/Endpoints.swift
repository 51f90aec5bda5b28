import DoryState

/// A response built by doryd's routes, independent of the server that sends it.
struct RouteResponse: Sendable {
    var status: Int
    var contentType: String
    var body: [UInt8]
    var headers: [(String, String)] = []

    static let jsonType = "application/json; charset=utf-8"
    static let textType = "text/plain; charset=utf-8"

    static func json(_ status: Int, _ object: JSONObject, headers: [(String, String)] = []) -> RouteResponse {
        let body = (try? JSON.encode(.object(object))) ?? Array("{}".utf8)
        return RouteResponse(status: status, contentType: jsonType, body: body, headers: headers)
    }

    /// The one error shape of spec §4.1: `{"error": code, "message": text, …extra}`.
    static func error(_ status: Int, _ code: String, _ message: String, extra: JSONObject = [:], headers: [(String, String)] = []) -> RouteResponse {
        var object = extra
        object["error"] = .string(code)
        object["message"] = .string(message)
        var headers = headers
        if status == 401 { headers.append(("WWW-Authenticate", "Bearer")) }
        return json(status, object, headers: headers)
    }

    static func text(_ status: Int, _ text: String) -> RouteResponse {
        RouteResponse(status: status, contentType: textType, body: Array(text.utf8))
    }
}

/// The request facts routes need (head only; the body comes separately).
struct RouteRequest: Sendable {
    var method: String
    var path: String
    /// Raw query items in order (`verbose`, `exclude=ping`); a name without `=` has an empty value.
    var query: [(name: String, value: String)]
    var authorization: String?
    var contentType: String?
    var contentLength: Int?
    /// Arrived on the control socket (no token asked).
    var viaControlSocket: Bool

    func has(_ name: String) -> Bool { query.contains { $0.name == name } }
    func values(_ name: String) -> [String] { query.filter { $0.name == name }.map(\.value) }
}

/// The routes of spec §4.2 with their allowed methods, in one table.
enum Route: String, CaseIterable, Sendable {
    case root = "/"
    case healthz = "/healthz", livez = "/livez", health = "/health"
    case ready = "/ready", readyz = "/readyz"
    case prestop = "/prestop"
    case metrics = "/metrics"
    case state = "/state"

    var methods: [String] {
        switch self {
        case .prestop: ["GET", "POST"]
        case .state: ["GET", "HEAD", "POST"]
        default: ["GET", "HEAD"]
        }
    }

    /// Routes the control socket serves (§4.7).
    var onControlSocket: Bool { self == .prestop || self == .healthz }
    var isLiveness: Bool { self == .healthz || self == .livez || self == .health }
    var isReadiness: Bool { self == .ready || self == .readyz }

    /// Largest request body accepted.
    func bodyLimit(_ config: DoryConfig) -> Int { self == .state ? config.stateMaxBytes : 4096 }
}

/// Bearer-token checks of spec §4.5: SHA-256 digests compared in constant time.
public struct TokenCheck: Sendable {
    let digest: [UInt8]

    public init(token: String) { digest = SHA256.hash(Array(token.utf8)) }

    /// nil when authorized, else the 401 code (`missing_authorization`, `invalid_authorization_format`,
    /// `invalid_token`).
    public func verify(_ header: String?) -> String? {
        guard let header, !header.isEmpty else { return "missing_authorization" }
        let bytes = Array(header.utf8)
        // Scheme "Bearer", case-insensitive, then one or more spaces.
        guard bytes.count > 7, String(decoding: bytes[0..<6], as: UTF8.self).lowercased() == "bearer", bytes[6] == 32 else {
            return "invalid_authorization_format"
        }
        var i = 6
        while i < bytes.count, bytes[i] == 32 { i += 1 }
        let presented = SHA256.hash(Array(bytes[i...]))
        var difference: UInt8 = 0
        for (a, b) in zip(presented, digest) { difference |= a ^ b }
        return difference == 0 ? nil : "invalid_token"
    }
}

import DoryHTTP
import DoryState
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The probe listener on the TCP port and the control socket (spec §4.1, §4.7), both served by DoryHTTP.
final class Listeners: Sendable {
    private let servers = Mutex<[HTTPServer]>([])
    private let logger = Logger(label: "doryd.http")

    /// Binds both listeners (step j). Throws on any bind failure (exit 7).
    func bind(service: ProbeService, settings: RuntimeSettings, extraControlRoutes: WorkloadRoutes? = nil,
              extraTCPRoutes: WorkloadRoutes? = nil) throws {
        let config = settings.config
        let tcpRuntimeRoutes = RouteHandler(service: service, viaControlSocket: false)
        let tcpHandler: any HTTPHandler = extraTCPRoutes.map {
            ComposedHandler(extra: $0, runtime: tcpRuntimeRoutes, metrics: service.metrics)
        } ?? tcpRuntimeRoutes
        let tcpServer = try HTTPServer(configuration: Self.configuration(service), handler: tcpHandler)
        servers.withLock { $0.append(tcpServer) }
        let listener = try tcpServer.listen(.tcp(host: config.healthHost, port: config.healthPort))
        if listener.kind == .ipv4Fallback {
            logger.info("IPv6 unavailable; listening on 0.0.0.0", metadata: ["event": "http.ipv4_only"])
        }
        logger.info("listening", metadata: [
            "event": "http.listening", "port": .stringConvertible(listener.port ?? config.healthPort),
            "host": .string(config.healthHost ?? "*"),
        ])
        let control = ControlSocketAddress.resolve(settings: settings)
        let runtimeRoutes = RouteHandler(service: service, viaControlSocket: true)
        let controlHandler: any HTTPHandler = extraControlRoutes.map {
            ComposedHandler(extra: $0, runtime: runtimeRoutes, metrics: service.metrics)
        } ?? runtimeRoutes
        let controlServer = try HTTPServer(configuration: Self.configuration(service), handler: controlHandler)
        servers.withLock { $0.append(controlServer) }
        switch control {
        case .path(let path):
            _ = try controlServer.listen(.unix(path: path))
            logger.info("control socket listening", metadata: ["event": "control.listening", "path": .string(path)])
        case .abstract(let name, let path):
            _ = try controlServer.listen(.abstract(name: name, onlyOwnUID: true))
            logger.info("control socket path too long for sun_path; using an abstract socket", metadata: [
                "event": "control.abstract", "name": .string("@" + name), "path": .string(path),
            ])
        }
    }

    func close() {
        for server in servers.withLock({ $0 }) { server.close(gracePeriod: .milliseconds(100)) }
    }

    private static func configuration(_ service: ProbeService) -> HTTPServerConfiguration {
        var configuration = HTTPServerConfiguration()
        configuration.defaultHeaders = ["X-Dory-Version": service.settings.version, "Cache-Control": "no-store"]
        configuration.errorResponse = { status, code, message in
            RouteHandler.convert(.error(status, code, message), isHead: false)
        }
        let metrics = service.metrics
        configuration.onResponse = { status, origin in
            if origin == .server { metrics.request(route: "other", code: status) }
        }
        return configuration
    }
}

/// The control socket with a workload's routes (`Workload.controlSocketRoutes`) next to the runtime's.
/// A workload's routes next to the runtime's; responses of the workload's routes are counted by route template
/// when it provides one.
struct ComposedHandler: HTTPHandler {
    let extra: WorkloadRoutes
    let runtime: RouteHandler
    let metrics: Metrics

    func admit(_ head: HTTPRequestHead) -> HTTPAdmission {
        guard extra.handles(head.path) else { return runtime.admit(head) }
        let admission = extra.handler.admit(head)
        guard let template = extra.routeTemplate?(head.path) else { return admission }
        switch admission {
        case .reject(let response):
            metrics.request(route: template, code: response.status)
            return admission
        case .accept(let limit, let tooLarge):
            let metrics = self.metrics
            return .accept(maxBodyBytes: limit) { bytesRead, limit in
                metrics.request(route: template, code: 413)
                return tooLarge?(bytesRead, limit)
                    ?? RouteHandler.convert(.error(413, "payload_too_large", "the body is over \(limit) bytes"), isHead: false)
            }
        }
    }

    func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        guard extra.handles(request.path) else {
            runtime.handle(request, responder: responder)
            return
        }
        guard let template = extra.routeTemplate?(request.path) else {
            extra.handler.handle(request, responder: responder)
            return
        }
        let metrics = self.metrics
        extra.handler.handle(request, responder: responder.observing { metrics.request(route: template, code: $0.status) })
    }
}

/// Adapts doryd's routes to DoryHTTP's handler protocol and counts every response by route template.
struct RouteHandler: HTTPHandler {
    let service: ProbeService
    let viaControlSocket: Bool

    func admit(_ head: HTTPRequestHead) -> HTTPAdmission {
        let request = routeRequest(head)
        let metrics = service.metrics
        switch service.admit(request) {
        case .reject(let response, let route):
            metrics.request(route: route, code: response.status)
            return .reject(Self.convert(response, isHead: head.method == "HEAD"))
        case .accept(let route, let limit):
            return .accept(maxBodyBytes: limit) { bytesRead, limit in
                metrics.request(route: route.rawValue, code: 413)
                if route == .state { metrics.stateTransfer(op: "post", result: "too_large") }
                return Self.convert(ProbeService.tooLarge(bytesRead, limit), isHead: false)
            }
        }
    }

    func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        let routeRequest = routeRequest(request.head)
        guard let route = Route(rawValue: routeRequest.path) else {
            responder(Self.convert(.error(404, "not_found", "no route for this path"), isHead: false))
            return
        }
        let metrics = service.metrics
        let isHead = request.method == "HEAD"
        service.handle(route, routeRequest, body: request.body) { response in
            metrics.request(route: route.rawValue, code: response.status)
            responder(Self.convert(response, isHead: isHead))
        }
    }

    private func routeRequest(_ head: HTTPRequestHead) -> RouteRequest {
        RouteRequest(
            method: head.method, path: String(head.path), query: head.query == nil ? [] : head.queryItems,
            authorization: head.headers["Authorization"], contentType: head.headers["Content-Type"],
            contentLength: head.contentLength, viaControlSocket: viaControlSocket)
    }

    static func convert(_ response: RouteResponse, isHead: Bool) -> HTTPResponse {
        var headers: HTTPHeaders = ["Content-Type": response.contentType]
        for (name, value) in response.headers { headers.add(name, value) }
        return HTTPResponse(status: response.status, headers: headers, body: response.body)
    }
}

/// Where the control socket lives (spec §4.7): a path, or a Linux abstract name when the absolute path does
/// not fit `sun_path` (107 bytes).
enum ControlSocketAddress: Equatable, CustomStringConvertible {
    case path(String)
    case abstract(name: String, path: String)

    var description: String {
        switch self {
        case .path(let path): path
        case .abstract(let name, let path): "@\(name) (for \(path))"
        }
    }

    static func resolve(settings: RuntimeSettings) -> ControlSocketAddress {
        resolve(configured: settings.config.controlSocket, processorDirectory: settings.processorDirectory)
    }

    static func resolve(configured: String?, processorDirectory: String) -> ControlSocketAddress {
        let path = absolute(configured ?? processorDirectory + "/control.sock")
        if path.utf8.count <= 107 { return .path(path) }
        let digest = SHA256.hex(SHA256.hash(Array(path.utf8)))
        return .abstract(name: "dory-" + digest.prefix(32), path: path)
    }

    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let cwd = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var relative = Substring(path)
        while relative.hasPrefix("./") { relative = relative.dropFirst(2) }
        return (cwd == "/" ? "" : cwd) + "/" + relative
    }
}

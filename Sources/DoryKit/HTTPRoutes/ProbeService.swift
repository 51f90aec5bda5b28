import DoryState
import Synchronization

/// doryd's HTTP routes (spec §4): probes from atomics, `/prestop`, `/metrics`, `/state`, `/`.
final class ProbeService: Sendable {
    enum Admission: Sendable {
        /// Answer this at once, without reading the body.
        case reject(RouteResponse, route: String)
        /// Read up to `bodyLimit` bytes, then call `handle`.
        case accept(Route, bodyLimit: Int)
    }

    let supervisor: Supervisor
    let status: RuntimeStatus
    let metrics: Metrics
    let settings: RuntimeSettings
    private let stateToken: TokenCheck?
    private let controlToken: TokenCheck?

    init(supervisor: Supervisor, status: RuntimeStatus, metrics: Metrics, settings: RuntimeSettings) {
        self.supervisor = supervisor
        self.status = status
        self.metrics = metrics
        self.settings = settings
        stateToken = settings.config.stateToken.map(TokenCheck.init(token:))
        controlToken = settings.config.controlToken.map(TokenCheck.init(token:))
    }

    /// Checks in the order of §4.1: path, method, token, phase, size. Content checks follow in `handle`.
    func admit(_ request: RouteRequest) -> Admission {
        guard let route = Route(rawValue: request.path), !request.viaControlSocket || route.onControlSocket else {
            return .reject(.error(404, "not_found", "no route for this path", extra: ["path": .string(request.path)]), route: "other")
        }
        guard route.methods.contains(request.method) else {
            return .reject(
                .error(405, "method_not_allowed", "\(request.method) is not allowed on \(route.rawValue)",
                       extra: ["allow": .array(route.methods.map { .string($0) })],
                       headers: [("Allow", route.methods.joined(separator: ", "))]),
                route: route.rawValue)
        }
        switch route {
        case .state:
            guard let stateToken else {
                metrics.stateTransfer(op: request.method == "POST" ? "post" : "get", result: "disabled")
                return .reject(.error(403, "state_transfer_disabled", "set DORY_STATE_TOKEN to enable /state"), route: route.rawValue)
            }
            if let code = stateToken.verify(request.authorization) {
                metrics.stateTransfer(op: request.method == "POST" ? "post" : "get", result: "unauthorized")
                return .reject(.error(401, code, Self.authMessage(code)), route: route.rawValue)
            }
            let phase = status.phase
            if request.method == "POST" {
                if phase == .draining || phase == .stopping || status.shutdownRequested {
                    metrics.stateTransfer(op: "post", result: "shutting_down")
                    return .reject(.error(409, "shutting_down", "the pod is shutting down; transfer the state elsewhere"), route: route.rawValue)
                }
                let limit = settings.config.stateMaxBytes
                if let length = request.contentLength, length > limit {
                    metrics.stateTransfer(op: "post", result: "too_large")
                    return .reject(Self.tooLarge(length, limit), route: route.rawValue)
                }
            } else if !(supervisor.workload.hasStateForTransfer() ?? status.stateBound) {
                metrics.stateTransfer(op: "get", result: "not_restored")
                return .reject(.error(503, "not_restored", "the state is not restored yet", extra: ["phase": .string(phase.description)],
                                      headers: [("Retry-After", "1")]), route: route.rawValue)
            }
        case .prestop:
            if !request.viaControlSocket, let controlToken, let code = controlToken.verify(request.authorization) {
                return .reject(.error(401, code, Self.authMessage(code)), route: route.rawValue)
            }
        default:
            break
        }
        return .accept(route, bodyLimit: route.bodyLimit(settings.config))
    }

    /// Answers an admitted request. Probes answer synchronously; `/prestop` and `/state` later.
    func handle(_ route: Route, _ request: RouteRequest, body: [UInt8], respond: @escaping @Sendable (RouteResponse) -> Void) {
        switch route {
        case .healthz, .livez, .health:
            respond(liveness(request))
        case .ready, .readyz:
            respond(readiness(request))
        case .metrics:
            respond(RouteResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                  body: Array((metrics.render(liveMetrics()) + supervisor.workload.metricsText()).utf8)))
        case .root:
            respond(root())
        case .prestop:
            let supervisor = self.supervisor
            Task {
                let result = await supervisor.prestop()
                respond(Self.prestopResponse(result))
            }
        case .state:
            if request.method == "POST" {
                postState(request, body: body, respond: respond)
            } else {
                getState(head: request.method == "HEAD", respond: respond)
            }
        }
    }

    // MARK: Probes

    /// Bodies of the common probe answers, one per phase, built once: a probe with no query and no custom checks
    /// answers without encoding anything.
    private static let livenessOK: [[UInt8]] = Phase.allCases.map {
        Array("{\"status\":\"ok\",\"phase\":\"\($0)\",\"failed_checks\":[]}".utf8)
    }
    private static let readyBody = Array("{\"status\":\"ready\",\"ready\":true,\"phase\":\"running\",\"reason\":\"ready\"}".utf8)

    func liveness(_ request: RouteRequest) -> RouteResponse {
        status.noteHealthAnswer(wallMillis: WallClock.nowMillis())
        let workloadLines = status.workloadLines(.liveness)
        if request.query.isEmpty, status.supervisorAlive, status.checks.isEmpty, workloadLines.allSatisfy(\.passed) {
            return RouteResponse(status: 200, contentType: RouteResponse.jsonType, body: Self.livenessOK[Int(status.phase.rawValue)])
        }
        let excluded = Set(request.values("exclude"))
        var lines = [
            CheckLine(name: "ping", passed: true, detail: nil),
            CheckLine(name: "supervisor", passed: status.supervisorAlive, detail: status.supervisorAlive ? nil : "no heartbeat for over 10s"),
        ]
        let decision = supervisor.decisionSnapshot
        lines.append(CheckLine(name: "recovery", passed: true, detail: supervisor.recoveryLine(decision)))
        lines += workloadLines
        for check in status.checks.results(.liveness) {
            var line = CheckLine(name: "custom:\(check.name)", passed: check.passed, detail: check.detail)
            line.recovering = check.recovering
            lines.append(line)
        }
        lines.removeAll { excluded.contains($0.name) }
        let failing = lines.filter { !$0.passed && !$0.recovering }
        let code = failing.isEmpty ? 200 : 503
        if request.has("verbose") {
            return .text(code, Self.verboseText(lines, prefix: "healthz", passed: failing.isEmpty))
        }
        return .json(code, [
            "status": .string(failing.isEmpty ? "ok" : "failing"),
            "phase": .string(status.phase.description),
            "failed_checks": .array(failing.map { .string($0.name) }),
        ])
    }

    func readiness(_ request: RouteRequest) -> RouteResponse {
        status.noteHealthAnswer(wallMillis: WallClock.nowMillis())
        if request.query.isEmpty, status.checks.isEmpty, status.phase == .running, status.isReadyFlag,
           !status.prestopArrived, !status.shutdownRequested, status.workloadLines(.readiness).allSatisfy(\.passed) {
            return RouteResponse(status: 200, contentType: RouteResponse.jsonType, body: Self.readyBody)
        }
        let excluded = Set(request.values("exclude"))
        var verdict = status.readiness()
        verdict.lines.removeAll { excluded.contains($0.name) }
        let firstFailing = verdict.lines.first { !$0.passed }
        let ready = firstFailing == nil
        let phase = status.phase
        let code = ready ? 200 : 503
        if request.has("verbose") {
            return .text(code, Self.verboseText(verdict.lines, prefix: "readyz", passed: ready))
        }
        let reason = firstFailing.map { $0.name == "phase" ? phase.description : $0.name } ?? "ready"
        return .json(code, [
            "status": .string(ready ? "ready" : "not_ready"), "ready": .bool(ready),
            "phase": .string(phase.description), "reason": .string(reason),
        ])
    }

    static func verboseText(_ lines: [CheckLine], prefix: String, passed: Bool) -> String {
        var text = ""
        for line in lines {
            if line.passed {
                text += "[+]\(line.name) ok" + (line.detail.map { ": \($0)" } ?? "") + "\n"
            } else {
                text += "[-]\(line.name) failed: \(line.detail ?? "failed")" + (line.recovering ? " (recovering)" : "") + "\n"
            }
        }
        return text + "\(prefix) check \(passed ? "passed" : "failed")\n"
    }

    func root() -> RouteResponse {
        .json(200, [
            "service": "doryd", "version": .string(settings.version), "processor_id": .string(settings.processorId),
            "pod": .string(settings.identity.podName), "phase": .string(status.phase.description),
            "endpoints": .array(Route.allCases.map { .string($0.rawValue) }),
        ])
    }

    func liveMetrics() -> Metrics.Snapshot {
        let d = supervisor.decisionSnapshot
        return Metrics.Snapshot(
            version: settings.version, processorId: settings.processorId, pod: settings.identity.podName,
            namespace: settings.identity.namespace, phase: status.phase, ready: status.readiness().ready,
            restartCount: d.restartCount, crashesInWindow: status.healthyMarked ? 0 : d.crashesInWindow,
            strategy: d.strategy.rawValue, reason: d.reason, backoffSec: d.backoffSec)
    }

    // MARK: /prestop

    static func prestopResponse(_ result: PrestopResult) -> RouteResponse {
        switch result.outcome {
        case .saved(let generation, let reused, _, _, _):
            return .json(200, prestopBody(.int(Int64(generation)), reused: reused, result))
        case .skipped(let generation):
            return .json(200, prestopBody(generation.map { .int(Int64($0)) } ?? .null, reused: true, result))
        case .failed(let step, let message):
            return .error(500, "save_failed", message, extra: ["status": "failed", "step": .string(step)])
        case .timedOut:
            return .error(500, "save_timeout", "the save did not complete within final_save_timeout_sec",
                          extra: ["status": "failed", "step": "timeout"])
        }
    }

    private static func prestopBody(_ generation: JSONValue, reused: Bool, _ result: PrestopResult) -> JSONObject {
        ["status": "saved", "generation": generation, "durable": true, "reused": .bool(reused),
         "drain_sec": .double(result.drainSec), "duration_ms": .int(Int64(result.durationMs))]
    }

    // MARK: /state

    static func authMessage(_ code: String) -> String {
        switch code {
        case "missing_authorization": "an Authorization: Bearer <token> header is required"
        case "invalid_authorization_format": "the Authorization header must use the Bearer scheme"
        default: "the token is not valid"
        }
    }

    static func tooLarge(_ size: Int, _ limit: Int) -> RouteResponse {
        .error(413, "state_too_large", "the state is larger than state_max_bytes",
               extra: ["size_bytes": .int(Int64(size)), "max_bytes": .int(Int64(limit))])
    }

    private func getState(head: Bool, respond: @escaping @Sendable (RouteResponse) -> Void) {
        if head {
            metrics.stateTransfer(op: "get", result: "ok")
            respond(RouteResponse(status: 200, contentType: RouteResponse.jsonType, body: []))
            return
        }
        let metrics = self.metrics
        // Concurrent GETs share one capture and one body (`captured_at` is when that capture ended).
        let task = inflightGet.withLock { current -> Task<RouteResponse, Never> in
            if let current { return current }
            let task = Task { [self] in
                let response = await stateResponse(await supervisor.captureForTransfer())
                inflightGet.withLock { $0 = nil }
                return response
            }
            current = task
            return task
        }
        Task {
            let response = await task.value
            metrics.stateTransfer(op: "get", result: response.status == 200 ? "ok" : "error")
            respond(response)
        }
    }
    private let inflightGet = Mutex<Task<RouteResponse, Never>?>(nil)

    private func stateResponse(_ captured: Bounded<JSONObject>) async -> RouteResponse {
        let timeout = settings.config.stateCaptureTimeoutSec
        switch captured {
        case .timedOut:
            return .error(504, "capture_timeout", "getState did not finish in time", extra: ["timeout_sec": .double(timeout)])
        case .failure(let error as JSONEncodeError):
            return .error(500, "state_not_encodable", "the state holds a value JSON cannot express: \(error.message)")
        case .failure(let error):
            return .error(500, "capture_failed", "\(error)")
        case .value(let data):
            let d = supervisor.decisionSnapshot
            let generation = await supervisor.coordinator?.newestGeneration
            var object: JSONObject = [
                "pod_name": .string(settings.identity.podName), "app_name": .string(supervisor.appName),
                "captured_at": .string(WallClock.rfc3339(millis: WallClock.nowMillis())), "state_version": "1.0",
                "data": .object(data),
                "metrics": .object([
                    "restart_count": .int(Int64(d.restartCount)), "crashes_in_window": .int(Int64(d.crashesInWindow)),
                    "last_generation": generation.map { .int(Int64($0)) } ?? .null,
                ]),
                "connections": .array([]), "active_sessions": .int(0), "session_data": .object([:]),
                "uptime_seconds": .double((status.uptimeSinceReadySec * 1000).rounded() / 1000),
                "request_count": .int(Int64(metrics.requestCount)),
            ]
            object["last_health_time"] = status.lastHealthAnswerMillis.map { .string(WallClock.rfc3339(millis: $0)) } ?? .null
            let body: [UInt8]
            do {
                body = try JSON.encode(.object(object))
            } catch {
                return .error(500, "state_not_encodable", "the state holds a value JSON cannot express: \(error.message)")
            }
            let limit = settings.config.stateMaxBytes
            if body.count > limit { return Self.tooLarge(body.count, limit) }
            if body.count * 4 >= limit * 3 {
                supervisor.warnLargeState(size: body.count, limit: limit)
            }
            return RouteResponse(status: 200, contentType: RouteResponse.jsonType, body: body)
        }
    }

    private func postState(_ request: RouteRequest, body: [UInt8], respond: @escaping @Sendable (RouteResponse) -> Void) {
        func reply(_ response: RouteResponse, _ result: String) {
            metrics.stateTransfer(op: "post", result: result)
            respond(response)
        }
        if let type = request.contentType {
            let media = type.split(separator: ";", maxSplits: 1).first.map { $0.trimmingSpaces().lowercased() } ?? ""
            guard media == "application/json" else {
                return reply(.error(415, "unsupported_media_type", "Content-Type must be application/json"), "unsupported_media_type")
            }
        }
        let parsed: JSONValue
        do {
            parsed = try JSON.parse(body)
        } catch {
            return reply(.error(400, "invalid_json", body.isEmpty ? "the body is empty" : "the body is not JSON: \(error.message)"), "invalid_json")
        }
        guard case .object(let object) = parsed else {
            return reply(.error(400, "not_an_object", "the body must be a JSON object"), "not_an_object")
        }
        guard case .object(let data)? = object["data"] else {
            return reply(.error(400, "missing_data", "the body must have a \"data\" member that is an object"), "missing_data")
        }
        if body.count * 4 >= settings.config.stateMaxBytes * 3 {
            supervisor.warnLargeState(size: body.count, limit: settings.config.stateMaxBytes)
        }
        let supervisor = self.supervisor
        Task {
            let result = await supervisor.receiveTransfer(data)
            switch result {
            case .staged(let generation, let size):
                reply(.json(200, ["status": "staged", "generation": .int(Int64(generation)), "size_bytes": .int(Int64(size))]), "staged")
            case .applied(let generation, let size, let durationMs, let ignored):
                reply(.json(200, [
                    "status": "applied", "generation": .int(Int64(generation)), "size_bytes": .int(Int64(size)),
                    "duration_ms": .int(Int64(durationMs)), "ignored_keys": .array(ignored.map { .string($0) }),
                ]), "applied")
            case .invalid(let fields):
                reply(.error(400, "invalid_state", "the state does not match the declared types",
                             extra: ["fields": .object(fields.mapValues { .string($0) })]), "invalid_state")
            case .rejected(let message):
                reply(.error(422, "restore_rejected", message), "restore_rejected")
            case .timedOut:
                reply(.error(504, "capture_timeout", "restoreState did not finish in time",
                             extra: ["timeout_sec": .double(self.settings.config.stateCaptureTimeoutSec)]), "timeout")
            case .persistFailed(let message):
                reply(.error(500, "persist_failed", message, extra: ["applied": .bool(true)]), "persist_failed")
            case .shuttingDown:
                reply(.error(409, "shutting_down", "the pod is shutting down; transfer the state elsewhere"), "shutting_down")
            case .refused(let refusal):
                reply(.error(refusal.status, refusal.code, refusal.message), refusal.code)
            }
        }
    }
}

extension Substring {
    func trimmingSpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

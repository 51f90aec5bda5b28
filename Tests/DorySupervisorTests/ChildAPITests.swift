import DoryHTTP
import DoryKit
import DoryState
import Glibc
import Synchronization
import Testing

@testable import DorySupervisor

/// A host with settable phase and a persist that records its writes (optionally gated, to hold a write open).
final class FakeHost: ChildAPIHost, Sendable {
    let phaseValue = Mutex(Phase.running)
    let spawned = Mutex(true)
    let written = Mutex<[StateSlot.Contents]>([])
    let gate = Mutex<CheckedContinuation<Void, Never>?>(nil)
    let holdWrites = Mutex(false)
    let failNext = Mutex<PersistOutcome?>(nil)

    var phase: Phase { phaseValue.withLock { $0 } }
    var childSpawned: Bool { spawned.withLock { $0 } }
    func recoveryInfo() -> ChildRecoveryInfo {
        ChildRecoveryInfo(strategy: "fresh", reason: "first_start", attempt: 1, restartCount: 0, childRestarts: 0)
    }
    func contextValues() -> JSONObject {
        ["pod_name": "pod-0", "namespace": "default", "processor_id": "p1", "attempt": 1, "strategy": "fresh"]
    }
    func persist(_ contents: StateSlot.Contents) async -> PersistOutcome {
        if holdWrites.withLock({ $0 }) {
            await withCheckedContinuation { c in gate.withLock { $0 = c } }
        }
        if let failure = failNext.withLock({ s -> PersistOutcome? in defer { s = nil }; return s }) { return failure }
        return written.withLock { w in
            if let last = w.last, last.state == contents.state { return .durable(generation: UInt64(w.count), reused: true) }
            w.append(contents)
            return .durable(generation: UInt64(w.count), reused: false)
        }
    }
    func release() -> Bool {
        guard let c = gate.withLock({ s -> CheckedContinuation<Void, Never>? in defer { s = nil }; return s }) else { return false }
        c.resume()
        return true
    }
}

/// The child API served on a real Unix socket.
struct ServedAPI {
    let host = FakeHost()
    let slot = StateSlot()
    let liveness: ChildLiveness
    let api: ChildAPI
    let server: HTTPServer
    let dir: String
    var socket: String { dir + "/control.sock" }

    init(mode: ReadyMode = .started, heartbeatMillis: Int = 0, maxBytes: Int = 1024) throws {
        dir = makeTemporaryDirectory()
        liveness = ChildLiveness(mode: mode, heartbeatTimeoutMillis: heartbeatMillis)
        let host = self.host
        api = ChildAPI(host: host, slot: slot, liveness: liveness, stateMaxBytes: maxBytes, persist: { await host.persist($0) })
        server = try HTTPServer(handler: api)
        try server.listen(.unix(path: dir + "/control.sock"))
    }

    /// `curl --unix-socket` as the spec's shell examples do; returns (status, body).
    func curl(_ arguments: [String]) async -> (status: Int, body: String) {
        let result = await run(["curl", "-sS", "--unix-socket", socket, "-w", "\n%{http_code}"] + arguments)
        let lines = result.output.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? -1, lines.dropLast().joined(separator: "\n"))
    }

    func json(_ text: String) -> JSONObject? {
        if case .object(let o)? = try? JSON.parse(text) { return o }
        return nil
    }

    func close() {
        server.close()
        removeTree(dir)
    }
}

@Suite("The child API (§6) over a Unix socket with curl", .serialized)
struct ChildAPITests {
    @Test("GET /v1/state before any PUT; PUT durable then GET; the same PUT again is reused")
    func stateRoundTrip() async throws {
        let served = try ServedAPI()
        defer { served.close() }
        var r = await served.curl(["http://dory/v1/state"])
        #expect(r.status == 200)
        #expect(served.json(r.body) == [
            "state": nil, "generation": nil, "durable": false, "strategy": "fresh", "reason": "first_start",
            "attempt": 1, "restart_count": 0, "child_restarts": 0,
        ])
        r = await served.curl(["-X", "PUT", "--data-binary", #"{"n":1}"#, "http://dory/v1/state"])
        #expect(r.status == 200, "\(r.body)")
        #expect(served.json(r.body) == ["generation": 1, "durable": true, "reused": false, "size_bytes": 7])
        r = await served.curl(["http://dory/v1/state"])
        let body = try #require(served.json(r.body))
        #expect(body["state"] == ["n": 1] && body["generation"] == 1 && body["durable"] == true)
        r = await served.curl(["-X", "PUT", "--data-binary", #"{"n":1}"#, "http://dory/v1/state"])
        #expect(served.json(r.body)?["reused"] == true && served.json(r.body)?["generation"] == 1)
        #expect(served.host.written.withLock { $0.count } == 1)
        // curl -d sends a form content type: accepted, parsed as JSON.
        r = await served.curl(["-d", #"{"n":2}"#, "-X", "PUT", "http://dory/v1/state"])
        #expect(r.status == 200)
        #expect(served.slot.read().state == ["n": 2])
        #expect(served.api.counters.statePuts["sync/ok"] == 2 && served.api.counters.statePuts["sync/reused"] == 1)
    }

    @Test("?sync=0 answers 202 at once and leaves the state in memory only")
    func asyncPut() async throws {
        let served = try ServedAPI()
        defer { served.close() }
        let r = await served.curl(["-X", "PUT", "--data-binary", #"{"n":5}"#, "http://dory/v1/state?sync=0"])
        #expect(r.status == 202)
        #expect(served.json(r.body) == ["durable": false, "size_bytes": 7])
        let state = served.json(await served.curl(["http://dory/v1/state"]).body)
        #expect(state?["state"] == ["n": 5] && state?["durable"] == false && state?["generation"] == .null)
        #expect(served.host.written.withLock { $0.isEmpty })
        #expect(served.slot.isStateBound)
    }

    @Test("rejections: shape, JSON, query, size, method, path, phase; the slot unchanged")
    func rejections() async throws {
        let served = try ServedAPI(maxBytes: 1024)
        defer { served.close() }
        let put = ["-X", "PUT", "--data-binary"]
        for body in ["[1]", #""x""#, "7", "null"] {
            let r = await served.curl(put + [body, "http://dory/v1/state"])
            #expect(r.status == 400 && served.json(r.body)?["error"] == "not_an_object", "\(body)")
        }
        for body in ["{", ""] {
            let r = await served.curl(put + [body, "http://dory/v1/state"])
            #expect(r.status == 400 && served.json(r.body)?["error"] == "invalid_json", "\(body): \(r.body)")
        }
        var r = await served.curl(put + ["{}", "http://dory/v1/state?sync=maybe"])
        #expect(r.status == 400 && served.json(r.body)?["error"] == "invalid_query")
        let exact = "{\"a\":\"" + String(repeating: "x", count: 1024 - 8) + "\"}"
        #expect(exact.utf8.count == 1024)
        r = await served.curl(put + [exact, "http://dory/v1/state?sync=0"])
        #expect(r.status == 202)
        let over = "{\"a\":\"" + String(repeating: "x", count: 1024 - 7) + "\"}"
        r = await served.curl(put + [over, "http://dory/v1/state"])
        #expect(r.status == 413)
        #expect(served.json(r.body)?["error"] == "state_too_large" && served.json(r.body)?["size_bytes"] == 1025 && served.json(r.body)?["max_bytes"] == 1024)
        r = await served.curl(put + [over, "-H", "Transfer-Encoding: chunked", "http://dory/v1/state"])
        #expect(r.status == 413, "chunked: \(r.body)")
        r = await served.curl(["-X", "DELETE", "-i", "http://dory/v1/state"])
        #expect(r.status == 405 && r.body.contains("Allow: GET, HEAD, PUT"))
        #expect(await served.curl(["http://dory/v2/x"]).status == 404)
        #expect(served.slot.read().state?["a"] == .string(String(repeating: "x", count: 1016)))

        served.slot.beginFinalSave()
        r = await served.curl(put + ["{}", "http://dory/v1/state"])
        #expect(r.status == 409 && served.json(r.body)?["error"] == "final_save_started")
        served.host.spawned.withLock { $0 = false }
        r = await served.curl(put + ["{}", "http://dory/v1/state"])
        #expect(r.status == 409 && served.json(r.body)?["error"] == "no_child")
    }

    @Test("a 100 KiB PUT through curl (Expect: 100-continue) with a large limit")
    func largePut() async throws {
        let served = try ServedAPI(maxBytes: 4 << 20)
        defer { served.close() }
        let file = served.dir + "/big.json"
        writeFile(file, Array(("{\"a\":\"" + String(repeating: "y", count: 100_000) + "\"}").utf8), mode: 0o600)
        // curl waits 1 s for `100 Continue` before sending the body anyway: compare with the same PUT without `Expect`.
        var start = ContinuousClock.now
        #expect(await served.curl(["-H", "Expect:", "-X", "PUT", "--data-binary", "@" + file, "http://dory/v1/state"]).status == 200)
        let baseline = ContinuousClock.now - start
        start = ContinuousClock.now
        let r = await served.curl(["-X", "PUT", "--data-binary", "@" + file, "http://dory/v1/state"])
        #expect(r.status == 200)
        #expect(ContinuousClock.now - start - baseline < .milliseconds(800))
    }

    @Test("concurrent durable PUTs coalesce: at most two writes, each answer holds its PUT or a newer one")
    func coalescing() async throws {
        let served = try ServedAPI()
        defer { served.close() }
        served.host.holdWrites.withLock { $0 = true }
        let api = served.api
        let first = Task { await api.respond(to: Self.put(#"{"i":0}"#)) }
        #expect(await eventually { served.host.gate.withLock { $0 != nil } })  // write 1 runs, held open
        let rest = (1...20).map { i in Task { await api.respond(to: Self.put("{\"i\":\(i)}")) } }
        #expect(await eventually { served.slot.read().sequence == 21 })
        served.host.holdWrites.withLock { $0 = false }
        #expect(served.host.release())
        let firstAnswer = await first.value
        #expect(firstAnswer.status == 200)
        for task in rest { #expect(await task.value.status == 200) }
        #expect(await api.durableWrites == 2)
        #expect(served.host.written.withLock { $0.count } == 2)
        #expect(served.host.written.withLock { $0.last?.sequence } == 21)
        #expect(served.slot.read().generation == 2)
    }

    @Test("a failed save answers 500 save_failed with the step; a timeout 504; the state stays in the slot")
    func saveFailures() async throws {
        let served = try ServedAPI()
        defer { served.close() }
        served.host.failNext.withLock { $0 = .failed(step: "fsync", message: "Input/output error") }
        var r = await served.api.respond(to: Self.put(#"{"n":9}"#))
        #expect(r.status == 500)
        let body = try #require(served.json(String(decoding: r.body, as: UTF8.self)))
        #expect(body["error"] == "save_failed" && body["step"] == "fsync" && body["message"] == "fsync: Input/output error")
        served.host.failNext.withLock { $0 = .timedOut }
        r = await served.api.respond(to: Self.put(#"{"n":10}"#))
        #expect(r.status == 504)
        #expect(served.slot.read().state == ["n": 10] && served.slot.read().generation == nil)
    }

    @Test("ready, heartbeat and context")
    func readyHeartbeatContext() async throws {
        let served = try ServedAPI(mode: .api, heartbeatMillis: 1000)
        defer { served.close() }
        served.liveness.childStarted(pid: 4242)
        #expect(!served.liveness.readinessCheck(startupTimeoutSeconds: 30).passed)
        #expect(served.liveness.readinessCheck(startupTimeoutSeconds: 30).detail.hasPrefix("waiting for POST /v1/ready"))
        var r = await served.curl(["-X", "POST", "http://dory/v1/ready"])
        #expect(r.status == 200 && served.json(r.body) == ["ready": true])
        #expect(served.liveness.isChildReady && served.liveness.readinessCheck(startupTimeoutSeconds: 30).passed)
        r = await served.curl(["-X", "POST", "http://dory/v1/heartbeat"])
        #expect(r.status == 200)
        let hb = try #require(served.json(r.body))
        #expect(hb["heartbeat_timeout_sec"] == 1.0)
        if case .int(let ms)? = hb["deadline_in_ms"] { #expect(ms > 500 && ms <= 1000) } else { Issue.record("\(hb)") }
        r = await served.curl(["http://dory/v1/context"])
        let context = try #require(served.json(r.body))
        #expect(context["child_pid"] == 4242 && context["phase"] == "running" && context["ready"] == true)
        #expect(context["ready_mode"] == "api" && context["pod_name"] == "pod-0")
        #expect(await served.curl(["-I", "http://dory/v1/context"]).status == 200)
        served.host.phaseValue.withLock { $0 = .draining }
        r = await served.curl(["-X", "POST", "http://dory/v1/ready"])
        #expect(r.status == 409 && served.json(r.body)?["error"] == "shutting_down")
    }

    @Test("POST /v1/ready outside --ready=api is not applied")
    func readyNotApplied() async throws {
        let served = try ServedAPI(mode: .notify)
        defer { served.close() }
        served.liveness.childStarted(pid: 7)
        let r = await served.curl(["-X", "POST", "http://dory/v1/ready"])
        #expect(r.status == 200 && served.json(r.body) == ["ready": false, "applied": false])
        #expect(!served.liveness.isChildReady)
    }

    static func put(_ body: String, query: String = "") -> HTTPRequest {
        let bytes = Array(body.utf8)
        return HTTPRequest(head: HTTPRequestHead(method: "PUT", target: "/v1/state" + query, contentLength: bytes.count), body: bytes)
    }
}

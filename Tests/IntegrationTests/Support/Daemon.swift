import DoryHTTP
import DoryState
import Glibc

/// A running `doryd` (or fixture) under test: its process, log, port, state paths and HTTP helpers.
final class Daemon {
    let process: ChildProcess
    let stateDir: String
    let processorId: String
    unowned let sandbox: Sandbox
    private(set) var port = -1

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    init(process: ChildProcess, stateDir: String, processorId: String, sandbox: Sandbox) {
        self.process = process
        self.stateDir = stateDir
        self.processorId = processorId
        self.sandbox = sandbox
    }

    var pid: pid_t { process.pid }
    var processorDir: String { stateDir + "/" + processorId }
    var snapshotsDir: String { processorDir + "/snapshots" }
    var journalPath: String { processorDir + "/boots.jsonl" }
    var controlSocketPath: String { processorDir + "/control.sock" }

    // MARK: Log

    /// Every stderr line so far.
    var lines: [String] { process.stderr.lines }
    /// Every stderr line parsed (nil for a line that is not a JSON object).
    var logs: [JSONObject?] { lines.map { JSON.object($0) } }
    /// The parsed lines that are JSON objects.
    var records: [JSONObject] { logs.compactMap { $0 } }

    /// The last lines of the log, for failure messages.
    var logTail: String { lines.suffix(25).joined(separator: "\n") }

    /// Records whose `event` equals `event`.
    func events(_ event: String) -> [JSONObject] { records.filter { $0["event"]?.string == event } }

    /// Fixture hook names in log order.
    var hooks: [String] { records.compactMap { $0["fixture_hook"]?.string } }

    /// Waits for a log record matching `predicate`; returns it, or nil at the deadline.
    func waitForLog(timeout: Duration = .seconds(10), _ predicate: (JSONObject) -> Bool) -> JSONObject? {
        Poll.value(timeout: timeout, interval: .milliseconds(10)) { records.first(where: predicate) }
    }

    func waitForEvent(_ event: String, timeout: Duration = .seconds(10), _ extra: (JSONObject) -> Bool = { _ in true }) -> JSONObject? {
        waitForLog(timeout: timeout) { $0["event"]?.string == event && extra($0) }
    }

    /// For a daemon whose log threshold hides the `http.listening` line: use a port chosen beforehand and wait until it
    /// answers.
    func useKnownPort(_ known: Int, timeout: Duration = .seconds(15)) throws {
        port = known
        guard waitForStatus("/healthz", 200, timeout: timeout) else {
            throw Failure(description: "port \(known) never answered /healthz; log:\n\(logTail)")
        }
    }

    /// Waits for the `http.listening` line and records the port it names.
    func waitForPort(timeout: Duration = .seconds(15)) throws {
        let line = Poll.value(timeout: timeout, interval: .milliseconds(10)) { () -> JSONObject? in
            if let found = events("http.listening").first { return found }
            if !process.isRunning && process.stderr.isClosed {
                // One more look after the pipe closed, in case the line came with the exit.
                return events("http.listening").first ?? ["exited": .bool(true)]
            }
            return nil
        }
        guard let line, let port = line["port"]?.int else {
            throw Failure(description: "no http.listening line (\(process.exitStatus()?.description ?? "still running")); log:\n\(logTail)")
        }
        self.port = Int(port)
    }

    // MARK: HTTP

    /// One request to the TCP listener (127.0.0.1 unless `host` is given).
    func request(_ method: String = "GET", _ path: String, headers: HTTPHeaders = [:], body: [UInt8] = [],
                 host: String = "127.0.0.1", timeout: Duration = .seconds(10)) throws -> HTTPClient.Response {
        try HTTPClient.request(method: method, path: path, headers: headers, body: body,
                               to: .tcp(host: host, port: port), timeout: timeout)
    }

    func get(_ path: String, headers: HTTPHeaders = [:], timeout: Duration = .seconds(10)) throws -> HTTPClient.Response {
        try request("GET", path, headers: headers, timeout: timeout)
    }

    /// The status of GET `path`, or nil when the request failed.
    func status(_ path: String) -> Int? { try? get(path, timeout: .seconds(2)).status }

    /// Polls GET `path` until it answers `status`.
    @discardableResult
    func waitForStatus(_ path: String, _ status: Int, timeout: Duration = .seconds(15)) -> Bool {
        Poll.until(timeout: timeout, interval: .milliseconds(20)) { self.status(path) == status }
    }

    /// Waits for `/ready` 200.
    func waitReady(timeout: Duration = .seconds(15)) throws {
        guard waitForStatus("/ready", 200, timeout: timeout) else {
            throw Failure(description: "/ready never answered 200 (\(process.exitStatus()?.description ?? "running")); log:\n\(logTail)")
        }
    }

    static let bearer: HTTPHeaders = ["Authorization": "Bearer \(Sandbox.stateToken)"]

    func getState(timeout: Duration = .seconds(10)) throws -> HTTPClient.Response {
        try request("GET", "/state", headers: Self.bearer, timeout: timeout)
    }

    func postState(_ body: String, headers: HTTPHeaders = [:], timeout: Duration = .seconds(10)) throws -> HTTPClient.Response {
        var all = Self.bearer
        for field in headers { all.add(field.name, field.value) }
        if !headers.contains("Content-Type") { all.add("Content-Type", "application/json") }
        return try request("POST", "/state", headers: all, body: Array(body.utf8), timeout: timeout)
    }

    /// The `data` member of a GET /state.
    func currentState() throws -> JSONObject {
        let response = try getState()
        guard response.status == 200, let data = JSON.object(response.body)?["data"]?.object else {
            throw Failure(description: "GET /state: \(response.status) \(response.text)")
        }
        return data
    }

    func metrics() throws -> MetricsText {
        let response = try get("/metrics")
        guard response.status == 200 else { throw Failure(description: "GET /metrics: \(response.status)") }
        return try MetricsText.parse(response.text)
    }

    // MARK: Signals and exit

    func signal(_ signal: Int32) { process.send(signal) }

    /// Waits for exit; throws when it does not come in time.
    func waitForExit(timeout: Duration = .seconds(15)) throws -> ExitStatus {
        guard let status = process.waitForExit(timeout: timeout) else {
            throw Failure(description: "still running after \(timeout); log:\n\(logTail)")
        }
        // Let the reader thread drain what the process wrote last.
        _ = Poll.until(timeout: .seconds(5), interval: .milliseconds(5)) { process.stderr.isClosed }
        return status
    }

    /// SIGTERM and wait.
    func stop(timeout: Duration = .seconds(15)) throws -> ExitStatus {
        signal(SIGTERM)
        return try waitForExit(timeout: timeout)
    }

    // MARK: Files

    func generations() -> [UInt64] { Snapshots.generations(in: snapshotsDir) }

    func snapshot(_ generation: UInt64) throws -> Snapshot {
        try Snapshots.decode(path: Snapshots.path(in: snapshotsDir, generation: generation), sandbox: sandbox)
    }

    func newestSnapshot() throws -> Snapshot {
        guard let newest = generations().last else { throw Failure(description: "no snapshot in \(snapshotsDir)") }
        return try snapshot(newest)
    }

    /// This boot's id (from the first log line).
    var bootId: String? { records.first?["boot_id"]?.string }

    /// The final save is on disk: the newest generation decodes and is a `shutdown` save or, by the reuse rule of §6.6,
    /// one this boot wrote.
    func finalSaveIsOnDisk() throws -> Bool {
        let newest = try newestSnapshot()
        return newest.reason == "shutdown" || (newest.envelope["boot_id"]?.string == bootId && bootId != nil)
    }

    /// Journal lines parsed.
    func journal() -> [JSONObject] {
        Files.read(journalPath).map { String(decoding: $0, as: UTF8.self).split(separator: "\n").compactMap { JSON.object(String($0)) } } ?? []
    }

    /// The first log line's `version`.
    var version: String? { records.first?["version"]?.string }
}

import DoryHTTP
import DoryState
import Glibc
import Testing

/// `doryd run [options] -- CMD…` launches for the run-mode tests (spec/supervise.md §12), on top of `Sandbox`.
struct RunLaunch {
    /// Options between `run` and `--` (run options and setting flags).
    var options: [String] = []
    var command: [String]
    /// Added to (and overriding) the base environment.
    var environment: [String: String] = [:]
    var waitForListening = true

    init(_ command: [String], options: [String] = [], environment: [String: String] = [:]) {
        self.command = command
        self.options = options
        self.environment = environment
    }

    /// `sh -c SCRIPT`.
    static func sh(_ script: String, options: [String] = [], environment: [String: String] = [:]) -> RunLaunch {
        RunLaunch(["/bin/sh", "-c", script], options: options, environment: environment)
    }
}

extension Sandbox {
    /// Starts `doryd run --port 0 --state-dir <sandbox>/state [options] -- CMD…` with a fixed pod UID and, by default,
    /// waits for the `http.listening` line.
    func launchRun(_ launch: RunLaunch) throws -> Daemon {
        var environment = baseEnvironment()
        environment["DORY_POD_UID"] = "itest-uid"
        environment["DORY_STATE_TOKEN"] = nil
        for (name, value) in launch.environment { environment[name] = value }
        let stateDir = path("state")
        let arguments = ["run", "--port", "0", "--state-dir", stateDir] + launch.options + ["--"] + launch.command
        let child = try spawn(try Binaries.doryd(), arguments, environment: environment)
        let daemon = Daemon(process: child, stateDir: stateDir, processorId: "itest-pod", sandbox: self)
        if launch.waitForListening { try daemon.waitForPort() }
        return daemon
    }
}

extension Daemon {
    /// The journal's last `end` record.
    var lastEndRecord: JSONObject? { journal().last { $0["type"]?.string == "end" } }

    /// The last `doryd exiting` line.
    var exitLine: JSONObject? { records.last { $0["msg"]?.string == "doryd exiting" } }

    /// One request to the control socket (the child API).
    func control(_ method: String, _ path: String, body: String = "") throws -> HTTPClient.Response {
        try HTTPClient.request(method: method, path: path, headers: [:], body: Array(body.utf8),
                               to: .unix(path: controlSocketPath), timeout: .seconds(10))
    }
}

/// The run-mode suites, one test at a time: each test blocks its thread while it polls real processes, and running
/// them all at once would starve the async tests sharing this process of threads.
@Suite(.serialized) enum RunModeTests {}

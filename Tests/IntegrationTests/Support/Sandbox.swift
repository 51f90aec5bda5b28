import DoryHTTP
import DoryState
import Glibc
import Synchronization
import Testing

/// One test's world: a temp directory, the processes it spawned, and their teardown (SIGKILL and reap every
/// child still alive, then remove the directory).
final class Sandbox: Sendable {
    let root: String
    private let children = Mutex<[ChildProcess]>([])

    /// The state token every launch sets unless told otherwise.
    static let stateToken = "s3cret-itest-state-token"

    init() throws {
        var template = Array("/tmp/dory-itest.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw ChildProcess.SpawnError(description: "mkdtemp: \(String(cString: strerror(errno)))")
        }
        root = String(cString: made)
    }

    func path(_ relative: String) -> String { root + "/" + relative }

    /// Creates `relative` (and parents) under the sandbox and returns its path.
    @discardableResult
    func makeDirectory(_ relative: String) -> String {
        var current = root
        for part in relative.split(separator: "/") {
            current += "/" + part
            mkdir(current, 0o700)
        }
        return current
    }

    /// Writes a file under the sandbox and returns its path.
    @discardableResult
    func write(_ relative: String, _ text: String) -> String {
        let full = path(relative)
        let fd = open(full, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        precondition(fd >= 0, "open \(full): \(String(cString: strerror(errno)))")
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { _ = Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        return full
    }

    /// Spawns any program; it is killed and reaped at teardown.
    func spawn(_ executable: String, _ arguments: [String], environment: [String: String], captureStdout: Bool = false,
               stdinFD: Int32? = nil) throws -> ChildProcess {
        let child = try ChildProcess(executable: executable, arguments: arguments, environment: environment,
                                     captureStdout: captureStdout, stdinFD: stdinFD)
        children.withLock { $0.append(child) }
        return child
    }

    /// The base environment: PATH, HOME and quick, test-friendly settings.
    func baseEnvironment() -> [String: String] {
        [
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": root,
            "DORY_POD_NAME": "itest-pod",
            "DORY_POD_NAMESPACE": "itest-ns",
            "DORY_SHUTDOWN_TIMEOUT_SEC": "2",
            "DORY_FINAL_SAVE_TIMEOUT_SEC": "1",
            "DORY_STATE_TOKEN": Self.stateToken,
        ]
    }

    /// Starts `doryd demo` or `doryd-fixture` with `--port 0 --state-dir <sandbox>/state` (unless changed) and, by
    /// default, waits for the `http.listening` line to learn the port.
    func launch(_ options: LaunchOptions = LaunchOptions()) throws -> Daemon {
        var environment = baseEnvironment()
        for name in options.unset { environment[name] = nil }
        for (name, value) in options.environment { environment[name] = value }
        let stateDir = options.stateDir ?? path("state")
        var arguments: [String] = []
        let executable: String
        switch options.binary {
        case .demo:
            executable = try Binaries.doryd()
            arguments = ["demo"]
        case .fixture:
            executable = try Binaries.fixture()
        }
        if let port = options.port { arguments += ["--port", port] }
        if options.passStateDir { arguments += ["--state-dir", stateDir] }
        arguments += options.arguments
        let child: ChildProcess
        if options.watchdogPIDIsSelf {
            // WATCHDOG_PID must be doryd's own pid: the shell's $$ survives the exec.
            let quoted = ([executable] + arguments).map { "'" + $0.replacing("'", with: "'\\''") + "'" }
            child = try spawn("/bin/sh", ["-c", "WATCHDOG_PID=$$; export WATCHDOG_PID; exec " + quoted.joined(separator: " ")],
                              environment: environment)
        } else {
            child = try spawn(executable, arguments, environment: environment, captureStdout: options.captureStdout)
        }
        let daemon = Daemon(process: child, stateDir: stateDir, processorId: options.processorId, sandbox: self)
        if let known = options.knownPort {
            try daemon.useKnownPort(known)
        } else if options.waitForListening {
            try daemon.waitForPort()
        }
        return daemon
    }

    /// Kills (SIGKILL) and reaps every child still alive, then removes the directory.
    func tearDown() {
        for child in children.withLock({ $0 }) { child.terminate() }
        children.withLock { $0.removeAll() }
        if let rm = try? ChildProcess(executable: "/bin/rm", arguments: ["-rf", root], environment: ["PATH": "/usr/bin:/bin"]) {
            _ = rm.waitForExit(timeout: .seconds(30))
        }
    }
}

/// Runs `body` with a fresh sandbox and always tears it down.
func withSandbox<T>(_ body: (Sandbox) throws -> T) throws -> T {
    let sandbox = try Sandbox()
    defer { sandbox.tearDown() }
    return try body(sandbox)
}

/// What `Sandbox.launch` starts.
struct LaunchOptions {
    enum Binary { case demo, fixture }
    var binary: Binary = .demo
    /// Added to (and overriding) the base environment.
    var environment: [String: String] = [:]
    /// Removed from the base environment.
    var unset: [String] = []
    /// Extra arguments after the settings flags (`--state-bytes N` for the demo goes here too).
    var arguments: [String] = []
    /// `--port` value; nil leaves the flag out.
    var port: String? = "0"
    var stateDir: String?
    var passStateDir = true
    /// The processor id the test expects (the default pod name `itest-pod` derives `itest-pod`).
    var processorId = "itest-pod"
    var waitForListening = true
    /// Pass `--port N` and find the daemon there instead of in the log (for log thresholds above info).
    var knownPort: Int? {
        didSet { port = knownPort.map(String.init) }
    }
    var captureStdout = false
    var watchdogPIDIsSelf = false

    static func demo(_ environment: [String: String] = [:], arguments: [String] = []) -> LaunchOptions {
        var options = LaunchOptions()
        options.environment = environment
        options.arguments = arguments
        return options
    }

    static func fixture(_ environment: [String: String] = [:]) -> LaunchOptions {
        var options = LaunchOptions()
        options.binary = .fixture
        options.environment = environment
        return options
    }
}


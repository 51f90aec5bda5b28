import CDorySys
import Glibc
import Synchronization

/// How a child ended: `code` for a normal exit, `signal` when a signal killed it.
struct ExitStatus: Equatable, CustomStringConvertible {
    var code: Int32?
    var signal: Int32?

    init(rawStatus: Int32) {
        if dory_wifexited(rawStatus) != 0 {
            code = dory_wexitstatus(rawStatus)
        } else if dory_wifsignaled(rawStatus) != 0 {
            signal = dory_wtermsig(rawStatus)
        }
    }

    var description: String {
        if let code { return "exit \(code)" }
        if let signal { return "killed by signal \(signal)" }
        return "unknown status"
    }
}

/// Bytes read from a pipe on a dedicated thread, split into lines; safe to read from any thread.
final class OutputCapture: Sendable {
    private struct State {
        var bytes: [UInt8] = []
        var lines: [String] = []
        var partial: [UInt8] = []
        var closed = false
    }
    private let state = Mutex(State())

    /// Every complete line so far (without the newline).
    var lines: [String] { state.withLock { $0.lines } }
    /// Every byte so far.
    var bytes: [UInt8] { state.withLock { $0.bytes } }
    /// True once the writer side closed (the child and every inheritor exited).
    var isClosed: Bool { state.withLock { $0.closed } }
    var text: String { String(decoding: bytes, as: UTF8.self) }

    fileprivate func append(_ chunk: ArraySlice<UInt8>) {
        state.withLock { s in
            s.bytes.append(contentsOf: chunk)
            for byte in chunk {
                if byte == 0x0A {
                    s.lines.append(String(decoding: s.partial, as: UTF8.self))
                    s.partial.removeAll(keepingCapacity: true)
                } else {
                    s.partial.append(byte)
                }
            }
        }
    }

    fileprivate func finish() {
        state.withLock { s in
            if !s.partial.isEmpty {
                s.lines.append(String(decoding: s.partial, as: UTF8.self))
                s.partial.removeAll()
            }
            s.closed = true
        }
    }

    /// Starts a thread that reads `fd` to EOF, then closes it.
    static func reading(_ fd: Int32) -> OutputCapture {
        let capture = OutputCapture()
        Threads.start {
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    capture.append(chunk[0..<count])
                } else if count < 0 && errno == EINTR {
                    continue
                } else {
                    break
                }
            }
            close(fd)
            capture.finish()
        }
        return capture
    }
}

/// Detached pthreads for blocking work (readers, concurrent requests), and joinable results.
enum Threads {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Runs `body` on a new detached pthread.
    static func start(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        precondition(result == 0, "pthread_create: \(result)")
        pthread_detach(thread)
    }
}

/// A value computed on its own thread; `wait` blocks until it is there.
final class Background<T: Sendable>: Sendable {
    private let value = Mutex<T?>(nil)

    init(_ body: @escaping @Sendable () -> T) {
        Threads.start { [self] in
            let result = body()
            self.value.withLock { $0 = result }
        }
    }

    var isDone: Bool { value.withLock { $0 != nil } }

    /// The result, or nil when `timeout` passed first.
    func wait(timeout: Duration = .seconds(30)) -> T? {
        var result: T?
        _ = Poll.until(timeout: timeout, interval: .milliseconds(5)) {
            result = value.withLock { $0 }
            return result != nil
        }
        return result
    }
}

/// A child started with `posix_spawn`: chosen argv and environment, stdin from /dev/null, stderr (and stdout if asked)
/// captured through pipes read on background threads. Reaped with `waitpid(WNOHANG)` in a poll loop.
final class ChildProcess: Sendable {
    let pid: pid_t
    let executable: String
    let stderr: OutputCapture
    /// Captured standard output, or nil when it went to /dev/null.
    let stdout: OutputCapture?
    private let reaped = Mutex<ExitStatus?>(nil)

    struct SpawnError: Error, CustomStringConvertible {
        let description: String
    }

    init(executable: String, arguments: [String], environment: [String: String], captureStdout: Bool = false,
         stdinFD: Int32? = nil) throws {
        self.executable = executable
        var errPipe: [Int32] = [-1, -1]
        var outPipe: [Int32] = [-1, -1]
        guard Self.pipe2(&errPipe, O_CLOEXEC) == 0 else {
            throw SpawnError(description: "pipe2: \(String(cString: strerror(errno)))")
        }
        if captureStdout {
            guard Self.pipe2(&outPipe, O_CLOEXEC) == 0 else {
                throw SpawnError(description: "pipe2: \(String(cString: strerror(errno)))")
            }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdinFD {
            posix_spawn_file_actions_adddup2(&actions, stdinFD, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        if captureStdout {
            posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        // Whatever the test process holds without O_CLOEXEC (the runner's own pipes and sockets) stays out of the
        // child, so case 81 sees doryd's descriptors only.
        _ = Self.addCloseFrom(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGUSR1, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child = pid_t()
        let result = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        close(errPipe[1])
        if captureStdout { close(outPipe[1]) }
        guard result == 0 else {
            close(errPipe[0])
            if captureStdout { close(outPipe[0]) }
            throw SpawnError(description: "posix_spawn \(executable): \(String(cString: strerror(result)))")
        }
        pid = child
        stderr = OutputCapture.reading(errPipe[0])
        stdout = captureStdout ? OutputCapture.reading(outPipe[0]) : nil
    }

    /// `pipe2(2)`, which Glibc's module map hides (it needs _GNU_SOURCE): both ends are close-on-exec from birth, so
    /// a child spawned by a parallel test never inherits them (which would hold our EOF back).
    private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32
    private static let pipe2Function: Pipe2 = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "pipe2") else { fatalError("pipe2 not found") }
        return unsafeBitCast(symbol, to: Pipe2.self)
    }()

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
    private static let addCloseFromFunction: AddCloseFrom? = {
        dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np").map { unsafeBitCast($0, to: AddCloseFrom.self) }
    }()

    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34+); without it inherited descriptors stay open.
    private static func addCloseFrom(_ actions: inout posix_spawn_file_actions_t, _ from: Int32) -> Int32 {
        guard let function = addCloseFromFunction else { return -1 }
        return withUnsafeMutablePointer(to: &actions) { function($0, from) }
    }

    private static func pipe2(_ ends: inout [Int32], _ flags: Int32) -> Int32 {
        ends.withUnsafeMutableBufferPointer { pipe2Function($0.baseAddress, flags) }
    }

    /// The exit status if the child has ended (reaps it), else nil.
    func exitStatus() -> ExitStatus? {
        reaped.withLock { known in
            if let known { return known }
            var raw: Int32 = 0
            let result = waitpid(pid, &raw, WNOHANG)
            if result == pid {
                known = ExitStatus(rawStatus: raw)
            }
            return known
        }
    }

    var isRunning: Bool { exitStatus() == nil }

    /// Polls until the child ends; nil when `timeout` passed first.
    func waitForExit(timeout: Duration) -> ExitStatus? {
        var status: ExitStatus?
        _ = Poll.until(timeout: timeout, interval: .milliseconds(5)) {
            status = exitStatus()
            return status != nil
        }
        return status
    }

    func send(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// SIGKILL if still running, then reap.
    func terminate() {
        if exitStatus() == nil {
            kill(pid, SIGKILL)
            _ = waitForExit(timeout: .seconds(10))
        }
    }
}

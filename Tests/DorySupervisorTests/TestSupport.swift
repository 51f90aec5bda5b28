@preconcurrency import Dispatch
import Glibc
import Synchronization

@testable import DorySupervisor

/// Polls `condition` until it holds or `seconds` pass (no fixed sleeps: 5 ms steps up to the deadline).
func eventually(within seconds: Double = 5, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return try await condition()
}

/// A fresh temporary directory (short path, so Unix socket paths fit).
func makeTemporaryDirectory() -> String {
    var template = Array("/tmp/dsv-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    precondition(made != nil, "mkdtemp failed")
    return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

func removeTree(_ path: String) {
    _ = withCStrings(["/bin/rm", "-rf", path]) { argv in
        var pid: pid_t = 0
        let code = posix_spawn(&pid, "/bin/rm", nil, nil, argv, environ)
        if code == 0 { var status: Int32 = 0; waitpid(pid, &status, 0) }
        return code
    }
}

func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    precondition(fd >= 0)
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
    chmod(path, mode)
}

func readFile(_ path: String) -> String? { ProcessTable.readSmallFile(path) }

/// Runs a command to completion on a Dispatch thread (never blocking Swift's cooperative pool, which the
/// server-side tasks under test need), capturing stdout.
func run(_ command: [String], environment: [String] = ChildEnvironment.current()) async -> (status: Int32, output: String) {
    await withCheckedContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(returning: runBlocking(command, environment: environment)) }
    }
}

/// Runs a command to completion, capturing stdout (tests only; waits for that pid alone).
func runBlocking(_ command: [String], environment: [String] = ChildEnvironment.current()) -> (status: Int32, output: String) {
    var pipeFDs: [Int32] = [0, 0]
    pipe(&pipeFDs)
    for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
    defer { posix_spawn_file_actions_destroy(&actions) }
    var pid: pid_t = 0
    let code = withCStrings(command) { argv in
        withCStrings(environment) { envp in posix_spawnp(&pid, command[0], &actions, nil, argv, envp) }
    }
    close(pipeFDs[1])
    guard code == 0 else { close(pipeFDs[0]); return (-1, "") }
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        output += buffer[..<n]
    }
    close(pipeFDs[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return (ChildStatus(waitStatus: status)?.code ?? -1, String(decoding: output, as: UTF8.self))
}

/// A child spawn request with the test process's environment.
func request(_ command: [String], workdir: String? = nil) -> SpawnRequest {
    SpawnRequest(command: command, environment: ChildEnvironment.current(), workdir: workdir, foregroundOnTerminal: false)
}

/// Spawns, then reaps until the child's status is known.
func runToEnd(_ controller: ChildController, _ command: [String]) async throws -> ChildStatus? {
    try controller.spawn(request(command))
    _ = await eventually { controller.reap(); return controller.lastStatus != nil }
    return controller.lastStatus
}

/// Whether `pid` still exists and is not a zombie.
func isLive(_ pid: pid_t) -> Bool { ProcessTable.entry(pid: pid).map { !$0.isGone } ?? false }

/// The test process becomes a subreaper once (orphans of the children under test come back to it).
let subreaperOnce: Void = { _ = ChildController.becomeSubreaper() }()

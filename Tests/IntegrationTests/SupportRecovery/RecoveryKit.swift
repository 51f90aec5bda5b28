import DoryState
import Glibc
import Synchronization

// Helpers for the journal, recovery, crash and `doryd state` tests, on top of the shared harness in Support/.

extension JSONValue {
    /// An integer written either as a JSON number or as a decimal string (log metadata does both).
    var integer: Int64? {
        switch self {
        case .int(let i): return i
        case .double(let d): return d == d.rounded() ? Int64(d) : nil
        case .string(let s): return Int64(s)
        default: return nil
        }
    }

    /// A number written as a JSON number or a decimal string.
    var number: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        case .string(let s): return Double(s)
        default: return nil
        }
    }
}

/// The `recovery.decision` log record of one boot, read out.
struct LoggedDecision: CustomStringConvertible {
    let record: JSONObject
    var strategy: String? { record["strategy"]?.string }
    var reason: String? { record["reason"]?.string }
    var crashesInWindow: Int64? { record["crashes_in_window"]?.integer }
    var restartCount: Int64? { record["restart_count"]?.integer }
    var backoff: Double? { record["backoff"]?.number }
    var generation: Int64? { record["generation"]?.integer }
    var level: String? { record["level"]?.string }
    var description: String { "\(strategy ?? "?")/\(reason ?? "?") crashes=\(crashesInWindow.map(String.init) ?? "?") "
        + "restart_count=\(restartCount.map(String.init) ?? "?") backoff=\(backoff.map { "\($0)" } ?? "?") "
        + "generation=\(generation.map(String.init) ?? "-")" }
}

extension Daemon {
    /// Waits for this boot's `recovery.decision` line.
    func decision(timeout: Duration = .seconds(15)) throws -> LoggedDecision {
        guard let record = waitForEvent("recovery.decision", timeout: timeout) else {
            throw Failure(description: "no recovery.decision line (\(process.exitStatus()?.description ?? "running")); log:\n\(logTail)")
        }
        return LoggedDecision(record: record)
    }

    var quarantineDir: String { processorDir + "/quarantine" }
    var archiveDir: String { processorDir + "/archive" }

    /// Waits until a `snapshot.saved` line for a generation newer than `after` appears; returns that generation.
    func waitForSave(after: UInt64 = 0, timeout: Duration = .seconds(10)) -> UInt64? {
        Poll.value(timeout: timeout, interval: .milliseconds(10)) { () -> UInt64? in
            saved().compactMap(\.generation).filter { $0 > after }.max()
        }
    }

    /// Fixture hook names, `onRapidRestartDetected` included.
    func hookRecords(_ name: String) -> [JSONObject] { records.filter { $0["fixture_hook"]?.string == name } }

    /// SIGKILL and reap; waits for the log pipe to close so every line written is captured.
    func kill9() {
        signal(SIGKILL)
        _ = process.waitForExit(timeout: .seconds(10))
        _ = Poll.until(timeout: .seconds(5), interval: .milliseconds(2)) { process.stderr.isClosed }
    }

    /// Boots through ready, then SIGKILL: one crash in the journal.
    static func crashAfterReady(_ sandbox: Sandbox, _ options: LaunchOptions) throws -> Daemon {
        let daemon = try sandbox.launch(options)
        try daemon.waitReady()
        daemon.kill9()
        return daemon
    }
}

/// A `doryd` subcommand run to completion (`doryd state …`), with both streams captured.
struct CommandRun: CustomStringConvertible {
    let status: ExitStatus
    let stdout: String
    let stderr: String
    var code: Int32? { status.code }
    var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }
    var description: String { "\(status); stdout: \(stdout.prefix(800)); stderr: \(stderr.prefix(800))" }

    /// Runs `doryd <arguments>` with the sandbox's base environment plus `environment`.
    static func doryd(_ sandbox: Sandbox, _ arguments: [String], environment: [String: String] = [:],
                      timeout: Duration = .seconds(30)) throws -> CommandRun {
        var env = sandbox.baseEnvironment()
        for (k, v) in environment { env[k] = v }
        return try run(sandbox, try Binaries.doryd(), arguments, environment: env, timeout: timeout)
    }

    static func run(_ sandbox: Sandbox, _ executable: String, _ arguments: [String], environment: [String: String],
                    timeout: Duration = .seconds(30)) throws -> CommandRun {
        let child = try sandbox.spawn(executable, arguments, environment: environment, captureStdout: true)
        guard let status = child.waitForExit(timeout: timeout) else {
            child.terminate()
            throw ChildProcess.SpawnError(description: "\(executable) \(arguments) still running after \(timeout)")
        }
        _ = Poll.until(timeout: .seconds(5), interval: .milliseconds(2)) { child.stderr.isClosed && child.stdout!.isClosed }
        return CommandRun(status: status, stdout: child.stdout!.text, stderr: child.stderr.text)
    }
}

/// Hand-made restart journals (`boots.jsonl`, spec §7) with chosen times.
enum JournalForge {
    static func boot(_ id: String, at millis: Int64, podUID: String? = nil, hwm: Int64 = 0) -> String {
        let uid = podUID.map { #","pod_uid":"\#($0)""# } ?? ""
        return #"{"type":"boot","boot_id":"\#(id)","pod_name":"itest-pod"\#(uid),"started_at":"\#(WallClock.rfc3339(millis: millis))","version":"0.0.0","generation_hwm":\#(hwm)}"#
    }

    static func end(_ id: String, at millis: Int64, clean: Bool) -> String {
        #"{"type":"end","boot_id":"\#(id)","ended_at":"\#(WallClock.rfc3339(millis: millis))","exit_code":\#(clean ? 0 : 1),"clean":\#(clean),"errors":[]}"#
    }

    static func healthy(_ id: String, at millis: Int64) -> String {
        #"{"type":"healthy","boot_id":"\#(id)","at":"\#(WallClock.rfc3339(millis: millis))"}"#
    }

    /// Killed boots (no end record) started `secondsAgo` each.
    static func crashes(secondsAgo: [Double], podUID: String? = nil) -> [String] {
        let now = WallClock.nowMillis()
        return secondsAgo.enumerated().map { i, ago in boot("forged-crash-\(i)", at: now - Int64(ago * 1000), podUID: podUID) }
    }

    /// Writes `lines` (each ending in a newline) as `<processorDir>/boots.jsonl`.
    static func write(_ lines: [String], processorDir: String, tail: String = "") {
        makeDirectories(processorDir)
        writeFile(processorDir + "/boots.jsonl", Array((lines.map { $0 + "\n" }.joined() + tail).utf8))
    }
}

/// Snapshot files made and damaged by hand: envelopes compressed by the system's `gzip`, truncation, bit flips.
enum SnapshotForge {
    /// Writes `<snapshotsDir>/<generation>.json.gz` holding `envelopeJSON`, compressed with `gzip -c`.
    static func write(_ sandbox: Sandbox, snapshotsDir: String, generation: UInt64, envelopeJSON: String) throws {
        makeDirectories(snapshotsDir)
        let plain = sandbox.path("forge-\(generation)-\(WallClock.nowMillis()).json")
        writeFile(plain, Array(envelopeJSON.utf8))
        let destination = Snapshots.path(in: snapshotsDir, generation: generation)
        let run = try CommandRun.run(sandbox, "/bin/sh", ["-c", #"gzip -c "$1" > "$2""#, "sh", plain, destination],
                                     environment: ["PATH": "/usr/bin:/bin"])
        guard run.code == 0 else { throw Snapshots.DecodeError(description: "gzip failed: \(run)") }
        unlink(plain)
    }

    /// A §6.1 envelope with the given members.
    static func envelope(processorId: String = "itest-pod", generation: UInt64, state: String = #"{"counter":7}"#,
                         reason: String = "shutdown") -> String {
        #"{"format":"dory.snapshot/1","processor_id":"\#(processorId)","pod_name":"itest-pod","namespace":"itest-ns","generation":\#(generation),"saved_at":"\#(WallClock.rfc3339(millis: WallClock.nowMillis()))","reason":"\#(reason)","restart_count":0,"strategy":"fresh","state":\#(state)}"#
    }

    /// Cuts a file to half its size.
    static func truncateToHalf(_ path: String) throws {
        guard let info = Files.stat(path) else { throw Snapshots.DecodeError(description: "no file \(path)") }
        guard truncate(path, info.st_size / 2) == 0 else {
            throw Snapshots.DecodeError(description: "truncate \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Flips every bit of the byte at `offset` (negative: from the end).
    static func flipByte(_ path: String, at offset: Int) throws {
        guard var bytes = Files.read(path), !bytes.isEmpty else { throw Snapshots.DecodeError(description: "cannot read \(path)") }
        let index = offset >= 0 ? offset : bytes.count + offset
        bytes[index] ^= 0xFF
        writeFile(path, bytes)
    }

    /// Overwrites the deflate data in the middle of a gzip member (past the 10-byte header, before the 8-byte trailer).
    static func corruptDeflateData(_ path: String) throws {
        guard let size = Files.read(path)?.count, size > 24 else { throw Snapshots.DecodeError(description: "\(path) too small") }
        try flipByte(path, at: 10 + (size - 18) / 2)
    }
}

/// Every file under a directory with its size, mode and modification time, to prove a command "changed no file".
enum TreeListing {
    struct Entry: Equatable, CustomStringConvertible {
        let size: Int
        let mtimeNanos: Int
        let isDirectory: Bool
        var description: String { isDirectory ? "dir" : "\(size)B@\(mtimeNanos)" }
    }

    static func of(_ root: String, skipping: Set<String> = []) -> [String: Entry] {
        var result: [String: Entry] = [:]
        func walk(_ directory: String, _ prefix: String) {
            for name in Files.list(directory) where !skipping.contains(name) {
                let full = directory + "/" + name
                guard let info = Files.stat(full) else { continue }
                let isDirectory = (info.st_mode & S_IFMT) == S_IFDIR
                result[prefix + name] = Entry(size: Int(info.st_size), mtimeNanos: info.st_mtim.tv_sec * 1_000_000_000 + info.st_mtim.tv_nsec,
                                              isDirectory: isDirectory)
                if isDirectory { walk(full, prefix + name + "/") }
            }
        }
        walk(root, "")
        return result
    }
}

/// `mkdir -p` with mode 0700.
func makeDirectories(_ path: String) {
    var current = ""
    for part in path.split(separator: "/") {
        current += "/" + part
        mkdir(current, 0o700)
    }
}

/// Writes a whole file (created 0600, truncated).
func writeFile(_ path: String, _ bytes: [UInt8]) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    precondition(fd >= 0, "open \(path): \(String(cString: strerror(errno)))")
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        precondition(n > 0, "write \(path): \(String(cString: strerror(errno)))")
        offset += n
    }
    close(fd)
}

/// Names in `directory` that are doryd temporary files (`.<name>.tmp.<random>`, §6.2).
func temporaryFiles(in directory: String) -> [String] {
    Files.list(directory).filter { $0.hasPrefix(".") && $0.contains(".tmp.") }
}

import CDorySys
import Glibc

/// What to spawn (spec/supervise.md §2).
public struct SpawnRequest: Sendable {
    /// CMD and its arguments, verbatim; a CMD without `/` is looked up on `PATH`.
    public var command: [String]
    /// `KEY=VALUE` entries (see `ChildEnvironment.build`).
    public var environment: [String]
    /// `--workdir`, or nil for doryd's working directory.
    public var workdir: String?
    /// Make the child's group the terminal's foreground group when fd 0 is a terminal doryd controls (§2.2).
    public var foregroundOnTerminal: Bool

    public init(command: [String], environment: [String], workdir: String? = nil, foregroundOnTerminal: Bool = true) {
        self.command = command
        self.environment = environment
        self.workdir = workdir
        self.foregroundOnTerminal = foregroundOnTerminal
    }
}

/// A spawned child: pid, process group (= pid) and when it started.
public struct SpawnedChild: Sendable, Hashable {
    public let pid: pid_t
    public let pgid: pid_t
    /// Field 22 of `/proc/<pid>/stat` (clock ticks since boot), to recognise the process later; 0 if unread.
    public let startTime: UInt64
    public let spawnedAt: ContinuousClock.Instant
}

/// `posix_spawnp` failed: no child runs CMD (spec/supervise.md §2.5).
public struct SpawnFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// CMD as given.
    public let path: String
    /// The file the `PATH` search found, when it found one.
    public let resolved: String?
    public let errno: Int32

    /// 127 for `ENOENT`/`ENOTDIR` (not found), else 126 (found but not executable).
    public var exitCode: Int32 { errno == ENOENT || errno == ENOTDIR ? 127 : 126 }
    /// The `strerror` text.
    public var message: String { String(cString: strerror(errno)) }
    /// `dory_child_exits_total{how}`.
    public static let how = "spawn_failed"

    public var description: String {
        "cannot execute command: \(path)\(resolved.map { " (\($0))" } ?? ""): \(message) (errno \(errno))"
    }
}

/// Spawns children with the exact attributes of spec/supervise.md §2.1.
public enum ChildSpawner {
    /// Spawns `request`: own process group, empty signal mask, every disposition at default, only 0–2 crossing.
    /// Exec errors come back as the call's return value (glibc ≥ 2.24), so a failure means no child runs.
    @discardableResult
    public static func spawn(_ request: SpawnRequest) throws(SpawnFailure) -> SpawnedChild {
        guard let command = request.command.first else {
            throw SpawnFailure(path: "", resolved: nil, errno: ENOENT)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }

        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        Self.addInternalSignals(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        if let workdir = request.workdir {
            let code = dory_spawn_addchdir(&actions, workdir)
            if code != 0 { throw SpawnFailure(path: command, resolved: nil, errno: code) }
        }
        _ = dory_spawn_addclosefrom(&actions, 3)  // belt and braces: every descriptor of doryd is close-on-exec
        if request.foregroundOnTerminal, isatty(0) == 1, tcgetpgrp(0) == getpgrp() {
            _ = dory_spawn_addtcsetpgrp(&actions, 0)
        }

        var pid: pid_t = 0
        let code = withCStrings(request.command) { argv in
            withCStrings(request.environment) { envp in
                posix_spawnp(&pid, command, &actions, &attributes, argv, envp)
            }
        }
        if code != 0 {
            throw SpawnFailure(path: command, resolved: resolve(command), errno: code)
        }
        let startTime = ProcessTable.entry(pid: pid)?.startTime ?? 0
        return SpawnedChild(pid: pid, pgid: pid, startTime: startTime, spawnedAt: .now)
    }

    /// The file a `PATH` search for `command` finds first (for the `resolved` log key); nil for a path with `/`.
    public static func resolve(_ command: String) -> String? {
        guard !command.contains("/") else { return nil }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (directory.isEmpty ? "." : String(directory)) + "/" + command
            if access(candidate, F_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Marks every descriptor ≥ 3 close-on-exec (initializing, §2.2): `close_range`, else each `/proc/self/fd` entry.
    public static func markInheritedDescriptorsCloseOnExec() {
        if dory_cloexec_from(3) == 0 { return }
        guard let directory = opendir("/proc/self/fd") else { return }
        defer { closedir(directory) }
        let own = dirfd(directory)
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let fd = Int32(name), fd >= 3, fd != own else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    /// Opens `/dev/null` on 0, 1 or 2 when closed (§2.2), so no socket of doryd takes their number.
    public static func fillStandardDescriptors() {
        for fd: Int32 in 0...2 where fcntl(fd, F_GETFD) < 0 {
            let opened = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY)
            if opened >= 0 && opened != fd {
                dup2(opened, fd)
                close(opened)
            }
        }
    }
}

/// Calls `body` with a NULL-terminated C string array.
func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers)
}

extension ChildSpawner {
    /// glibc's `sigfillset` leaves out its internal signals (32 up to `SIGRTMIN`: 32 and 33 with current glibc), and `sigaddset` refuses
    /// them; its `posix_spawn` then leaves them ignored in the child (SIG_IGN survives exec), so the child's `SigIgn` would
    /// not be all zeros (spec/supervise.md §2.1, §12 case 21). Setting their bits directly makes `POSIX_SPAWN_SETSIGDEF`
    /// reset them to the default too.
    static func addInternalSignals(_ set: inout sigset_t) {
        let first = 32
        let last = Int(__libc_current_sigrtmin()) - 1
        guard last >= first else { return }
        withUnsafeMutableBytes(of: &set) { raw in
            let words = raw.bindMemory(to: UInt.self)
            for signal in first...last {
                let bit = signal - 1
                words[bit / UInt.bitWidth] |= 1 << UInt(bit % UInt.bitWidth)
            }
        }
    }
}

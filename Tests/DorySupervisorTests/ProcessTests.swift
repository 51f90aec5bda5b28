import Glibc
import Testing

@testable import DorySupervisor

@Suite("Spawning, exit status and reaping")
struct ProcessTests {
    @Test("exit status table: the child's code, 128+signal", arguments: [
        ("exit 0", Int32(0)), ("exit 1", 1), ("exit 2", 2), ("exit 127", 127), ("exit 255", 255),
        ("kill -KILL $$", 137), ("ulimit -c 0; kill -SEGV $$", 139), ("kill -TERM $$", 143),
    ])
    func exitStatus(script: String, expected: Int32) async throws {
        let controller = ChildController(events: ChildEvents(), scope: .trackedOnly)
        let status = try await runToEnd(controller, ["/bin/sh", "-c", script])
        #expect(status?.code == expected)
        if script.contains("kill") {
            guard case .signaled(let signal, _) = status else { Issue.record("not signaled: \(String(describing: status))"); return }
            #expect(signal == expected - 128)
        }
    }

    @Test("--success-exit-codes maps listed statuses to 0")
    func successCodes() {
        let codes = SuccessExitCodes([143])
        #expect(codes.mapped(143) == 0)
        #expect(codes.mapped(0) == 0)
        #expect(codes.mapped(1) == 1)
        #expect(SuccessExitCodes().mapped(137) == 137)
    }

    @Test("exec failure: 127 not found, 126 not executable, with errno and a one-line reason")
    func execFailures() throws {
        let dir = makeTemporaryDirectory()
        defer { removeTree(dir) }
        writeFile(dir + "/plain", Array("echo hi\n".utf8), mode: 0o644)
        writeFile(dir + "/garbage", [0x7f, 0x00, 0x13, 0x37, 0xff, 0xfe, 0x01, 0x02], mode: 0o755)
        let cases: [(String, Int32, Int32)] = [
            ("/no/such/file", 127, ENOENT), ("no-such-command-for-dory", 127, ENOENT),
            (dir + "/plain", 126, EACCES), (dir, 126, EACCES), (dir + "/garbage", 126, ENOEXEC),
        ]
        for (path, code, errnoValue) in cases {
            do {
                try ChildSpawner.spawn(request([path]))
                Issue.record("\(path) spawned")
            } catch {
                #expect(error.exitCode == code, "\(path)")
                #expect(error.errno == errnoValue, "\(path): \(error)")
                #expect(error.path == path)
                #expect(!error.description.contains("\n"))
            }
        }
        #expect((try? ChildSpawner.spawn(request(["no-such-command-for-dory"]))) == nil)
        #expect(ChildSpawner.resolve("sh") != nil)
    }

    @Test("attributes: own process group, empty mask, default dispositions (SIGPIPE ignored here), cwd")
    func attributes() async throws {
        signal(SIGPIPE, SIG_IGN)  // doryd ignores SIGPIPE; the child must not inherit that
        let dir = makeTemporaryDirectory()
        defer { removeTree(dir) }
        let out = dir + "/out"
        let controller = ChildController(events: ChildEvents(), scope: .trackedOnly)
        let child = try controller.spawn(request([
            "/bin/sh", "-c", "grep -E '^(SigBlk|SigIgn)' /proc/self/status > \(out).tmp; cat /proc/self/stat >> \(out).tmp; pwd >> \(out).tmp; mv \(out).tmp \(out)",
        ], workdir: dir))
        #expect(child.pgid == child.pid)
        #expect(await eventually { controller.reap(); return controller.lastStatus != nil })
        let text = try #require(readFile(out))
        #expect(text.contains("SigBlk:\t0000000000000000"), "\(text)")
        // glibc's posix_spawn leaves its two internal signals (32, 33) ignored in every child it spawns; every
        // other signal, SIGPIPE included, is at its default.
        let ignored = try #require(text.split(separator: "\n").first { $0.hasPrefix("SigIgn:") }.flatMap { UInt64($0.dropFirst(8), radix: 16) })
        #expect(ignored & ~UInt64(0x1_8000_0000) == 0, "\(text)")
        let lines = text.split(separator: "\n")
        let stat = try #require(ProcessTable.parseStat(String(lines[2])))
        // cat ran in the group led by the child sh: pgid = the child's pid, not the test process's group
        #expect(stat.pgid == child.pid)
        #expect(stat.pgid != getpgrp())
        #expect(lines.last.map(String.init) == dir)
    }

    @Test("environment: rows of §2.3 set, doryd's notify and token variables removed")
    func environment() {
        let inherited = ["FOO=bar", "NOTIFY_SOCKET=/run/x", "WATCHDOG_USEC=5", "DORY_STATE_TOKEN=t", "LISTEN_FDS=1",
                         "DORY_ATTEMPT=9", "PATH=/bin"]
        var values = ChildEnvironmentValues(
            controlSocket: "/s/control.sock", recoveryStrategy: "fresh", recoveryReason: "first_start", attempt: 1,
            childRestarts: 0, processorID: "p1", stateDir: "/s")
        var env = ChildEnvironment.build(inherited: inherited, values: values)
        #expect(env.contains("FOO=bar") && env.contains("PATH=/bin"))
        #expect(env.contains("DORY_CONTROL_SOCKET=/s/control.sock"))
        #expect(env.contains("DORY_ATTEMPT=1") && !env.contains("DORY_ATTEMPT=9"))
        #expect(env.contains("DORY_RECOVERY_STRATEGY=fresh") && env.contains("DORY_RECOVERY_REASON=first_start"))
        #expect(env.contains("DORY_CHILD_RESTARTS=0") && env.contains("DORY_PROCESSOR_ID=p1") && env.contains("DORY_STATE_DIR=/s"))
        #expect(!env.contains { $0.hasPrefix("NOTIFY_SOCKET=") || $0.hasPrefix("WATCHDOG_") || $0.hasPrefix("DORY_STATE_TOKEN=") || $0.hasPrefix("LISTEN_") })
        values.notifySocket = "/s/notify-0.sock"
        values.watchdogMicroseconds = 2_000_000
        env = ChildEnvironment.build(inherited: inherited, values: values)
        #expect(env.contains("NOTIFY_SOCKET=/s/notify-0.sock") && env.contains("WATCHDOG_USEC=2000000"))
        #expect(!env.contains { $0.hasPrefix("WATCHDOG_PID=") })
    }

    @Test("only 0, 1 and 2 cross into the child")
    func descriptors() async throws {
        let dir = makeTemporaryDirectory()
        defer { removeTree(dir) }
        let leaked = open("/dev/null", O_RDONLY)  // no O_CLOEXEC: addclosefrom keeps it out anyway
        defer { close(leaked) }
        let controller = ChildController(events: ChildEvents(), scope: .trackedOnly)
        try controller.spawn(request(["/bin/sh", "-c", "ls /proc/$$/fd > \(dir)/fds.tmp; mv \(dir)/fds.tmp \(dir)/fds"]))
        #expect(await eventually { controller.reap(); return controller.lastStatus != nil })
        let fds = try #require(readFile(dir + "/fds")).split(separator: "\n").compactMap { Int($0) }
        #expect(fds.allSatisfy { $0 <= 2 || $0 == 10 } , "\(fds)")  // dash opens 10 for the redirection
        #expect(!fds.contains(Int(leaked)) || leaked == 10)
    }

    @Test("a re-parented grandchild zombie is reaped as an orphan")
    func orphanReaped() async throws {
        _ = subreaperOnce
        let events = ChildEvents()
        let controller = ChildController(events: events, scope: .trackedOnly)
        let child = try controller.spawn(request(["/bin/sh", "-c", "(sh -c 'sleep 0.2' &); exec sleep 300"]))
        var orphans: [pid_t] = []
        #expect(await eventually {
            _ = controller.descendants()  // scans track the tree, as the heartbeat reaper would see it
            for case .orphan(let pid, _) in controller.reap() { orphans.append(pid) }
            return !orphans.isEmpty
        })
        #expect(controller.aliveChild?.pid == child.pid)
        let zombies = ProcessTable.scan()?.filter { $0.ppid == getpid() && $0.isGone && $0.pgid == child.pgid } ?? []
        #expect(zombies.isEmpty)
        let report = await controller.stop(signal: SIGTERM, childOnly: false, deadline: .now + .seconds(2))
        #expect(report.childStatus == .signaled(signal: SIGTERM, coreDumped: false))
        #expect(report.killed.isEmpty)
    }
}

import Glibc
import Testing

@testable import DorySupervisor

@Suite("Readiness, the notify bridge (§7.2) and the heartbeat (§7.3)")
struct NotifyTests {
    @Test("parsing datagrams")
    func parse() {
        let messages = NotifyMessage.parse(Array("READY=1\nSTATUS=warming up\nWATCHDOG=1\nSTOPPING=1\nMAINPID=4\nWATCHDOG=trigger\n".utf8))
        #expect(messages == [.ready, .status("warming up"), .watchdog, .stopping, .ignored(key: "MAINPID"), .ignored(key: "WATCHDOG")])
        let long = NotifyMessage.parse(Array(("STATUS=" + String(repeating: "é", count: 300)).utf8))
        if case .status(let text) = long.first { #expect(text.utf8.count == 512) } else { Issue.record("\(long)") }
    }

    /// A child sending `STATUS=` then `READY=1` with Python, and one with `systemd-notify`, each through the bridge.
    @Test("READY=1 and STATUS= from a child's NOTIFY_SOCKET (python3 and systemd-notify)", arguments: ["python", "systemd-notify"])
    func readyFromChild(sender: String) async throws {
        let dir = makeTemporaryDirectory()
        defer { removeTree(dir) }
        let events = ChildEvents()
        let controller = ChildController(events: events, scope: .trackedOnly)
        let liveness = ChildLiveness(mode: .notify, heartbeatTimeoutMillis: 0, events: events)
        let bridge = try NotifyBridge(path: dir + "/notify-0.sock", abstractName: "dory-notify-test-0")
        defer { bridge.close() }
        var info = stat()
        #expect(stat(dir + "/notify-0.sock", &info) == 0 && info.st_mode & 0o777 == 0o600)
        bridge.start(liveness: liveness, events: events) { [controller] pid, uid in controller.isNotifySenderAccepted(pid: pid, uid: uid) }
        let script: [String] = sender == "python"
            ? ["python3", "-c", """
                import os, socket
                s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); a = os.environ["NOTIFY_SOCKET"]
                s.sendto(b"STATUS=warming", a); s.sendto(b"READY=1\\nFOO=1", a)
                import time; time.sleep(30)
                """]
            : ["/bin/sh", "-c", "systemd-notify --status=warming; systemd-notify --ready; exec sleep 30"]
        var environment = ChildEnvironment.current().filter { !$0.hasPrefix("NOTIFY_SOCKET=") }
        environment.append("NOTIFY_SOCKET=" + bridge.address)
        let child = try controller.spawn(SpawnRequest(command: script, environment: environment, foregroundOnTerminal: false))
        liveness.childStarted(pid: child.pid)
        #expect(!liveness.readinessCheck(startupTimeoutSeconds: 30).passed)
        #expect(await eventually { liveness.isChildReady })
        #expect(liveness.status == "warming")
        #expect(liveness.readinessCheck(startupTimeoutSeconds: 30).detail == "pid=\(child.pid) ready=notify status=\"warming\"")
        #expect(bridge.counters.withLock { $0["accepted"] ?? 0 } >= 2)
        let report = await controller.stop(signal: SIGTERM, childOnly: false, deadline: .now + .seconds(2))
        #expect(report.killed.isEmpty)
        liveness.childEnded()
        #expect(!liveness.readinessCheck(startupTimeoutSeconds: 30).passed)
    }

    @Test("a datagram from a live process that is not a descendant is rejected; STOPPING=1 fails readiness")
    func rejectedSender() async throws {
        let dir = makeTemporaryDirectory()
        defer { removeTree(dir) }
        let events = ChildEvents()
        let controller = ChildController(events: events, scope: .trackedOnly)
        let liveness = ChildLiveness(mode: .notify, events: events)
        let bridge = try NotifyBridge(path: dir + "/n.sock", abstractName: "unused")
        defer { bridge.close() }
        bridge.start(liveness: liveness, events: events) { [controller] pid, uid in controller.isNotifySenderAccepted(pid: pid, uid: uid) }
        let child = try controller.spawn(request(["sleep", "30"]))
        liveness.childStarted(pid: child.pid)
        // The test process itself is alive and not a descendant of itself.
        send(datagram: "READY=1", to: dir + "/n.sock")
        #expect(await eventually { bridge.counters.withLock { $0["rejected"] ?? 0 } == 1 })
        #expect(!liveness.isChildReady)
        // A vanished sender with doryd's UID is accepted (a short-lived systemd-notify already reaped).
        #expect(controller.isNotifySenderAccepted(pid: 0, uid: getuid()))
        #expect(!controller.isNotifySenderAccepted(pid: 0, uid: getuid() &+ 1))
        #expect(controller.isNotifySenderAccepted(pid: child.pid, uid: 12345))
        #expect(liveness.markReady(via: .notify))
        #expect(liveness.readinessCheck(startupTimeoutSeconds: 30).passed)
        liveness.noteStopping()
        #expect(!liveness.readinessCheck(startupTimeoutSeconds: 30).passed)
        _ = await controller.stop(signal: SIGTERM, childOnly: false, deadline: .now + .seconds(2))
    }

    @Test("the abstract fallback when the path does not fit sun_path")
    func abstractFallback() throws {
        let bridge = try NotifyBridge(path: "/tmp/" + String(repeating: "x", count: 120), abstractName: "dory-notify-test-\(getpid())")
        defer { bridge.close() }
        #expect(bridge.address == "@dory-notify-test-\(getpid())")
    }

    @Test("heartbeat: fails after the timeout once ready, passes again with the next heartbeat")
    func heartbeat() async {
        let events = ChildEvents()
        let liveness = ChildLiveness(mode: .api, heartbeatTimeoutMillis: 150, events: events)
        #expect(liveness.heartbeatCheck(evaluated: true).passed)  // no child
        liveness.childStarted(pid: 99)
        #expect(await eventually(within: 0.3) { !liveness.heartbeatCheck(evaluated: true).passed } == false)  // not ready yet
        liveness.markReady(via: .api)
        #expect(await eventually { !liveness.heartbeatCheck(evaluated: true).passed })
        #expect(liveness.heartbeatCheck(evaluated: true).detail.hasPrefix("no heartbeat for"))
        #expect(liveness.heartbeatCheck(evaluated: false).passed)  // stopping, between restarts: passes
        liveness.heartbeat()
        #expect(liveness.heartbeatCheck(evaluated: true).passed)
        #expect(liveness.heartbeatAgeSeconds != nil)
        events.finish()
        var seen: [ChildEvent] = []
        for await event in events.stream { seen.append(event) }
        #expect(seen == [.ready(pid: 99, mode: .api), .heartbeat])
    }

    @Test("§9 step 4: each new child gets fresh readiness and heartbeat deadlines; a repeated READY is no heartbeat")
    func deadlinesPerChild() async {
        let liveness = ChildLiveness(mode: .api, heartbeatTimeoutMillis: 150)
        liveness.childStarted(pid: 99)
        liveness.markReady(via: .api)
        #expect(await eventually { !liveness.heartbeatCheck(evaluated: true).passed })
        #expect(!liveness.markReady(via: .api))
        #expect(!liveness.heartbeatCheck(evaluated: true).passed, "a second POST /v1/ready does not reset the heartbeat deadline")
        liveness.childEnded()
        liveness.childStarted(pid: 100)
        #expect(!liveness.readinessCheck(startupTimeoutSeconds: 30).passed)
        #expect(liveness.readinessCheck(startupTimeoutSeconds: 30).detail.hasPrefix("waiting for POST /v1/ready (0.0s of 30s)"))
        #expect(liveness.heartbeatCheck(evaluated: true).passed)  // not ready yet
        liveness.markReady(via: .api)
        #expect(liveness.heartbeatCheck(evaluated: true).passed, "the new child's heartbeat deadline starts at its readiness")
    }

    @Test("§7.4: while an in-pod restart is pending the child check reads restarting in Ns (restart k of n)")
    func restartPendingDetail() {
        let liveness = ChildLiveness(mode: .started)
        liveness.childStarted(pid: 99)
        liveness.childEnded()
        #expect(liveness.readinessCheck(startupTimeoutSeconds: 30).detail == "no child running")
        liveness.restartPending(inMillis: 3500, number: 2, of: 5)
        let check = liveness.readinessCheck(startupTimeoutSeconds: 30)
        #expect(!check.passed && check.detail == "restarting in 4s (restart 2 of 5)", "\(check.detail)")
        liveness.restartCancelled()
        #expect(liveness.readinessCheck(startupTimeoutSeconds: 30).detail == "no child running")
        liveness.restartPending(inMillis: 1000, number: 1, of: 5)
        liveness.childStarted(pid: 100)
        #expect(liveness.readinessCheck(startupTimeoutSeconds: 30).passed)
        liveness.childEnded()
        #expect(liveness.readinessCheck(startupTimeoutSeconds: 30).detail == "no child running")
    }

    func send(datagram: String, to path: String) {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let bytes = Array(datagram.utf8)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }
}

import Glibc
import Testing

@testable import DorySupervisor

@Suite("Signals and the stop sequence")
struct StopTests {
    @Test("a forwarded signal reaches the whole group; the stop sequence waits for all of it")
    func groupSignal() async throws {
        _ = subreaperOnce
        let controller = ChildController(events: ChildEvents(), scope: .trackedOnly)
        let child = try controller.spawn(request(["/bin/sh", "-c", "sleep 300 & sleep 300 & wait"]))
        #expect(await eventually { (controller.descendants()?.count ?? 0) == 3 })
        let members = controller.descendants() ?? []
        #expect(members.allSatisfy { $0.pgid == child.pgid })
        let start = ContinuousClock.now
        let report = await controller.stop(signal: SIGTERM, childOnly: false, deadline: .now + .seconds(3))
        #expect(report.childStatus?.code == 143)
        #expect(report.killed.isEmpty && !report.deadlineReached)
        #expect(ContinuousClock.now - start < .seconds(2))
        #expect(members.allSatisfy { !isLive($0.pid) })
        #expect(controller.counters.signalsForwarded["SIGTERM"] == 1)
    }

    @Test("--signal-child-only: only the child gets it; once the child is gone the rest get the stop signal")
    func childOnly() async throws {
        _ = subreaperOnce
        let controller = ChildController(events: ChildEvents(), scope: .trackedOnly)
        try controller.spawn(request(["/bin/sh", "-c", "sleep 300 & sleep 300 & wait"]))
        #expect(await eventually { (controller.descendants()?.count ?? 0) == 3 })
        #expect(controller.forward(SIGHUP, childOnly: true) == .sent)
        #expect(await eventually { controller.reap(); return controller.lastStatus != nil })
        #expect(controller.lastStatus?.code == 128 + SIGHUP)
        let sleepers = controller.descendants() ?? []
        #expect(sleepers.count == 2)  // the sleeps did not get SIGHUP
        #expect(controller.forward(SIGHUP, childOnly: false) == .noChild)  // dropped: no child alive
        let report = await controller.stop(signal: SIGTERM, childOnly: true, deadline: .now + .seconds(3))
        #expect(report.killed.isEmpty)
        #expect(sleepers.allSatisfy { !isLive($0.pid) })
        #expect(controller.counters.forwardsDropped == 1)
    }

    @Test("a child ignoring SIGTERM is SIGKILLed at the deadline and reported")
    func killedAtDeadline() async throws {
        let controller = ChildController(events: ChildEvents(), scope: .trackedOnly)
        let child = try controller.spawn(request(["/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"]))
        #expect(await eventually { controller.descendants()?.contains { $0.pid == child.pid } ?? false })
        let start = ContinuousClock.now
        let report = await controller.stop(signal: SIGTERM, childOnly: false, deadline: .now + .milliseconds(400))
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(400) && elapsed < .seconds(2))
        #expect(report.deadlineReached)
        #expect(report.killed.contains { $0.pid == child.pid && $0.comm == "sh" })
        #expect(report.childStatus == .signaled(signal: SIGKILL, coreDumped: false))
        #expect(report.unkillable.isEmpty)
        #expect(!isLive(child.pid))
        #expect(controller.counters.descendantsKilled >= 1)
    }

    @Test("escalation skips the wait")
    func escalation() async throws {
        let controller = ChildController(events: ChildEvents(), scope: .trackedOnly)
        let child = try controller.spawn(request(["/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"]))
        #expect(await eventually { isLive(child.pid) })
        let start = ContinuousClock.now
        let stopping = Task { await controller.stop(signal: SIGTERM, childOnly: false, deadline: .now + .seconds(30)) }
        #expect(await eventually { controller.counters.signalsForwarded["SIGTERM"] == 1 })
        controller.killNow()
        let report = await stopping.value
        #expect(ContinuousClock.now - start < .seconds(3))
        #expect(report.childStatus?.code == 137)
        #expect(report.killed.contains { $0.pid == child.pid })
    }

    @Test("an escaped (setsid) descendant gets the stop signal and is killed at the deadline")
    func escapedDescendant() async throws {
        _ = subreaperOnce
        let controller = ChildController(events: ChildEvents(), scope: .trackedOnly)
        let child = try controller.spawn(request(["/bin/sh", "-c", "setsid sh -c 'trap \"\" TERM; exec sleep 300' & wait"]))
        var escaped: ProcessEntry?
        #expect(await eventually {
            escaped = controller.descendants()?.first { $0.pgid != child.pgid && $0.comm == "sleep" }
            return escaped != nil
        })
        let report = await controller.stop(signal: SIGTERM, childOnly: false, deadline: .now + .milliseconds(300))
        #expect(report.childStatus?.code == 143 || report.childStatus?.code == 0)
        #expect(report.killed.contains { $0.pid == escaped?.pid && $0.comm == "sleep" })
        #expect(escaped.map { !isLive($0.pid) } ?? false)
    }

    @Test("the forwarding table of §3.1")
    func forwardingTable() {
        var options = RunOptions()
        #expect(SignalAction.forReceived(SIGTERM, options: options, stopping: false) == .beginStop(send: SIGTERM))
        #expect(SignalAction.forReceived(SIGINT, options: options, stopping: false) == .beginStop(send: SIGINT))
        #expect(SignalAction.forReceived(SIGTERM, options: options, stopping: true) == .escalate)
        for sig in [SIGHUP, SIGQUIT, SIGUSR2, SIGWINCH] {
            #expect(SignalAction.forReceived(sig, options: options, stopping: false) == .forward(sig))
        }
        #expect(SignalAction.forReceived(SIGUSR1, options: options, stopping: false) == .snapshot(forwardFirst: false))
        #expect(SignalAction.forReceived(SIGCHLD, options: options, stopping: false) == .reap)
        #expect(SignalAction.forReceived(SIGALRM, options: options, stopping: false) == .ignore)
        options.stopSignal = SIGQUIT
        options.forwardUSR1 = true
        #expect(SignalAction.forReceived(SIGINT, options: options, stopping: false) == .beginStop(send: SIGQUIT))
        #expect(SignalAction.forReceived(SIGTERM, options: options, stopping: false) == .beginStop(send: SIGQUIT))
        #expect(SignalAction.forReceived(SIGUSR1, options: options, stopping: false) == .snapshot(forwardFirst: true))
    }

    @Test("stat lines: the command name may hold spaces and parentheses")
    func statParsing() throws {
        let line = "42 (a) b (c)) S 7 42 42 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 12345 0 0"
        let entry = try #require(ProcessTable.parseStat(line))
        #expect(entry.pid == 42 && entry.comm == "a) b (c)" && entry.ppid == 7 && entry.pgid == 42 && entry.startTime == 12345)
    }
}

import CDorySys
import Glibc
import Logging
import Synchronization

/// Owns the child and its descendants (spec/supervise.md §2–§5): spawns, reaps every zombie, forwards signals,
/// finds descendants and runs the stop sequence. Thread-safe; the Supervisor calls it from its serial queue
/// (spawn and reap there, so the pid is recorded before its SIGCHLD is handled) and reads `events`.
public final class ChildController: Sendable {
    /// Which zombies `reap()` collects and which processes count as descendants.
    public enum Scope: Sendable {
        /// Production (§3.2, §5.2): `waitpid(-1)` until empty; descendants are every process whose chain of
        /// parents reaches doryd. doryd spawns nothing else in run mode, so this is exact there.
        case allChildren
        /// For a host process that has other children (tests, embedding): reaps only the children's process
        /// groups and descendants seen in earlier scans; descendants are the children's groups and trees.
        case trackedOnly
    }

    /// A status `waitpid` returned.
    public enum Reaped: Sendable, Equatable {
        case child(pid: pid_t, status: ChildStatus)
        case orphan(pid: pid_t, status: ChildStatus)
    }

    /// The outcome of sending a signal to the child.
    public enum ForwardOutcome: Sendable, Equatable {
        case sent
        /// No child is alive: counted and dropped (§3.1).
        case noChild
        case failed(errno: Int32)
    }

    /// What the stop sequence did (§5.1 steps 2–4).
    public struct StopReport: Sendable, Equatable {
        /// The child's status, when it was reaped (before or during the stop); nil if it was never spawned.
        public var childStatus: ChildStatus?
        /// Processes SIGKILLed at the deadline or on escalation (`killed descendants at the deadline`).
        public var killed: [ProcessEntry] = []
        /// Processes still there 500 ms after SIGKILL (uninterruptible sleep): left behind.
        public var unkillable: [ProcessEntry] = []
        /// Whether the deadline (or an escalation) was reached with descendants left.
        public var deadlineReached = false
    }

    /// Counters for the metrics of §10.
    public struct Counters: Sendable, Equatable {
        public var signalsForwarded: [String: Int] = [:]
        public var reapedChild = 0
        public var reapedOrphan = 0
        public var descendantsKilled = 0
        public var forwardsDropped = 0
    }

    private struct Tracked {
        var child: SpawnedChild
        var status: ChildStatus?
    }

    private struct State {
        var current: Tracked?
        /// Process groups of the children spawned so far that may still have members.
        var groups: Set<pid_t> = []
        /// Descendants seen in scans: pid → start time.
        var known: [pid_t: UInt64] = [:]
        var escalated = false
        var sleeper: Task<Void, Never>?
        var counters = Counters()
    }

    public let events: ChildEvents
    public let scope: Scope
    private let selfPID: pid_t
    private let state = Mutex(State())
    private let logger = Logger(label: "doryd.child")

    public init(events: ChildEvents, scope: Scope = .allChildren) {
        self.events = events
        self.scope = scope
        selfPID = getpid()
    }

    /// `prctl(PR_SET_CHILD_SUBREAPER, 1)` unless doryd is PID 1 (§2.4). Returns the errno on failure
    /// (log WARN `event=child.subreaper_unavailable` and go on), nil on success or as PID 1.
    public static func becomeSubreaper() -> Int32? {
        if getpid() == 1 { return nil }
        return dory_set_child_subreaper() == 0 ? nil : errno
    }

    // MARK: Spawning

    /// Spawns a child (§2) and makes it the current one; emits `.started`. A failure spawns nothing.
    @discardableResult
    public func spawn(_ request: SpawnRequest) throws(SpawnFailure) -> SpawnedChild {
        let child = try state.withLock { s throws(SpawnFailure) -> SpawnedChild in
            let child = try ChildSpawner.spawn(request)
            s.current = Tracked(child: child)
            s.groups.insert(child.pgid)
            return child
        }
        logger.info("child started", metadata: [
            "pid": "\(child.pid)", "pgid": "\(child.pgid)", "path": "\(request.command[0])", "argc": "\(request.command.count)",
        ])
        events.yield(.started(pid: child.pid, pgid: child.pgid))
        return child
    }

    /// The current child while it has not been reaped.
    public var aliveChild: SpawnedChild? {
        state.withLock { s in s.current.flatMap { $0.status == nil ? $0.child : nil } }
    }

    /// The last child's status once reaped.
    public var lastStatus: ChildStatus? { state.withLock { $0.current?.status } }

    public var counters: Counters { state.withLock { $0.counters } }

    // MARK: Reaping (§3.2)

    /// Collects every zombie that is ready (on each SIGCHLD and once a second); emits `.exited` for the child
    /// and `.orphanReaped` for anything else. Never waits for the child's pid alone.
    @discardableResult
    public func reap() -> [Reaped] {
        var reaped: [(pid_t, Int32)] = []
        switch scope {
        case .allChildren:
            drain(-1, into: &reaped)
        case .trackedOnly:
            let (groups, known) = state.withLock { ($0.groups, Array($0.known.keys)) }
            for group in groups { drain(-group, into: &reaped) }
            for pid in known { drain(pid, into: &reaped) }
        }
        var results: [Reaped] = []
        for (pid, raw) in reaped {
            guard let status = ChildStatus(waitStatus: raw) else { continue }
            let child = state.withLock { s -> SpawnedChild? in
                s.known[pid] = nil
                if let current = s.current, current.child.pid == pid, current.status == nil {
                    s.current?.status = status
                    s.counters.reapedChild += 1
                    return current.child
                }
                s.counters.reapedOrphan += 1
                return nil
            }
            if let child {
                let uptime = Self.millis(child.spawnedAt.duration(to: .now))
                var metadata: Logger.Metadata = ["pid": "\(pid)", "uptime_ms": "\(uptime)"]
                switch status {
                case .exited(let code): metadata["exit_code"] = "\(code)"
                case .signaled(let signal, let core):
                    metadata["signal"] = "\(SignalNames.name(signal))"
                    metadata["core_dumped"] = "\(core)"
                }
                logger.info("child exited", metadata: metadata)
                results.append(.child(pid: pid, status: status))
                events.yield(.exited(pid: pid, status: status, uptimeMillis: uptime))
            } else {
                logger.debug("orphan reaped", metadata: ["event": "child.orphan_reaped", "pid": "\(pid)", "status": "\(status.code)"])
                results.append(.orphan(pid: pid, status: status))
                events.yield(.orphanReaped(pid: pid, status: status))
            }
        }
        return results
    }

    private func drain(_ target: pid_t, into reaped: inout [(pid_t, Int32)]) {
        while true {
            var status: Int32 = 0
            let pid = waitpid(target, &status, WNOHANG)
            if pid > 0 {
                reaped.append((pid, status))
                continue
            }
            if pid < 0 && errno == EINTR { continue }
            return  // 0: nothing ready; ECHILD: no child left
        }
    }

    // MARK: Signals (§3.1)

    /// Sends `signal` to the child's group, or to the child only. Dropped when no child is alive.
    @discardableResult
    public func forward(_ signal: Int32, childOnly: Bool) -> ForwardOutcome {
        guard let child = aliveChild else {
            state.withLock { $0.counters.forwardsDropped += 1 }
            return .noChild
        }
        // An unreaped child (even a zombie) keeps its pid and pgid from being reused.
        return send(signal, to: childOnly ? child.pid : -child.pgid)
    }

    private func send(_ signal: Int32, to target: pid_t) -> ForwardOutcome {
        if kill(target, signal) == 0 {
            state.withLock { $0.counters.signalsForwarded[SignalNames.name(signal), default: 0] += 1 }
            return .sent
        }
        let error = errno
        if error == EPERM {
            logger.warning("cannot signal a descendant", metadata: ["target": "\(target)", "signal": "\(SignalNames.name(signal))"])
        }
        return .failed(errno: error)
    }

    /// Sends `signal` to one scanned process after checking it is still the same one (pid and start time).
    private func sendChecked(_ signal: Int32, to entry: ProcessEntry) -> Bool {
        guard let now = ProcessTable.entry(pid: entry.pid), now.startTime == entry.startTime, !now.isGone else { return false }
        return send(signal, to: entry.pid) == .sent
    }

    // MARK: Descendants (§5.2)

    /// The live descendants now (the child, its group, re-parented orphans), or nil without a readable `/proc`.
    public func descendants() -> [ProcessEntry]? {
        guard let table = ProcessTable.scan() else { return nil }
        var found = ProcessTable.descendants(of: selfPID, in: table)
        if scope == .trackedOnly {
            let (groups, roots) = state.withLock { s -> (Set<pid_t>, Set<pid_t>) in
                var roots = Set(s.known.keys)
                if let current = s.current { roots.insert(current.child.pid) }
                return (s.groups, roots)
            }
            var parent: [pid_t: pid_t] = [:]
            for entry in table { parent[entry.pid] = entry.ppid }
            found = found.filter { entry in
                if groups.contains(entry.pgid) { return true }
                var pid = entry.pid
                var steps = 0
                while pid > 1, steps < 4096 {
                    if roots.contains(pid) { return true }
                    guard let next = parent[pid] else { return false }
                    pid = next
                    steps += 1
                }
                return false
            }
        }
        state.withLock { s in
            for entry in found { s.known[entry.pid] = entry.startTime }
            // Forget groups with no member left whose leader was reaped.
            let live = Set(found.map(\.pgid))
            s.groups = s.groups.filter { live.contains($0) || (s.current?.child.pgid == $0 && s.current?.status == nil) }
        }
        return found
    }

    // MARK: Stop sequence (§5.1 steps 2–4, §5.3, §9 step 2)

    /// Wakes a running stop sequence (call on each SIGCHLD, after `reap()`).
    public func noteSIGCHLD() {
        state.withLock { $0.sleeper }?.cancel()
    }

    /// Escalation (§5.5): the running stop sequence SIGKILLs every descendant at once.
    public func killNow() {
        let sleeper = state.withLock { s -> Task<Void, Never>? in
            s.escalated = true
            return s.sleeper
        }
        sleeper?.cancel()
    }

    /// Sends the stop signal, waits for the child and every descendant until `deadline`, then SIGKILLs what is
    /// left and reports it. With the child alive the signal goes to its group (the child only with `childOnly`)
    /// and, unless `childOnly`, once to each descendant outside the group; with the child gone, every remaining
    /// descendant gets it whatever `childOnly` says. Reaps as it goes.
    public func stop(signal: Int32, childOnly: Bool, deadline: ContinuousClock.Instant) async -> StopReport {
        reap()
        var report = StopReport()
        let scanned = descendants()
        if let child = aliveChild {
            _ = send(signal, to: childOnly ? child.pid : -child.pgid)
            if !childOnly, let scanned {
                for entry in scanned where entry.pgid != child.pgid { _ = sendChecked(signal, to: entry) }
            }
        } else if let scanned {
            signalRemaining(signal, scanned)
        }

        // Step 3: wait until the child is reaped and no descendant is left.
        while true {
            reap()
            let left = descendants()
            let childGone = aliveChild == nil
            if childGone && (left?.isEmpty ?? !groupAlive()) { break }
            let escalated = state.withLock { $0.escalated }
            if escalated || ContinuousClock.now >= deadline {
                report.deadlineReached = true
                report.killed = killRemaining(left ?? [])
                break
            }
            await pause(until: min(deadline, .now + .milliseconds(100)))
        }

        // Step 4 (continued): reap and re-scan every 50 ms for at most 500 ms.
        if report.deadlineReached {
            let end = ContinuousClock.now + .milliseconds(500)
            var left: [ProcessEntry] = []
            while true {
                reap()
                left = descendants() ?? []
                if left.isEmpty && aliveChild == nil { break }
                if ContinuousClock.now >= end { break }
                await pause(until: .now + .milliseconds(50))
            }
            report.unkillable = left
            if !left.isEmpty {
                logger.warning("unkillable descendants left behind", metadata: ["unkillable": "\(left.map(\.pid))"])
            }
        }
        report.childStatus = lastStatus
        state.withLock { $0.escalated = false }
        return report
    }

    private func groupAlive() -> Bool {
        guard let pgid = state.withLock({ $0.current?.child.pgid }) else { return false }
        return kill(-pgid, 0) == 0
    }

    private func signalRemaining(_ signal: Int32, _ scanned: [ProcessEntry]) {
        var signalledGroups = Set<pid_t>()
        let groups = state.withLock { $0.groups }
        for entry in scanned {
            if groups.contains(entry.pgid) {
                // A member of a child's group still holds that pgid: the group cannot have been recycled.
                if signalledGroups.insert(entry.pgid).inserted { _ = send(signal, to: -entry.pgid) }
            } else {
                _ = sendChecked(signal, to: entry)
            }
        }
    }

    /// SIGKILL: the child's group first, then each process outside it; logs the WARN line of step 4.
    private func killRemaining(_ left: [ProcessEntry]) -> [ProcessEntry] {
        var killed: [ProcessEntry] = []
        let child = state.withLock { $0.current }
        var groupKilled: pid_t?
        if let child, child.status == nil || left.contains(where: { $0.pgid == child.child.pgid }) {
            if send(SIGKILL, to: -child.child.pgid) == .sent { groupKilled = child.child.pgid }
        }
        for entry in left {
            if entry.pgid == groupKilled || sendChecked(SIGKILL, to: entry) { killed.append(entry) }
        }
        state.withLock { $0.counters.descendantsKilled += killed.count }
        if !killed.isEmpty {
            logger.warning("killed descendants at the deadline", metadata: [
                "killed": .array(killed.map { entry in
                    .dictionary(["pid": .stringConvertible(entry.pid), "pgid": .stringConvertible(entry.pgid),
                                 "ppid": .stringConvertible(entry.ppid), "comm": .string(entry.comm)])
                }),
            ])
        }
        return killed
    }

    private func pause(until instant: ContinuousClock.Instant) async {
        let task = Task { _ = try? await Task.sleep(until: instant, clock: .continuous) }
        let escalated = state.withLock { s -> Bool in
            s.sleeper = task
            return s.escalated
        }
        if escalated { task.cancel() }
        await task.value
        state.withLock { $0.sleeper = nil }
    }

    static func millis(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}

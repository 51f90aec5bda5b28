import Synchronization

/// What probes read: atomics and short locks only, never the processor, a state lock or disk I/O (spec §4.1).
final class RuntimeStatus: Sendable {
    private let phaseRaw = Atomic<UInt8>(Phase.initializing.rawValue)
    private let readyFlag = Atomic<Bool>(false)
    private let prestopFlag = Atomic<Bool>(false)
    private let shutdownFlag = Atomic<Bool>(false)
    private let stateBoundFlag = Atomic<Bool>(false)
    /// Monotonic milliseconds of the supervisor's last heartbeat.
    private let heartbeatMs = Atomic<Int64>(RuntimeStatus.monotonicMillis())
    private let readySinceMs = Atomic<Int64>(0)
    private let lastHealthMillis = Atomic<Int64>(0)
    let checks = CheckRegistry()
    /// The workload whose built-in checks (`Workload.probeChecks`) join the probes; nil in unit tests.
    private let workload: (any Workload)?

    init(workload: (any Workload)? = nil) {
        self.workload = workload
    }

    /// The workload's checks for `kind`, as probe lines.
    func workloadLines(_ kind: CheckKind) -> [CheckLine] {
        (workload?.probeChecks(kind) ?? []).map { CheckLine(name: $0.name, passed: $0.passed, detail: $0.detail) }
    }

    var phase: Phase { Phase(rawValue: phaseRaw.load(ordering: .acquiring)) ?? .failed }
    func setPhase(_ phase: Phase) { phaseRaw.store(phase.rawValue, ordering: .releasing) }

    var isReadyFlag: Bool { readyFlag.load(ordering: .acquiring) }
    func setReady(_ ready: Bool) {
        readyFlag.store(ready, ordering: .releasing)
        if ready { readySinceMs.store(RuntimeStatus.monotonicMillis(), ordering: .releasing) }
    }
    var prestopArrived: Bool { prestopFlag.load(ordering: .acquiring) }
    func markPrestop() { prestopFlag.store(true, ordering: .releasing) }
    var shutdownRequested: Bool { shutdownFlag.load(ordering: .acquiring) }
    func markShutdown() { shutdownFlag.store(true, ordering: .releasing) }
    var stateBound: Bool { stateBoundFlag.load(ordering: .acquiring) }
    func markStateBound() { stateBoundFlag.store(true, ordering: .releasing) }

    /// The healthy record was written: the crash streak is over (`dory_crashes_in_window` 0).
    var healthyMarked: Bool { healthyFlag.load(ordering: .acquiring) }
    func markHealthy() { healthyFlag.store(true, ordering: .releasing) }
    private let healthyFlag = Atomic<Bool>(false)

    func beat() { heartbeatMs.store(RuntimeStatus.monotonicMillis(), ordering: .releasing) }
    /// The `supervisor` check: the heartbeat ran within the last 10 s.
    var supervisorAlive: Bool { RuntimeStatus.monotonicMillis() - heartbeatMs.load(ordering: .acquiring) <= 10_000 }

    /// Seconds since ready (0 before).
    var uptimeSinceReadySec: Double {
        let since = readySinceMs.load(ordering: .acquiring)
        return since == 0 ? 0 : Double(RuntimeStatus.monotonicMillis() - since) / 1000
    }

    func noteHealthAnswer(wallMillis: Int64) { lastHealthMillis.store(wallMillis, ordering: .relaxed) }
    var lastHealthAnswerMillis: Int64? {
        let v = lastHealthMillis.load(ordering: .relaxed)
        return v == 0 ? nil : v
    }

    /// Readiness per §4.3: ping, phase (running only), prestop, shutdown, then custom readiness checks.
    func readiness() -> (ready: Bool, reason: String, lines: [CheckLine]) {
        var lines = [CheckLine(name: "ping", passed: true, detail: nil)]
        let phase = self.phase
        let phaseOK = phase == .running && readyFlag.load(ordering: .acquiring)
        lines.append(CheckLine(name: "phase", passed: phaseOK, detail: phaseOK ? nil : "phase is \(phase)"))
        lines.append(CheckLine(name: "prestop", passed: !prestopArrived, detail: prestopArrived ? "prestop received" : nil))
        lines.append(CheckLine(name: "shutdown", passed: !shutdownRequested, detail: shutdownRequested ? "shutdown requested" : nil))
        lines += workloadLines(.readiness)
        let builtinsPass = lines.allSatisfy(\.passed)
        if builtinsPass {
            for check in checks.results(.readiness) {
                lines.append(CheckLine(name: "custom:\(check.name)", passed: check.passed, detail: check.detail))
            }
        }
        let firstFailing = lines.first { !$0.passed }
        let reason = firstFailing.map { $0.name == "phase" ? phase.description : $0.name } ?? "ready"
        return (firstFailing == nil, reason, lines)
    }

    static func monotonicMillis() -> Int64 {
        let now = ContinuousClock.now - RuntimeStatus.origin
        return now.components.seconds * 1000 + now.components.attoseconds / 1_000_000_000_000_000
    }
    private static let origin = ContinuousClock.now
}

/// One line of a probe verdict.
struct CheckLine: Sendable {
    let name: String
    let passed: Bool
    /// Failure reason, or extra text for a passing line (the `recovery` line).
    let detail: String?
    var recovering = false
}

/// Custom checks and their latest results, published by the check timer (spec §4.3).
final class CheckRegistry: Sendable {
    struct Registered: Sendable {
        let kind: CheckKind
        let name: String
        let check: @Sendable () async throws -> Void
        var evaluated = false
        var passed = true
        var detail: String?
        var running = false
        /// Liveness: `onHealthCheckFailed` returned true for the current failure episode.
        var recovering = false
        var episodeOpen = false
    }
    struct Result: Sendable {
        let name: String
        let passed: Bool
        let detail: String?
        let recovering: Bool
    }
    private let entries = Mutex<[Registered]>([])

    func register(_ kind: CheckKind, _ name: String, _ check: @escaping @Sendable () async throws -> Void) {
        entries.withLock { list in
            list.removeAll { $0.kind == kind && $0.name == name }
            list.append(Registered(kind: kind, name: name, check: check))
        }
    }

    var isEmpty: Bool { entries.withLock { $0.isEmpty } }

    /// Latest results. Not yet evaluated: passing for liveness, failing for readiness.
    func results(_ kind: CheckKind) -> [Result] {
        entries.withLock { list in
            list.filter { $0.kind == kind }.map { entry in
                if !entry.evaluated {
                    return Result(name: entry.name, passed: kind == .liveness, detail: kind == .liveness ? nil : "not yet evaluated", recovering: false)
                }
                return Result(name: entry.name, passed: entry.passed, detail: entry.detail, recovering: entry.recovering)
            }
        }
    }

    /// Checks due for evaluation: of `kinds`, not already running; marks them running.
    func beginRound(kinds: Set<CheckKindKey>) -> [(index: Int, kind: CheckKind, name: String, check: @Sendable () async throws -> Void)] {
        entries.withLock { list in
            var due: [(Int, CheckKind, String, @Sendable () async throws -> Void)] = []
            for i in list.indices where kinds.contains(CheckKindKey(list[i].kind)) && !list[i].running {
                list[i].running = true
                due.append((i, list[i].kind, list[i].name, list[i].check))
            }
            return due
        }
    }

    /// Publishes a result; returns true when a liveness check just went from passing to failing (a new episode).
    func finish(kind: CheckKind, name: String, error: String?) -> Bool {
        entries.withLock { list in
            guard let i = list.firstIndex(where: { $0.kind == kind && $0.name == name }) else { return false }
            list[i].running = false
            list[i].evaluated = true
            list[i].passed = error == nil
            list[i].detail = error
            if error == nil {
                list[i].episodeOpen = false
                list[i].recovering = false
                return false
            }
            if !list[i].episodeOpen {
                list[i].episodeOpen = true
                list[i].recovering = false
                return kind == .liveness
            }
            return false
        }
    }

    func setRecovering(name: String, _ recovering: Bool) {
        entries.withLock { list in
            if let i = list.firstIndex(where: { $0.kind == .liveness && $0.name == name }) { list[i].recovering = recovering }
        }
    }
}

/// Hashable stand-in for `CheckKind` in sets.
struct CheckKindKey: Hashable, Sendable {
    let isLiveness: Bool
    init(_ kind: CheckKind) { isLiveness = kind == .liveness }
}

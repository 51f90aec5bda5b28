import Glibc

/// Collects the child events the command workload waits on (readiness, exits, the stop) and wakes one waiter at a
/// time: `startup()`, `run()` and the restart delay are sequential, so one waiter suffices.
actor ChildWaiter {
    /// What ended a wait.
    enum Outcome: Sendable, Equatable {
        case ready
        case ended(ChildStatus)
        case stop
        case timedOut
    }

    private var readyPIDs: Set<pid_t> = []
    private var exited: [pid_t: ChildStatus] = [:]
    private var stopBegun = false
    private var wake: CheckedContinuation<Void, Never>?
    private var timer: Task<Void, Never>?

    func noteReady(_ pid: pid_t) {
        readyPIDs.insert(pid)
        pulse()
    }

    func noteExited(_ pid: pid_t, _ status: ChildStatus) {
        exited[pid] = status
        pulse()
    }

    func noteStop() {
        stopBegun = true
        pulse()
    }

    /// Waits for `pid` to become ready (with `wantReady`) or end, for the stop, or for `deadline`.
    /// Pass pid 0 to wait only for the stop or the deadline (the restart delay).
    func wait(for pid: pid_t, wantReady: Bool, deadline: ContinuousClock.Instant?) async -> Outcome {
        while true {
            if wantReady, readyPIDs.contains(pid) { return .ready }
            if let status = exited[pid] { return .ended(status) }
            if stopBegun { return .stop }
            if let deadline, ContinuousClock.now >= deadline { return .timedOut }
            await sleep(until: deadline)
        }
    }

    private func sleep(until deadline: ContinuousClock.Instant?) async {
        await withCheckedContinuation { continuation in
            wake = continuation
            if let deadline {
                timer = Task { [weak self] in
                    try? await Task.sleep(until: deadline, clock: .continuous)
                    await self?.pulse()
                }
            }
        }
        timer?.cancel()
        timer = nil
    }

    private func pulse() {
        if let wake {
            self.wake = nil
            wake.resume()
        }
    }
}

import Synchronization

/// The `?wait=true` callers of `POST /v1/events` (§2.2): each waits for the summaries of its own invocation ids; the
/// worker completes one id at a time. Register before enqueueing so a fast worker cannot finish first.
final class SummaryWaiters: Sendable {
    /// One waiting request: its ids in record order and the summaries found so far.
    final class Wait: Sendable {
        private struct State {
            var ids: [String]
            var found: [String: InvocationSummary] = [:]
            var continuation: CheckedContinuation<[InvocationSummary]?, Never>?
            var finished = false
            var result: [InvocationSummary]??
        }

        private let state: Mutex<State>
        let ids: [String]

        init(ids: [String]) {
            self.ids = ids
            state = Mutex(State(ids: ids))
        }

        /// Records one summary; resolves the wait once all are in.
        func fill(_ id: String, _ summary: InvocationSummary) {
            let resume = state.withLock { s -> (CheckedContinuation<[InvocationSummary]?, Never>, [InvocationSummary])? in
                guard !s.finished else { return nil }
                s.found[id] = summary
                guard s.found.count == s.ids.count else { return nil }
                let all = s.ids.compactMap { s.found[$0] }
                s.finished = true
                s.result = .some(all)
                guard let c = s.continuation else { return nil }
                s.continuation = nil
                return (c, all)
            }
            if let (c, all) = resume { c.resume(returning: all) }
        }

        /// Ends the wait without summaries (timeout, shutdown).
        func giveUp() {
            let c = state.withLock { s -> CheckedContinuation<[InvocationSummary]?, Never>? in
                guard !s.finished else { return nil }
                s.finished = true
                s.result = .some(nil)
                let c = s.continuation
                s.continuation = nil
                return c
            }
            c?.resume(returning: nil)
        }

        /// All summaries in id order, or nil when the wait timed out or was given up.
        func result(timeout: Duration) async -> [InvocationSummary]? {
            let timer = Task { [self] in
                try? await Task.sleep(for: timeout)
                if !Task.isCancelled { giveUp() }
            }
            defer { timer.cancel() }
            return await withCheckedContinuation { (c: CheckedContinuation<[InvocationSummary]?, Never>) in
                let done = state.withLock { s -> [InvocationSummary]?? in
                    if let r = s.result { return .some(r) }
                    s.continuation = c
                    return nil
                }
                if let done { c.resume(returning: done) }
            }
        }
    }

    private let waits = Mutex<[String: Wait]>([:])

    /// A wait for `ids`, registered at once.
    func register(_ ids: [String]) -> Wait {
        let wait = Wait(ids: ids)
        waits.withLock { w in for id in ids { w[id] = wait } }
        return wait
    }

    /// Drops a wait's registrations (after it resolved, or when its events were not queued).
    func remove(_ wait: Wait) {
        waits.withLock { w in for id in wait.ids where w[id] === wait { w.removeValue(forKey: id) } }
    }

    /// The worker delivered `summary`: completes the wait holding its id, if any.
    func complete(_ summary: InvocationSummary) {
        let wait = waits.withLock { $0.removeValue(forKey: summary.invocationId) }
        wait?.fill(summary.invocationId, summary)
    }

    /// Resolves every wait without summaries (shutdown: the callers answer 202 with their ids).
    func giveUpAll() {
        let all = waits.withLock { w -> [Wait] in
            let all = Array(w.values)
            w.removeAll()
            return all
        }
        for wait in all { wait.giveUp() }
    }
}

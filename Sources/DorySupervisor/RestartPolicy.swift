/// The in-pod restart policy of spec/supervise.md §9 as a pure state machine: given how a child ended and
/// when, it says whether to restart, after which delay, or that the budget is spent.
public struct RestartPolicy: Sendable {
    public let kind: RestartPolicyKind
    /// Restarts allowed within any `window` seconds.
    public let budget: Int
    public let windowSeconds: Double
    /// Times (seconds on the caller's monotonic clock) of the restarts already made.
    public private(set) var restartTimes: [Double] = []
    /// In-pod restarts made in this boot (`DORY_CHILD_RESTARTS` of the next child).
    public private(set) var restartsMade = 0

    public init(kind: RestartPolicyKind, budget: Int = 5, windowSeconds: Double = 300) {
        self.kind = kind
        self.budget = budget
        self.windowSeconds = windowSeconds
    }

    public init(options: RunOptions) {
        self.init(kind: options.restartPolicy, budget: options.restartBudget, windowSeconds: Double(options.restartWindowSeconds))
    }

    /// How a child's end looks to the policy.
    public enum Ending: Sendable, Equatable {
        /// It ended on its own (or missed its readiness deadline: mapped status 3) in starting or running.
        case onItsOwn(mappedStatus: Int32)
        /// The spawn failed (127/126): never retried.
        case spawnFailed
        /// It ended in draining or stopping, or after doryd began the stop: never restarted.
        case duringStop
    }

    public enum Decision: Sendable, Equatable {
        /// Spawn again after `delaySeconds`; `number` is this restart's number (1 for the first of the boot),
        /// `budgetLeft` the restarts still allowed in the window after this one.
        case restart(delaySeconds: Double, number: Int, budgetLeft: Int)
        /// One more restart would exceed the budget: end the boot with the child's mapped status.
        case budgetSpent
        /// No restart: policy `never`, a mapped 0, a spawn failure or an end during the stop.
        case end
    }

    /// The delay before the next restart when `inWindow` restarts are already in the window: 1, 2, 4, 8, 16, 30, 30 …
    public static func delay(restartsInWindow inWindow: Int) -> Double {
        inWindow >= 5 ? 30 : Double(1 << inWindow)
    }

    /// Decides for a child that ended at `now`; a `.restart` is recorded as made at `now`.
    public mutating func decide(_ ending: Ending, now: Double) -> Decision {
        guard kind == .onFailure, case .onItsOwn(let mapped) = ending, mapped != 0 else { return .end }
        restartTimes.removeAll { now - $0 >= windowSeconds }
        let inWindow = restartTimes.count
        guard inWindow < budget else { return .budgetSpent }
        restartTimes.append(now)
        restartsMade += 1
        return .restart(delaySeconds: Self.delay(restartsInWindow: inWindow), number: restartsMade, budgetLeft: budget - inWindow - 1)
    }
}

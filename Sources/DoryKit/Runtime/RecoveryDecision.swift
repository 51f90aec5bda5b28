/// The strategy doryd takes at boot (spec/dory-runtime.md §8).
public struct RecoveryDecision: Sendable, Equatable, CustomStringConvertible {
    public enum Strategy: String, Sendable { case fresh, restore, goldenReset = "golden_reset", goldenBackoff = "golden_backoff" }

    public let strategy: Strategy
    /// `first_start`, `pod_replacement`, `normal_restart`, `migration`, `migration_no_state`,
    /// `restart_without_state`, `state_invalid` or `rapid_restart`.
    public let reason: String
    public let crashesInWindow: Int
    public let restartCount: Int
    /// Seconds waited before startup (only for `golden_backoff`).
    public let backoffSec: Double
    public var restores: Bool { strategy == .restore }
    public let resetsCaches: Bool
    public var isGolden: Bool { strategy == .goldenReset || strategy == .goldenBackoff }
    /// Logged at WARN rather than INFO.
    public var isWarning: Bool { isGolden || reason == "migration_no_state" || reason == "restart_without_state" }

    public init(strategy: Strategy, reason: String, crashesInWindow: Int, restartCount: Int, backoffSec: Double, resetsCaches: Bool) {
        self.strategy = strategy
        self.reason = reason
        self.crashesInWindow = crashesInWindow
        self.restartCount = restartCount
        self.backoffSec = backoffSec
        self.resetsCaches = resetsCaches
    }

    public var description: String { "\(strategy.rawValue)/\(reason)" }

    /// The outcome of the boot scan of `snapshots/` (§6.4).
    public enum ScanOutcome: Sendable, Equatable { case valid, none, invalid }

    /// The decision table of §8: the first matching row wins.
    public static func decide(
        crashesInWindow c: Int, restartCount n: Int, scan: ScanOutcome, isMigrating: Bool,
        threshold: Int, backoffBaseSec: Double, backoffMaxSec: Double
    ) -> RecoveryDecision {
        func make(_ s: Strategy, _ reason: String, reset: Bool, backoff: Double = 0) -> RecoveryDecision {
            RecoveryDecision(strategy: s, reason: reason, crashesInWindow: c, restartCount: n, backoffSec: backoff, resetsCaches: reset)
        }
        if c >= threshold {
            let exponent = min(c - threshold, 62)
            let raw = backoffBaseSec * Double(sign: .plus, exponent: exponent, significand: 1)
            return make(.goldenBackoff, "rapid_restart", reset: true, backoff: min(raw, backoffMaxSec))
        }
        switch (scan, isMigrating, n) {
        case (.invalid, _, _): return make(.goldenReset, "state_invalid", reset: true)
        case (.valid, true, _): return make(.restore, "migration", reset: false)
        case (.none, true, _): return make(.fresh, "migration_no_state", reset: false)
        case (.valid, false, 0): return make(.restore, "pod_replacement", reset: false)
        case (.none, false, 0): return make(.fresh, "first_start", reset: false)
        case (.valid, false, _): return make(.restore, "normal_restart", reset: true)
        case (.none, false, _): return make(.fresh, "restart_without_state", reset: true)
        }
    }

    /// Before the decision is taken (the context of a processor built in tests).
    public static let undecided = RecoveryDecision(
        strategy: .fresh, reason: "first_start", crashesInWindow: 0, restartCount: 0, backoffSec: 0, resetsCaches: false)
}

/// Pod identity from the environment (spec §3.4): an empty value counts as unset.
public struct PodIdentity: Sendable, Equatable {
    public var podName: String
    public var namespace: String
    public var podUID: String?
    public var isMigrating: Bool
    public var previousPodName: String?
    /// `podName` fell back to `unknown` (logged at WARN).
    public var podNameUnknown: Bool

    public init(environment env: [String: String]) {
        func pick(_ names: String...) -> String? {
            for name in names { if let v = env[name], !v.isEmpty { return v } }
            return nil
        }
        let name = pick("DORY_POD_NAME", "POD_NAME")
        podName = name ?? "unknown"
        podNameUnknown = name == nil
        namespace = pick("DORY_POD_NAMESPACE", "POD_NAMESPACE") ?? "default"
        podUID = pick("DORY_POD_UID", "POD_UID")
        isMigrating = pick("DORY_IS_MIGRATING").map { ["true", "1"].contains($0.lowercased()) } ?? false
        previousPodName = pick("DORY_MIGRATED_FROM")
    }
}

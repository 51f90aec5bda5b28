import DoryState
import Glibc

/// A seeded generator (SplitMix64), so a failing kill sequence can be replayed with the same seed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// When a kill round fires its SIGKILL, relative to what.
enum KillMoment: String, CaseIterable, Sendable {
    /// After the `http.listening` line: the lock is taken, temp files are cleaned, the scan and restore run.
    case afterListening
    /// After `/ready` answers 200: the first interval snapshots are under way.
    case afterReady
    /// After the first `snapshot saved` line of this boot: the next write is under way.
    case afterSave
    /// After a snapshot temp file appeared in `snapshots/`: the write, fsync, rename, directory fsync and pruning.
    case afterTempFile
    /// After a `/prestop` answered 200 (its generation is acknowledged); interval saves continue in draining.
    case afterPrestop
}

/// What one kill round saw, for the failure message and the summary.
struct KillRoundResult: CustomStringConvertible {
    var round: Int
    var moment: KillMoment
    var delayMillis: Int
    var acknowledged: UInt64
    var newestOnDisk: UInt64?
    var temporaryFiles: [String]
    var problems: [String] = []
    var description: String {
        "round \(round) \(moment.rawValue)+\(delayMillis)ms acked=\(acknowledged) newest=\(newestOnDisk.map(String.init) ?? "none") "
            + "temps=\(temporaryFiles) \(problems.joined(separator: "; "))"
    }
}

extension Sandbox {
    /// `gzip -dc` and parse the snapshot behind `fd` (kept open so a later prune cannot remove it under the check);
    /// closes `fd`. Returns a problem, or nil when the file is a valid snapshot of `generation`.
    func checkSnapshot(fd: Int32, generation: UInt64) -> String? {
        defer { close(fd) }
        do {
            let snapshot = try Snapshots.decode(fd: fd, what: "generation \(generation)", sandbox: self)
            guard snapshot.generation == Int64(generation) else {
                return "generation \(generation) holds generation \(String(describing: snapshot.generation))"
            }
            guard snapshot.envelope["state"]?.object != nil else { return "generation \(generation) has no state object" }
            return nil
        } catch {
            return "newest generation \(generation) does not decode: \(error)"
        }
    }
}

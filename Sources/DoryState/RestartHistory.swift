// Rapid-restart arithmetic over the journal's records (spec §7 definitions).

/// restart_count, the crash streak and crashes_in_window of a boot, computed from the journal.
public struct RestartHistory: Sendable, Equatable {
    /// `RESTART_COUNT` when given; else earlier boots of this pod UID, or with no UID the earlier boots after the
    /// last one that ended clean.
    public let restartCount: Int
    /// Crashes after the most recent boot that ended clean or wrote a healthy record.
    public let streak: Int
    /// Crashes of the streak dated within the window (`RESTART_COUNT` when given).
    public let crashesInWindow: Int
    /// crashesInWindow ≥ threshold.
    public let isRapidRestart: Bool
    /// The highest `generation_hwm` of any boot record (0 when none).
    public let generationHighWaterMark: Int64
    /// Earlier boots considered (this pod UID's, or all without a UID).
    public let earlierBoots: Int

    /// - Parameters:
    ///   - records: the journal's records, oldest first (before or after this boot's record was appended).
    ///   - currentBootID: this boot's id; its own records are ignored.
    ///   - nowMillis: wall-clock now; a journal time in the future counts as now.
    ///   - podUID: `DORY_POD_UID`/`POD_UID`, nil or empty when unknown.
    ///   - windowMillis: `rapid_restart_window_sec` in ms.
    ///   - threshold: `rapid_restart_threshold`.
    ///   - restartCountOverride: `RESTART_COUNT` when set.
    public static func analyze(records: [JournalRecord], currentBootID: String?, nowMillis: Int64, podUID: String?,
                               windowMillis: Int64, threshold: Int, restartCountOverride: Int? = nil) -> RestartHistory {
        var cleanEnded = Set<String>()
        var healthy = Set<String>()
        var allBoots: [BootRecord] = []
        var hwm: Int64 = 0
        for record in records {
            switch record {
            case .boot(let b):
                hwm = max(hwm, b.generationHighWaterMark)
                if b.bootID != currentBootID { allBoots.append(b) }
            case .healthy(let h): healthy.insert(h.bootID)
            case .end(let e): if e.clean { cleanEnded.insert(e.bootID) }
            }
        }
        let uid = (podUID?.isEmpty ?? true) ? nil : podUID
        let boots = uid.map { u in allBoots.filter { $0.podUID == u } } ?? allBoots

        // The streak starts after the most recent boot that ended clean or became healthy.
        let lastGood = boots.lastIndex { cleanEnded.contains($0.bootID) || healthy.contains($0.bootID) }
        let streakStart = lastGood.map { $0 + 1 } ?? 0
        var streak = 0
        var inWindow = 0
        for i in streakStart..<boots.count where !cleanEnded.contains(boots[i].bootID) {
            streak += 1
            // A crash is dated by the start of the boot that followed it (this boot: now).
            let dated = min(i + 1 < boots.count ? boots[i + 1].startedAtMillis : nowMillis, nowMillis)
            if dated >= nowMillis - windowMillis { inWindow += 1 }
        }

        let restartCount: Int
        if let restartCountOverride {
            restartCount = restartCountOverride
        } else if uid != nil {
            restartCount = boots.count
        } else {
            let lastClean = boots.lastIndex { cleanEnded.contains($0.bootID) }
            restartCount = boots.count - (lastClean.map { $0 + 1 } ?? 0)
        }
        let crashes = restartCountOverride ?? inWindow
        return RestartHistory(restartCount: restartCount, streak: streak, crashesInWindow: crashes,
                              isRapidRestart: crashes >= threshold, generationHighWaterMark: hwm,
                              earlierBoots: boots.count)
    }

    /// The golden backoff of §8 row 1: min(base · 2^(c − threshold), max) seconds.
    public static func backoffSeconds(crashesInWindow c: Int, threshold: Int, baseSeconds: Double,
                                      maxSeconds: Double) -> Double {
        guard c >= threshold else { return 0 }
        let exponent = min(c - threshold, 62)
        return min(baseSeconds * Double(1 << exponent), maxSeconds)
    }
}

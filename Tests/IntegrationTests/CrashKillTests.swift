import DoryState
import Glibc
import Testing

/// §12 case 54, the kill test: `doryd demo --state-bytes 1048576` with `DORY_SNAPSHOT_INTERVAL_SEC=0.05
/// RESTART_COUNT=0`, SIGKILLed at random moments and restarted on the same state directory. After every kill the
/// newest file decodes (`gzip -dc` + JSON), is never older than the last acknowledged save (a `/prestop` 200 or a
/// `snapshot saved` line), and temp files never pile up: the next start deletes those the kill left behind.
///
/// `DORY_KILL_TEST_ROUNDS` (default 200) and `DORY_KILL_TEST_SEED` change the count and the random sequence.
@Suite struct CrashKillTests {
    static var rounds: Int { getenv("DORY_KILL_TEST_ROUNDS").flatMap { Int(String(cString: $0)) } ?? 200 }
    static var seed: UInt64 { getenv("DORY_KILL_TEST_SEED").flatMap { UInt64(String(cString: $0)) } ?? 0x5EED_0054 }

    @Test func case54_killTest() throws {
        let rounds = Self.rounds, seed = Self.seed
        try withSandbox { sandbox in
            var generator = SeededGenerator(seed: seed)
            // A 1 MiB save takes about 0.7 s in a debug build, and a prestop first waits for the save in flight: the
            // sandbox's 1 s final-save bound would turn loaded moments into 500 save_timeout answers.
            let options = LaunchOptions.demo(["DORY_SNAPSHOT_INTERVAL_SEC": "0.05", "RESTART_COUNT": "0",
                                              "DORY_FINAL_SAVE_TIMEOUT_SEC": "10", "DORY_SHUTDOWN_TIMEOUT_SEC": "10"],
                                             arguments: ["--state-bytes", "1048576"])
            let processorDir = sandbox.path("state/itest-pod")
            let snapshotsDir = processorDir + "/snapshots"
            var lastAcknowledged: UInt64 = 0
            /// Temp files a kill left behind, which the next start must delete.
            var leftBehind: [String] = []
            var results: [KillRoundResult] = []
            var failures: [KillRoundResult] = []
            var checkSeconds = 0.0
            let start = Poll.now()

            for round in 1...rounds {
                let moment = KillMoment.allCases[Int(generator.next() % UInt64(KillMoment.allCases.count))]
                // 0–150 ms; after a temp file appeared 0–15 ms, since writing 800 KB lasts only a few ms and the longer
                // delays would nearly always land after the rename.
                let delay = Int(generator.next() % 151) / (moment == .afterTempFile ? 10 : 1)
                var result = KillRoundResult(round: round, moment: moment, delayMillis: delay, acknowledged: 0, temporaryFiles: [])
                let daemon = try sandbox.launch(options)
                // http.listening comes after step (f): the temp files of the previous kill must be gone by now.
                let stillThere = leftBehind.filter { Files.exists($0) }
                if !stillThere.isEmpty { result.problems.append("temp files of the previous kill survived the start: \(stillThere)") }

                var prestopGeneration: UInt64?
                switch moment {
                case .afterListening:
                    break
                case .afterReady:
                    try daemon.waitReady(timeout: .seconds(30))
                case .afterSave:
                    try daemon.waitReady(timeout: .seconds(30))
                    if daemon.waitForSave(timeout: .seconds(15)) == nil { result.problems.append("no snapshot saved within 15 s") }
                case .afterTempFile:
                    try daemon.waitReady(timeout: .seconds(30))
                    let appeared = Poll.until(timeout: .seconds(10), interval: .milliseconds(1)) {
                        !temporaryFiles(in: snapshotsDir).isEmpty
                    }
                    if !appeared { result.problems.append("no snapshot temp file appeared within 10 s") }
                case .afterPrestop:
                    try daemon.waitReady(timeout: .seconds(30))
                    let response = try daemon.get("/prestop", timeout: .seconds(20))
                    if response.status == 200, let g = JSON.object(response.body)?["generation"]?.int {
                        prestopGeneration = UInt64(g)
                    } else {
                        result.problems.append("/prestop answered \(response.status) \(response.text)")
                    }
                }
                Poll.nap(.milliseconds(Int64(delay)))
                daemon.kill9()
                guard daemon.process.exitStatus()?.signal == SIGKILL else {
                    result.problems.append("the daemon was not killed: \(String(describing: daemon.process.exitStatus())); \(daemon.logTail)")
                    failures.append(result)
                    break
                }

                // Every save this boot reported (its log line follows the directory fsync) is acknowledged.
                let acknowledged = max(prestopGeneration ?? 0, daemon.saved().compactMap(\.generation).max() ?? 0)
                lastAcknowledged = max(lastAcknowledged, acknowledged)
                result.acknowledged = lastAcknowledged
                let newest = Snapshots.generations(in: snapshotsDir).last
                result.newestOnDisk = newest
                if let newest {
                    if newest < lastAcknowledged {
                        result.problems.append("newest generation \(newest) is older than the acknowledged \(lastAcknowledged)")
                    }
                    let fd = open(Snapshots.path(in: snapshotsDir, generation: newest), O_RDONLY | O_CLOEXEC)
                    if fd < 0 {
                        result.problems.append("cannot open generation \(newest): \(String(cString: strerror(errno)))")
                    } else {
                        let checkStart = Poll.now()
                        if let problem = sandbox.checkSnapshot(fd: fd, generation: newest) { result.problems.append(problem) }
                        checkSeconds += Poll.seconds(since: checkStart)
                    }
                } else if lastAcknowledged > 0 {
                    result.problems.append("no snapshot on disk after generation \(lastAcknowledged) was acknowledged")
                }
                let temps = temporaryFiles(in: snapshotsDir).map { snapshotsDir + "/" + $0 }
                    + temporaryFiles(in: processorDir).map { processorDir + "/" + $0 }
                result.temporaryFiles = temps.map { String($0.split(separator: "/").last!) }
                // One serial writer plus the journal: a kill can leave at most a couple; more means they pile up.
                if temps.count > 2 { result.problems.append("\(temps.count) temp files: \(temps)") }
                leftBehind = temps
                results.append(result)
                if !result.problems.isEmpty {
                    failures.append(result)
                    if failures.count >= 5 { break }
                }
            }

            // One last start must clean what the final kill left.
            let last = try sandbox.launch(options)
            let survivors = leftBehind.filter { Files.exists($0) }
            #expect(survivors.isEmpty, "temp files of the last kill survived a start: \(survivors)")
            try last.waitReady(timeout: .seconds(30))
            let restored = try last.decision()
            #expect(restored.strategy == "restore", "after \(results.count) kills: \(restored)")
            #expect((restored.generation ?? 0) >= Int64(lastAcknowledged), "restored \(restored) before acknowledged \(lastAcknowledged)")
            #expect(try last.stop(timeout: .seconds(20)).code == 0)

            let elapsed = Poll.seconds(since: start)
            let withTemps = results.filter { !$0.temporaryFiles.isEmpty }.count
            let byMoment = Dictionary(grouping: results, by: \.moment).map { "\($0.key.rawValue): \($0.value.count)" }.sorted()
            let summary = "seed \(seed): \(results.count) kills in \(Int(elapsed)) s (decoding \(Int(checkSeconds)) s), \(withTemps) left temp files, "
                + "last acknowledged generation \(lastAcknowledged), moments \(byMoment)"
            print("case54: " + summary)
            #expect(results.count >= rounds, "stopped early: \(summary)")
            #expect(failures.isEmpty, Comment(rawValue: "\(summary)\n" + failures.map(\.description).joined(separator: "\n")))
        }
    }
}

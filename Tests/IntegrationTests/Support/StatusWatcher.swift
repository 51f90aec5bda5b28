import DoryHTTP
import Glibc
import Synchronization

/// Polls one path on its own thread (every ~10 ms) until stopped, recording each status with its time, so a test can
/// assert "never 200" or "503 throughout" over a stretch of a daemon's life.
final class StatusWatcher: Sendable {
    struct Observation: Sendable {
        let at: ContinuousClock.Instant
        let status: Int?
    }
    private let observations = Mutex<[Observation]>([])
    private let running = Atomic<Bool>(true)
    private let finished = Atomic<Bool>(false)

    init(port: Int, path: String, headers: HTTPHeaders = [:]) {
        Threads.start { [self] in
            while running.load(ordering: .acquiring) {
                let status = try? HTTPClient.request(path: path, headers: headers, to: .tcp(host: "127.0.0.1", port: port),
                                                     timeout: .seconds(2)).status
                observations.withLock { $0.append(Observation(at: .now, status: status)) }
                Poll.nap(.milliseconds(10))
            }
            finished.store(true, ordering: .releasing)
        }
    }

    /// Stops polling and returns what was seen.
    func stop() -> [Observation] {
        running.store(false, ordering: .releasing)
        _ = Poll.until(timeout: .seconds(5), interval: .milliseconds(2)) { finished.load(ordering: .acquiring) }
        return observations.withLock { $0 }
    }

    var seen: [Observation] { observations.withLock { $0 } }

    /// Statuses answered (failed connections left out).
    func statuses() -> [Int] { seen.compactMap(\.status) }
}

extension Daemon {
    /// `snapshot.saved` records, optionally of one reason.
    func saved(reason: String? = nil) -> [JSONObjectBox] {
        events("snapshot.saved").filter { reason == nil || $0["reason"]?.string == reason }.map(JSONObjectBox.init)
    }
}

import DoryState
/// A record with its generation read out.
struct JSONObjectBox {
    let record: JSONObject
    var generation: UInt64? { record["generation"]?.int.map { UInt64($0) } }
    var reason: String? { record["reason"]?.string }
}

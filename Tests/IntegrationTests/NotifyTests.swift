import DoryState
import Glibc
import Testing

/// §12 case 75: sd_notify through a real datagram socket.
@Suite struct NotifyTests {
    // Case 75 (first part): no NOTIFY_SOCKET → no error; a socket → STATUS= lines, READY=1 once, STOPPING=1, a final
    // STATUS=, in that order.
    @Test func case75_notifySequence() throws {
        try withSandbox { sandbox in
            let plain = try sandbox.launch(.demo())
            try plain.waitReady()
            #expect(try plain.stop().code == 0)
            #expect(!plain.records.contains { ["error", "critical"].contains($0["level"]?.string ?? "") }, "\(plain.logTail)")

            let socket = try NotifySocket(path: sandbox.path("notify.sock"))
            defer { socket.close() }
            let daemon = try sandbox.launch(.demo(["NOTIFY_SOCKET": socket.path]))
            try daemon.waitReady()
            #expect(Poll.until(timeout: .seconds(2)) { socket.lines.contains("READY=1") })
            #expect(try daemon.stop().code == 0)
            #expect(Poll.until(timeout: .seconds(2)) { socket.lines.last?.hasPrefix("STATUS=") == true && socket.lines.contains("STOPPING=1") })
            let lines = socket.lines.filter { !$0.hasPrefix("WATCHDOG=") }
            let ready = lines.indices.filter { lines[$0] == "READY=1" }
            let stopping = lines.indices.filter { lines[$0] == "STOPPING=1" }
            #expect(ready.count == 1, "\(lines)")
            #expect(stopping.count == 1, "\(lines)")
            if let r = ready.first, let s = stopping.first {
                #expect(lines[..<r].contains { $0.hasPrefix("STATUS=") }, "no STATUS= before READY=1: \(lines)")
                #expect(r < s)
                #expect(lines[(s + 1)...].contains { $0.hasPrefix("STATUS=") }, "no final STATUS= after STOPPING=1: \(lines)")
            }
            #expect(lines.contains("STATUS=initializing") && lines.contains("STATUS=starting"), "\(lines)")
            #expect(lines.last?.hasPrefix("STATUS=stopped") == true, "\(lines)")
        }
    }

    /// Counts WATCHDOG=1 pings over `window` for a doryd started with WATCHDOG_USEC and WATCHDOG_PID.
    static func watchdogPings(usec: String, pidIsSelf: Bool, window: Double) throws -> (count: Int, gaps: [Double]) {
        try withSandbox { sandbox in
            let socket = try NotifySocket(path: sandbox.path("notify.sock"))
            defer { socket.close() }
            var options = LaunchOptions.demo(["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": usec])
            if pidIsSelf { options.watchdogPIDIsSelf = true } else { options.environment["WATCHDOG_PID"] = "1" }
            let daemon = try sandbox.launch(options)
            try daemon.waitReady()
            let start = Poll.now()
            _ = Poll.until(timeout: .seconds(Int64(window) + 1)) { Poll.seconds(since: start) >= window }
            let pings = socket.all.filter { $0.at >= start && $0.text.split(separator: "\n").contains("WATCHDOG=1") }
            var gaps: [Double] = []
            for index in pings.indices.dropFirst() {
                let gap = pings[index].at - pings[index - 1].at
                gaps.append(Double(gap.components.seconds) + Double(gap.components.attoseconds) / 1e18)
            }
            return (pings.count, gaps)
        }
    }

    // Case 75 (watchdog): WATCHDOG_USEC=2000000 with WATCHDOG_PID = doryd → WATCHDOG=1 about every second;
    // 1000000 → about every 0.5 s; another pid → none.
    @Test func case75_watchdog() throws {
        let twoSeconds = try Self.watchdogPings(usec: "2000000", pidIsSelf: true, window: 3)
        #expect(twoSeconds.count >= 2 && twoSeconds.count <= 4, "\(twoSeconds)")
        #expect(twoSeconds.gaps.allSatisfy { $0 > 0.7 && $0 < 1.3 }, "\(twoSeconds.gaps)")
        let oneSecond = try Self.watchdogPings(usec: "1000000", pidIsSelf: true, window: 3)
        #expect(oneSecond.count >= 5 && oneSecond.count <= 7, "\(oneSecond)")
        #expect(oneSecond.gaps.allSatisfy { $0 > 0.3 && $0 < 0.7 }, "\(oneSecond.gaps)")
        let otherPid = try Self.watchdogPings(usec: "2000000", pidIsSelf: false, window: 2)
        #expect(otherPid.count == 0)
    }
}

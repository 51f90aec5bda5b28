import DoryHTTP
import DoryState
import Glibc
import Testing

@Suite struct LoggingTests {
    /// Harness check and §12 case 76: every stderr line of a whole lifecycle (start, save failure, stop) is a JSON
    /// object with ts, level, logger, msg, boot_id; processor_id and pod are absent before known and never null;
    /// the first line carries `version`.
    @Test func everyStderrLineIsJSONWithTheRequiredFields() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.demo(["DORY_TEST_FAULT": "open@snapshots/"]))
            try daemon.waitReady()
            _ = try? daemon.get("/prestop")
            let exit = try daemon.stop()
            #expect(exit.code != nil)
            let lines = daemon.lines
            #expect(lines.count >= 5)
            let tsPattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
            var sawProcessorId = false
            for (index, line) in lines.enumerated() {
                guard let record = JSON.object(line) else {
                    Issue.record("stderr line \(index) is not a JSON object: \(line)")
                    continue
                }
                for key in ["ts", "level", "logger", "msg", "boot_id"] {
                    #expect(record[key]?.string != nil, "line \(index) lacks string \(key): \(line)")
                }
                if let ts = record["ts"]?.string { #expect(ts.wholeMatch(of: tsPattern) != nil, "ts \(ts)") }
                #expect(["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(record["level"]?.string ?? ""))
                for key in ["processor_id", "pod", "namespace"] {
                    #expect(record[key].map { !$0.isNull } ?? true, "\(key) is null in line \(index)")
                }
                if record["processor_id"] != nil { sawProcessorId = true }
                if sawProcessorId {
                    #expect(record["processor_id"]?.string == "itest-pod", "processor_id missing once known: \(line)")
                    #expect(record["pod"]?.string == "itest-pod", "pod missing once known: \(line)")
                }
                if let error = record["error"] {
                    #expect(error["type"]?.string != nil && error["message"]?.string != nil, "error is not an object: \(line)")
                }
            }
            #expect(JSON.object(lines[0])?["version"]?.string?.isEmpty == false, "first line lacks version: \(lines[0])")
            #expect(JSON.object(lines[0])?["processor_id"] == nil, "processor_id known before configuration: \(lines[0])")
            #expect(sawProcessorId)
            // A failed save logs `error` as an object with the errno text.
            let failed = daemon.records.first { $0["event"]?.string == "snapshot.failed" }
            #expect(failed?["error"]?["message"]?.string?.contains("Input/output error") == true, "\(daemon.logTail)")
        }
    }
}

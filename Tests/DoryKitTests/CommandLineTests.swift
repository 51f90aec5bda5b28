import DoryState
import Testing
@testable import DoryKit

@Suite("Setting flags and the control socket address (spec §4.7, §10)")
struct CommandLineTests {
    @Test func flagsMapToSettingNames() throws {
        let flags = try SettingFlags.parse(["--port", "9200", "--state-dir=/s", "--processor", "p1", "--config", "c.yaml"])
        #expect(flags == ["health_port": "9200", "state_dir": "/s", "processor_id": "p1", "config_file": "c.yaml"])
    }

    @Test func unknownFlagAndMissingValueAreErrors() {
        #expect(throws: ConfigError.self) { try SettingFlags.parse(["--nope", "1"]) }
        #expect(throws: ConfigError.self) { try SettingFlags.parse(["--port"]) }
        #expect(throws: ConfigError.self) { try SettingFlags.parse(["positional"]) }
    }

    @Test func eventsSettingsOnlyWhenAllowed() throws {
        #expect(throws: ConfigError.self) { try SettingFlags.parse(["--event-queue-max", "5"]) }
        #expect(try SettingFlags.parse(["--event-queue-max", "5"], allowEvents: true) == ["event_queue_max": "5"])
    }

    @Test func shortPathsAreUsedAsIs() {
        #expect(ControlSocketAddress.resolve(configured: nil, processorDirectory: "/var/lib/dory/p") == .path("/var/lib/dory/p/control.sock"))
        #expect(ControlSocketAddress.resolve(configured: "/run/x.sock", processorDirectory: "/d") == .path("/run/x.sock"))
    }

    @Test func longPathsBecomeAnAbstractNameFromTheirDigest() {
        let long = "/" + String(repeating: "a", count: 149)
        guard case .abstract(let name, let path) = ControlSocketAddress.resolve(configured: long, processorDirectory: "/d") else {
            Issue.record("expected an abstract socket")
            return
        }
        #expect(path == long)
        #expect(name == "dory-" + SHA256.hex(SHA256.hash(Array(long.utf8))).prefix(32))
        #expect(name.count == 37)
    }

    @Test func relativePathsAreMadeAbsolute() {
        guard case .path(let path) = ControlSocketAddress.resolve(configured: "./x.sock", processorDirectory: "/d") else {
            Issue.record("expected a path")
            return
        }
        #expect(path.hasPrefix("/") && path.hasSuffix("/x.sock") && !path.contains("/./"))
    }

    @Test func referenceStateFileChecksum() {
        // spec §6.7 vector 1: {"counter": 14}
        let good = #"{"payload":{"counter":14},"metadata":{},"checksum":"301e5f257de249f34b037d46e35e98b4a0a0672c0a8396c5194ce3a59cc6f55c"}"#
        guard case .success(let payload) = ReferenceStateFile.verify(Array(good.utf8)) else {
            Issue.record("vector 1 must verify")
            return
        }
        #expect(payload == ["counter": 14])
        let tampered = good.replacingOccurrences(of: "14", with: "15")
        guard case .failure(let message) = ReferenceStateFile.verify(Array(tampered.utf8)) else {
            Issue.record("a tampered payload must be refused")
            return
        }
        #expect(message.contains("checksum"))
        guard case .failure(let missing) = ReferenceStateFile.verify(Array(#"{"payload":{}}"#.utf8)) else {
            Issue.record("a missing member must be refused")
            return
        }
        #expect(missing.contains("metadata"))
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

import DoryState
import Testing

/// §12 case 76 (part): processor metadata named like a reserved key comes out as `x_<name>` and never overrides
/// doryd's value.
@Suite struct LogReservedKeyTests {
    @Test func case76_processorMetadataNamedLevelBecomesXLevel() throws {
        try withSandbox { sandbox in
            let daemon = try sandbox.launch(.fixture())
            try daemon.waitReady()
            let line = try #require(daemon.waitForLog { $0["fixture_hook"]?.string == "startup" }, "\(daemon.logTail)")
            #expect(line["level"]?.string == "info")
            #expect(line["x_level"]?.string == "processor-supplied")
            #expect(line["logger"]?.string?.hasPrefix("doryd.processor.") == true)
            #expect(try daemon.stop().code == 0)
        }
    }
}

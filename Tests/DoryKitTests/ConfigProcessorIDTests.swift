import Testing
@testable import DoryKit

/// spec/dory-runtime.md §3.4 (rule) and §3.5 (derivation table).
@Suite struct ConfigProcessorIDTests {
    @Test(arguments: [
        ("orders-api-5d9c7b8f6d-abcde", "orders-api"),
        ("orders-worker-6b7c9d8f5-q2w3e", "orders-worker"),
        ("myapp-7f8d9c6b-x4h2j", "myapp"),
        ("my-cool-app-7f8d9c6b-x4h2j", "my-cool-app"),
        ("api-1234567890-abcde", "api"),
        ("kafka-consumer-0", "kafka-consumer-0"),
        ("camera-processor-1", "camera-processor-1"),
        ("billing-ingest-queue", "billing-ingest-queue"),
        ("web-5d9c7-abcde", "web-5d9c7-abcde"),
        ("log-shipper-x7k2p", "log-shipper-x7k2p"),
        ("web", "web"),
        ("a-b", "a-b"),
        ("unknown", "unknown"),
    ])
    func derivationTable(podName: String, processorId: String) {
        #expect(ProcessorID.derive(fromPodName: podName) == processorId)
    }

    @Test func derivationEdges() {
        #expect(ProcessorID.derive(fromPodName: "-5d9c7b8f6d-abcde") == "-5d9c7b8f6d-abcde") // empty base
        #expect(ProcessorID.derive(fromPodName: "x-12345678901-abcde") == "x-12345678901-abcde") // 11-char hash
        #expect(ProcessorID.derive(fromPodName: "x-bcdfgh-abcd") == "x-bcdfgh-abcd") // 4-char suffix
        #expect(ProcessorID.derive(fromPodName: "x-bcdfgh-ABCDE") == "x-bcdfgh-ABCDE") // upper-case suffix
        #expect(ProcessorID.derive(fromPodName: "x-bcdfgh-abcde") == "x")
        #expect(ProcessorID.derive(fromPodName: "") == "")
    }

    @Test func validityRule() {
        for good in ["a", "0", "orders-api", "a.b_c-d", "on", String(repeating: "a", count: 253)] {
            #expect(ProcessorID.isValid(good), "\(good)")
        }
        for bad in ["", ".", "..", "../x", "-a", "_a", ".a", "A", "a/b", "a b", "é", "~",
                    String(repeating: "a", count: 254)] {
            #expect(!ProcessorID.isValid(bad), "\(bad)")
        }
    }

    @Test func resolutionOrder() throws {
        #expect(try ProcessorID.resolve(configured: "x", environment: ["PROCESSOR_ID": "y"], podName: "p") == "x")
        #expect(try ProcessorID.resolve(configured: nil, environment: ["PROCESSOR_ID": "y"], podName: "p") == "y")
        #expect(try ProcessorID.resolve(configured: nil, environment: ["PROCESSOR_ID": ""],
                                        podName: "orders-api-5d9c7b8f6d-abcde") == "orders-api")
        #expect(throws: ConfigError.self) {
            try ProcessorID.resolve(configured: nil, environment: ["PROCESSOR_ID": "../x"], podName: "p")
        }
        #expect(throws: ConfigError.self) {
            try ProcessorID.resolve(configured: nil, environment: [:], podName: "Upper-Case")
        }
    }
}

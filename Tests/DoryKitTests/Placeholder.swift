import Testing
@Test func placeholderDoryKitTests() { #expect(Bool(true)) }

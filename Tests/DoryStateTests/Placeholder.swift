import Testing
@Test func placeholderDoryStateTests() { #expect(Bool(true)) }

import Testing
@Test func placeholderDoryHTTPTests() { #expect(Bool(true)) }

import Testing
@Test func placeholderDoryEventsTests() { #expect(Bool(true)) }

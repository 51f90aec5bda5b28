import Testing
@Test func placeholderDorySupervisorTests() { #expect(Bool(true)) }

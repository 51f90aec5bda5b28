import DoryState
import Testing
@testable import DoryKit

@ProcessorActor
class CounterUnderTest: Processor {
    @Stateful var counter = 0
    @Stateful var name = ""
    @Stateful var data: [String: String] = [:]
    required init(context: ExecutionContext) {}
    func run() async throws {}
}

@ProcessorActor
final class SeenUnderTest: Processor {
    @Stateful var seen: [String: Int] = [:]
    init(context: ExecutionContext) {}
    func run() async throws {}
}

@ProcessorActor class A: Processor {
    @Stateful var a = 1
    required init(context: ExecutionContext) {}
    func run() async throws {}
}
@ProcessorActor final class B: A { @Stateful var b = 2 }
@ProcessorActor final class C: A { @Stateful var c = 3 }

@ProcessorActor
final class ABC: Processor {
    @Stateful var a = 1
    @Stateful var b = 2
    @Stateful var c = 3
    init(context: ExecutionContext) {}
    func run() async throws {}
}

@ProcessorActor
final class Empty: Processor {
    var restored: JSONObject?
    init(context: ExecutionContext) {}
    func run() async throws {}
    func restoreState(_ state: JSONObject) async throws { restored = state }
}

@ProcessorActor
final class Renamed: Processor {
    @Stateful(key: "n") var count = 0
    init(context: ExecutionContext) {}
    func run() async throws {}
}

@ProcessorActor
final class Duplicate: Processor {
    @Stateful(key: "x") var first = 0
    @Stateful(key: "x") var second = 0
    init(context: ExecutionContext) {}
    func run() async throws {}
}

@ProcessorActor
final class CounterAndData: Processor {
    @Stateful var counter = 0
    @Stateful var data: [String: Int] = [:]
    init(context: ExecutionContext) {}
    func run() async throws {}
}

func testContext(_ env: [String: String] = [:]) -> ExecutionContext {
    ExecutionContext(identity: PodIdentity(environment: env), processorId: "p", bootId: "b", environment: env)
}

@Suite("Stateful properties (spec §3.6, cases 9–13)")
@ProcessorActor
struct StatefulTests {
    @Test func readsAndWrites() {
        let p = CounterUnderTest(context: testContext())
        #expect(p.counter == 0)
        p.counter = 5
        #expect(p.counter == 5)
    }

    @Test func initialValuesAreNotShared() {
        let one = SeenUnderTest(context: testContext())
        let two = SeenUnderTest(context: testContext())
        one.seen["x"] = 1
        #expect(two.seen.isEmpty)
        #expect(one.seen == ["x": 1])
    }

    @Test func getStateReturnsExactlyTheDeclaredProperties() async throws {
        let p = CounterUnderTest(context: testContext())
        p.counter = 42
        p.name = "test"
        p.data = ["key": "value"]
        let state = try await p.getState()
        #expect(state == ["counter": 42, "name": "test", "data": ["key": "value"]])
    }

    @Test func restoreAppliesKnownKeysAndLeavesMissingOnes() async throws {
        let p = CounterUnderTest(context: testContext())
        try await p.restoreState(["counter": 100, "name": "restored"])
        #expect(p.counter == 100 && p.name == "restored")
        let abc = ABC(context: testContext())
        try await abc.restoreState(["b": 200])
        #expect(abc.a == 1 && abc.b == 200 && abc.c == 3)
    }

    @Test func noStatefulMembersGiveEmptyStateAndEmptyIsRestored() async throws {
        let e = Empty(context: testContext())
        #expect(try await e.getState() == [:])
        try await e.restoreState([:])
        #expect(e.restored == [:])
    }

    @Test func unknownKeysAreIgnored() async throws {
        let p = CounterUnderTest(context: testContext())
        let unknown = try StatefulState.restore(p, from: ["counter": 1, "zzz": 2])
        #expect(p.counter == 1)
        #expect(unknown == ["zzz"])
    }

    @Test func aTypeMismatchChangesNothing() async throws {
        let p = CounterUnderTest(context: testContext())
        p.name = "before"
        await #expect(throws: StateRestoreError.self) {
            try await p.restoreState(["counter": "x", "name": "n"])
        }
        #expect(p.counter == 0 && p.name == "before")
        do {
            try await p.restoreState(["counter": "x"])
        } catch let error as StateRestoreError {
            #expect(error.fields["counter"]?.contains("expected") == true)
        }
    }

    @Test func collectionIsPerConcreteType() async throws {
        #expect(try await A(context: testContext()).getState().keys.sorted() == ["a"])
        #expect(try await B(context: testContext()).getState().keys.sorted() == ["a", "b"])
        #expect(try await C(context: testContext()).getState().keys.sorted() == ["a", "c"])
    }

    @Test func explicitKeyRenames() async throws {
        let r = Renamed(context: testContext())
        r.count = 7
        #expect(try await r.getState() == ["n": 7])
    }

    @Test func duplicateKeysAreADeclarationErrorNamingBoth() {
        let d = Duplicate(context: testContext())
        do {
            _ = try StatefulReflection.entries(of: d)
            Issue.record("expected a declaration error")
        } catch {
            #expect(error.description.contains("first") && error.description.contains("second"))
        }
    }

    @Test func aPropertyNamedDataIsRestoredFromData() async throws {
        let p = CounterAndData(context: testContext())
        try await p.restoreState(["counter": 7, "data": ["k": 1]])
        #expect(p.counter == 7 && p.data == ["k": 1])
    }

    @Test func nonFiniteDoubleFailsTheCapture() async {
        let value = StateValue("r", Double.nan)
        let workload = ClosureWorkload(states: [value]) { _ in }
        try? await workload.prepare(context: testContext())
        await #expect(throws: (any Error).self) { _ = try await workload.captureState() }
    }

    @Test func functionApiDuplicateNamesAreRejected() async {
        let workload = ClosureWorkload(states: [StateValue("a", 0), StateValue("a", 1)]) { _ in }
        await #expect(throws: StateDeclarationError.self) { try await workload.prepare(context: testContext()) }
    }

    @Test func functionApiCapturesAndRestoresBothValues() async throws {
        let a = StateValue("a", 1)
        let b = StateValue("b", "x")
        let workload = ClosureWorkload(states: [a, b]) { _ in }
        try await workload.prepare(context: testContext())
        #expect(try await workload.captureState() == ["a": 1, "b": "x"])
        try await workload.restoreState(["a": 5, "b": "y"])
        #expect(a.value == 5 && b.value == "y")
    }
}

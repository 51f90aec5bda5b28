import DoryState

/// A module-level persistent value for the function-style API (spec §3.7):
///
///     let counter = StateValue("counter", 0)
///     try await DoryApp().run(states: [counter]) { ctx in
///         for await _ in ctx.runLoop(interval: .milliseconds(100)) { counter.value += 1 }
///     }
///
/// Reads and writes are atomic per value (each has its own lock); there is no atomicity across values.
public final class StateValue<Value: Codable & Sendable>: Sendable, AnyStateValue {
    /// The JSON key.
    public let name: String
    let cell: StateCell<Value>

    public init(_ name: String, _ initial: Value) {
        self.name = name
        cell = StateCell(initial)
    }

    public var value: Value {
        get { cell.value }
        set { cell.value = newValue }
    }

    /// Read-modify-write under the value's lock: `counter.update { $0 += 1 }`.
    @discardableResult
    public func update<R: Sendable>(_ body: (inout Value) throws -> R) rethrows -> R { try cell.withLock(body) }

    var slot: any AnyStateSlot { cell }
}

/// A `StateValue` of any type, for the list passed to `DoryApp.run(states:_:)`.
public protocol AnyStateValue: Sendable {
    var name: String { get }
}

extension AnyStateValue {
    var stateSlot: (any AnyStateSlot)? {
        (self as? any StateSlotProviding)?.providedSlot
    }
}

protocol StateSlotProviding {
    var providedSlot: any AnyStateSlot { get }
}

extension StateValue: StateSlotProviding {
    var providedSlot: any AnyStateSlot { cell }
}

import DoryState
import Logging
import Synchronization

/// One persistent value with its own lock: the storage behind `@Stateful` and `StateValue`.
public final class StateCell<Value: Codable & Sendable>: Sendable {
    private let storage: Mutex<Value>
    init(_ value: Value) { storage = Mutex(value) }
    public var value: Value {
        get { storage.withLock { $0 } }
        set { storage.withLock { $0 = newValue } }
    }
    /// Runs `body` with exclusive access (read-modify-write without a race).
    public func withLock<R: Sendable>(_ body: (inout Value) throws -> R) rethrows -> R {
        try storage.withLock { try body(&$0) }
    }
}

/// Declares persistent state on a processor: `@Stateful var counter = 0`, or `@Stateful(key: "n") var count = 0`.
///
/// The initial value is evaluated per instance, so collections are never shared between instances. The JSON key is
/// the property name (or `key:`); two properties with one key are a declaration error (exit 2).
@propertyWrapper
public struct Stateful<Value: Codable & Sendable>: Sendable {
    let cell: StateCell<Value>
    let explicitKey: String?

    public init(wrappedValue: Value) {
        cell = StateCell(wrappedValue)
        explicitKey = nil
    }

    public init(wrappedValue: Value, key: String) {
        cell = StateCell(wrappedValue)
        explicitKey = key
    }

    public var wrappedValue: Value {
        get { cell.value }
        nonmutating set { cell.value = newValue }
    }

    public var projectedValue: StateCell<Value> { cell }
}

/// Type-erased access to one declared state value (a `@Stateful` property or a `StateValue`).
protocol AnyStateSlot: Sendable {
    /// The JSON encoding of the current value; throws for a value JSON cannot express (NaN, infinity).
    func captureJSON() throws -> JSONValue
    /// Decodes `json` into the declared type without assigning it; the returned closure assigns it.
    func prepareRestore(_ json: JSONValue) throws -> @Sendable () -> Void
}

extension StateCell: AnyStateSlot {
    func captureJSON() throws -> JSONValue { try JSONValueEncoder().encode(value) }
    func prepareRestore(_ json: JSONValue) throws -> @Sendable () -> Void {
        let decoded = try JSONValueDecoder().decode(Value.self, from: json)
        return { [self] in self.value = decoded }
    }
}

protocol StatefulProperty {
    var slot: any AnyStateSlot { get }
    var explicitKey: String? { get }
}

extension Stateful: StatefulProperty {
    var slot: any AnyStateSlot { cell }
}

/// A declaration error: two state values with one JSON key (exit 2, both names in the message).
public struct StateDeclarationError: Error, CustomStringConvertible, Sendable {
    public let key: String
    public let first: String
    public let second: String
    public var description: String {
        "duplicate state key \"\(key)\": declared by \(first) and \(second)"
    }
}

/// One restore rejected because a known key did not decode into its declared type.
public struct StateRestoreError: Error, CustomStringConvertible, Sendable {
    /// key → human reason, e.g. `counter` → `expected integer, got string`.
    public let fields: [String: String]
    public var description: String {
        "state does not match the declared types: "
            + fields.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
    }
}

/// Collects `@Stateful` properties by reflection, per concrete type, superclasses included (spec §3.6).
enum StatefulReflection {
    struct Entry {
        let key: String
        let name: String
        let slot: any AnyStateSlot
    }

    /// Every `@Stateful` property of `instance`'s concrete type and its superclasses.
    static func entries(of instance: AnyObject) throws(StateDeclarationError) -> [Entry] {
        var result: [Entry] = []
        var seen: [String: String] = [:]
        var mirror: Mirror? = Mirror(reflecting: instance)
        while let current = mirror {
            for child in current.children {
                guard let property = child.value as? any StatefulProperty, let label = child.label else { continue }
                let name = label.hasPrefix("_") ? String(label.dropFirst()) : label
                let key = property.explicitKey ?? name
                if let previous = seen[key] {
                    throw StateDeclarationError(key: key, first: previous, second: name)
                }
                seen[key] = name
                result.append(Entry(key: key, name: name, slot: property.slot))
            }
            mirror = current.superclassMirror
        }
        return result
    }

    static func capture(_ instance: AnyObject) throws -> JSONObject {
        try capture(entries(of: instance))
    }

    static func capture(_ entries: [Entry]) throws -> JSONObject {
        var state: JSONObject = [:]
        for entry in entries { state[entry.key] = try entry.slot.captureJSON() }
        return state
    }

    /// Restores all known keys or none; returns the unknown keys.
    @discardableResult
    static func restore(_ instance: AnyObject, from state: JSONObject) throws -> [String] {
        try restore(entries(of: instance), from: state)
    }

    static func restore(_ entries: [Entry], from state: JSONObject) throws -> [String] {
        var assignments: [@Sendable () -> Void] = []
        var failures: [String: String] = [:]
        let known = Set(entries.map(\.key))
        for entry in entries {
            guard let json = state[entry.key] else { continue }
            do {
                assignments.append(try entry.slot.prepareRestore(json))
            } catch {
                failures[entry.key] = "\(error)"
            }
        }
        if !failures.isEmpty { throw StateRestoreError(fields: failures) }
        for assign in assignments { assign() }
        return state.keys.filter { !known.contains($0) }.sorted()
    }

    /// Type checks only: the fields that would fail to decode (used by `POST /state` before applying).
    static func validate(_ entries: [Entry], _ state: JSONObject) -> [String: String] {
        var failures: [String: String] = [:]
        for entry in entries {
            guard let json = state[entry.key] else { continue }
            do { _ = try entry.slot.prepareRestore(json) } catch { failures[entry.key] = "\(error)" }
        }
        return failures
    }

    static func logUnknownKeys(_ keys: [String]) {
        Logger(label: "doryd.state").info(
            "unknown state keys ignored",
            metadata: ["event": "state.unknown_keys", "keys": .array(keys.map { .string($0) })]
        )
    }
}

/// The default `@Stateful` behaviour, callable from a processor that overrides `getState` or `restoreState` and
/// still wants it (a protocol's default implementation cannot be called from an override).
public enum StatefulState {
    /// Every `@Stateful` property of the processor's concrete type, by key.
    public static func capture(_ processor: AnyObject) throws -> JSONObject {
        try StatefulReflection.capture(processor)
    }

    /// Applies every known key (all or nothing); returns and logs the unknown keys.
    @discardableResult
    public static func restore(_ processor: AnyObject, from state: JSONObject) throws -> [String] {
        let unknown = try StatefulReflection.restore(processor, from: state)
        if !unknown.isEmpty { StatefulReflection.logUnknownKeys(unknown) }
        return unknown
    }
}

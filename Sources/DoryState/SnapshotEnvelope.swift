// The JSON object inside a snapshot file (spec §6.1) and its validation (§6.4).

/// Why a snapshot file was rejected; `rawValue` is the §6.4 reason written into quarantine names.
public enum SnapshotDefect: String, Sendable, Equatable, CaseIterable {
    case badGzip = "bad_gzip"
    case truncated
    case crcMismatch = "crc_mismatch"
    case trailingData = "trailing_data"
    case tooLarge = "too_large"
    case badJSON = "bad_json"
    case wrongFormat = "wrong_format"
    case wrongProcessor = "wrong_processor"
    case generationMismatch = "generation_mismatch"
    case badState = "bad_state"

    init(_ gzip: GzipError.Kind) {
        switch gzip {
        case .badGzip, .compressFailed: self = .badGzip
        case .truncated: self = .truncated
        case .crcMismatch: self = .crcMismatch
        case .trailingData: self = .trailingData
        case .tooLarge: self = .tooLarge
        }
    }
}

/// A rejected snapshot: the §6.4 reason and a detail for people.
public struct SnapshotValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let defect: SnapshotDefect
    public let message: String

    public init(_ defect: SnapshotDefect, _ message: String) {
        self.defect = defect
        self.message = message
    }

    /// The §6.4 reason text.
    public var reason: String { defect.rawValue }
    public var description: String { "\(defect.rawValue): \(message)" }
}

/// The content of a snapshot file (spec §6.1).
public struct SnapshotEnvelope: Sendable, Equatable {
    /// The only format this build reads and writes.
    public static let format = "dory.snapshot/1"

    public var processorID: String
    public var podName: String
    public var namespace: String
    /// Equals the number in the file name.
    public var generation: Int64
    /// RFC 3339 UTC with milliseconds, as written (`2025-01-02T03:04:05.678Z`).
    public var savedAt: String
    /// `startup`, `sigusr1`, `prestop`, `shutdown`, `interval`, `transfer` or `api`.
    public var reason: String
    public var restartCount: Int64
    public var strategy: String
    public var state: JSONObject
    public var bootID: String?
    public var dorydVersion: String?

    public init(
        processorID: String, podName: String, namespace: String, generation: Int64, savedAt: String, reason: String,
        restartCount: Int64, strategy: String, state: JSONObject, bootID: String? = nil, dorydVersion: String? = nil
    ) {
        self.processorID = processorID
        self.podName = podName
        self.namespace = namespace
        self.generation = generation
        self.savedAt = savedAt
        self.reason = reason
        self.restartCount = restartCount
        self.strategy = strategy
        self.state = state
        self.bootID = bootID
        self.dorydVersion = dorydVersion
    }

    /// The envelope as a JSON object (`doryd state show`, `export --envelope`).
    public var jsonValue: JSONValue {
        var o: JSONObject = [
            "format": .string(Self.format), "processor_id": .string(processorID), "pod_name": .string(podName),
            "namespace": .string(namespace), "generation": .int(generation), "saved_at": .string(savedAt),
            "reason": .string(reason), "restart_count": .int(restartCount), "strategy": .string(strategy),
            "state": .object(state),
        ]
        if let bootID { o["boot_id"] = .string(bootID) }
        if let dorydVersion { o["doryd_version"] = .string(dorydVersion) }
        return .object(o)
    }

    /// The compact JSON bytes of the envelope (other members sorted, `state` last), and the SHA-256 of the `state` member as it appears in
    /// them (the state hash of §6.3 step 2: the state encoded with sorted keys). One encoding serves both.
    /// - Parameter precomputed: `state` already encoded compactly with sorted keys, if the caller has it.
    public func encoded(stateBytes precomputed: [UInt8]? = nil) throws(JSONEncodeError) -> (bytes: [UInt8], stateHash: String) {
        let stateBytes: [UInt8]
        if let precomputed { stateBytes = precomputed } else { stateBytes = try JSON.encode(.object(state), sortedKeys: true) }
        var head: JSONObject = [
            "format": .string(Self.format), "processor_id": .string(processorID), "pod_name": .string(podName),
            "namespace": .string(namespace), "generation": .int(generation), "saved_at": .string(savedAt),
            "reason": .string(reason), "restart_count": .int(restartCount), "strategy": .string(strategy),
        ]
        if let bootID { head["boot_id"] = .string(bootID) }
        if let dorydVersion { head["doryd_version"] = .string(dorydVersion) }
        // The state member goes last (member order is not significant, §6.1): its bytes are exactly stateBytes.
        var bytes = try JSON.encode(.object(head), sortedKeys: true)
        bytes.removeLast()  // }
        bytes.reserveCapacity(bytes.count + stateBytes.count + 10)
        bytes.append(contentsOf: #","state":"#.utf8)
        bytes.append(contentsOf: stateBytes)
        bytes.append(UInt8(ascii: "}"))
        return (bytes, SHA256.hex(stateBytes))
    }

    /// The state hash of §6.3/§6.6: lower-case hex SHA-256 of `state` encoded compactly with sorted keys.
    public static func stateHash(_ state: JSONObject) throws(JSONEncodeError) -> String {
        SHA256.hex(try JSON.encode(.object(state), sortedKeys: true))
    }

    /// Validates decoded JSON bytes as §6.4 does: JSON, an object, `format`, `processor_id`, `generation` equal
    /// to the file name's, `state` an object. Other members are read leniently (missing → empty/0).
    public static func decode(
        _ json: [UInt8], expectedProcessorID: String, expectedGeneration: Int64?
    ) throws(SnapshotValidationError) -> SnapshotEnvelope {
        let value: JSONValue
        do {
            value = try JSON.parse(json)
        } catch {
            throw SnapshotValidationError(.badJSON, error.description)
        }
        guard case .object(let o) = value else {
            throw SnapshotValidationError(.badJSON, "not a JSON object but \(kindName(value))")
        }
        guard case .string(let format)? = o["format"] else {
            throw SnapshotValidationError(.wrongFormat, "no format member")
        }
        guard format == Self.format else {
            throw SnapshotValidationError(.wrongFormat, "format \"\(format)\", expected \"\(Self.format)\"")
        }
        guard case .string(let processorID)? = o["processor_id"] else {
            throw SnapshotValidationError(.wrongProcessor, "no processor_id member")
        }
        guard processorID == expectedProcessorID else {
            throw SnapshotValidationError(
                .wrongProcessor, "processor_id \"\(processorID)\", expected \"\(expectedProcessorID)\"")
        }
        guard case .int(let generation)? = o["generation"] else {
            throw SnapshotValidationError(.generationMismatch, "no integer generation member")
        }
        if let expectedGeneration, generation != expectedGeneration {
            throw SnapshotValidationError(
                .generationMismatch, "generation \(generation) in a file named \(expectedGeneration)")
        }
        guard case .object(let state)? = o["state"] else {
            throw SnapshotValidationError(.badState, o["state"] == nil ? "no state member" : "state is not an object")
        }
        func string(_ key: String) -> String? {
            if case .string(let s)? = o[key] { return s }
            return nil
        }
        var restartCount: Int64 = 0
        if case .int(let n)? = o["restart_count"] { restartCount = n }
        return SnapshotEnvelope(
            processorID: processorID, podName: string("pod_name") ?? "", namespace: string("namespace") ?? "",
            generation: generation, savedAt: string("saved_at") ?? "", reason: string("reason") ?? "",
            restartCount: restartCount, strategy: string("strategy") ?? "", state: state,
            bootID: string("boot_id"), dorydVersion: string("doryd_version"))
    }

    /// Inflates (at most `maxRawBytes`) and validates a snapshot file's bytes. Returns the envelope and the raw size.
    public static func decodeFile(
        _ compressed: [UInt8], expectedProcessorID: String, expectedGeneration: Int64?, maxRawBytes: Int
    ) throws(SnapshotValidationError) -> (envelope: SnapshotEnvelope, rawBytes: Int) {
        let raw: [UInt8]
        do {
            raw = try Gzip.decompress(compressed, maxOutput: maxRawBytes)
        } catch {
            throw SnapshotValidationError(SnapshotDefect(error.kind), error.message)
        }
        let envelope = try decode(raw, expectedProcessorID: expectedProcessorID, expectedGeneration: expectedGeneration)
        return (envelope, raw.count)
    }
}

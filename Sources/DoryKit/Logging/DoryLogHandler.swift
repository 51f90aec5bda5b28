import Logging

/// doryd's swift-log handler (spec/dory-runtime.md §9.2): one compact JSON object per line (or a journald entry)
/// with `ts`, `level`, `logger`, `msg`, then the stream's global metadata, then the logger's context metadata, then
/// the logger's and the call's metadata (keys sorted, the call's value winning).
///
/// **Reserved keys.** `ts`, `level`, `logger` and `msg` can never be set by metadata: such a key is written as
/// `x_<name>`. On a *user-facing* logger (a processor's or an application's) every key of ``reservedKeys`` set
/// through `logger[metadataKey:]` or a call's metadata is written as `x_<name>` and never overrides doryd's value.
/// doryd's own loggers may set the reserved keys (`event`, `phase`, `error`, `version`, …); a call's value for a
/// global key (`processor_id`, …) replaces the global one on that line.
///
/// **Levels.** A handler without a level of its own follows its stream: the process-wide threshold, or a
/// per-logger override (``LogStream/setLevelOverrides(_:)``). Setting `logger.logLevel` pins that logger.
public struct DoryLogHandler: LogHandler {
    /// Keys doryd owns: the line's own keys, the runtime's metadata and event keys, and the event workload's context
    /// keys (event-pipeline.md §10.1).
    public static let reservedKeys: Set<String> = [
        "ts", "level", "logger", "msg", "version",
        "processor_id", "pod", "namespace", "boot_id",
        "event", "phase", "generation", "reason", "duration_ms", "error",
        "requestId", "invocation_id", "app_id",
    ]

    /// Keys no metadata may set, whoever the logger belongs to (`ts`, `level`, `logger`, `msg`), checked by
    /// comparison: no hashing for every key of every line.
    @inline(__always) static func isLineKey(_ key: String) -> Bool {
        key == "ts" || key == "msg" || key == "level" || key == "logger"
    }

    public let label: String
    public let stream: LogStream
    /// Whether this logger's metadata is user metadata (reserved keys renamed `x_<name>`).
    public let userFacing: Bool
    /// Metadata doryd binds to the logger (the event workload's `requestId`, `invocation_id`, `app_id`): written
    /// after the global keys and never renamed.
    public var contextMetadata: Logger.Metadata {
        didSet { sortedContext = DoryLogHandler.lastOfEachKeySorted(contextMetadata.map { LogRecord.Field(key: $0.key, value: $0.value) }) }
    }
    /// ``contextMetadata`` sorted by key, kept so a line pays no sort for it (see ``fields(callMetadata:error:)``).
    private var sortedContext: [LogRecord.Field]
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private var ownLevel: Logger.Level?

    /// - Parameters:
    ///   - label: the logger's name.
    ///   - stream: shared state and output (``DoryLogging/shared`` in the daemon).
    ///   - userFacing: nil decides by ``isUserFacing(label:)``.
    ///   - contextMetadata: doryd-owned metadata bound to this logger.
    ///   - metadataProvider: swift-log's provider; its values are treated as doryd's (not renamed).
    public init(label: String, stream: LogStream, userFacing: Bool? = nil, contextMetadata: Logger.Metadata = [:],
                metadataProvider: Logger.MetadataProvider? = nil)
    {
        self.label = label
        self.stream = stream
        self.userFacing = userFacing ?? DoryLogHandler.isUserFacing(label: label)
        self.contextMetadata = contextMetadata
        self.sortedContext = DoryLogHandler.lastOfEachKeySorted(contextMetadata.map { LogRecord.Field(key: $0.key, value: $0.value) })
        self.metadataProvider = metadataProvider
    }

    /// Loggers whose metadata is user metadata: `doryd.processor.*`, `doryd.app.*`, and every label outside
    /// `doryd.*` (the event workload's `app`, `print`, `stderr`, an application's own names).
    public static func isUserFacing(label: String) -> Bool {
        if label == "doryd" { return false }
        guard label.hasPrefix("doryd.") else { return true }
        return label.hasPrefix("doryd.processor.") || label.hasPrefix("doryd.app.")
    }

    public var logLevel: Logger.Level {
        get { ownLevel ?? stream.effectiveLevel(forLabel: label) }
        set { ownLevel = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        stream.emit(level: event.level, label: label, message: event.message.description,
                    fields: fields(callMetadata: event.metadata, error: event.error))
    }

    /// The metadata of one entry, in output order, after the reserved-key rules.
    ///
    /// Precedence, lowest first: the metadata provider, the context metadata, the logger's metadata, the call's
    /// metadata (a user-facing logger's own and call metadata form a separate, renamed group after doryd's).
    /// Built with small key-sorted arrays rather than merged dictionaries: this runs for every line.
    func fields(callMetadata: Logger.Metadata?, error: (any Error)?) -> [LogRecord.Field] {
        var trusted: [LogRecord.Field] = []
        var user: [LogRecord.Field] = []
        if metadataProvider == nil, metadata.isEmpty {
            // The common line: sorted context plus a few call keys, merged without a sort.
            trusted = sortedContext
            if let callMetadata {
                if userFacing {
                    user = DoryLogHandler.lastOfEachKeySorted(
                        callMetadata.map { LogRecord.Field(key: $0.key, value: $0.value) })
                } else {
                    for (key, value) in callMetadata {
                        DoryLogHandler.insertSorted(LogRecord.Field(key: key, value: value), into: &trusted)
                    }
                }
            }
            return output(trusted: trusted, user: user, error: error)
        }
        trusted.reserveCapacity(contextMetadata.count + metadata.count + (callMetadata?.count ?? 0) + 1)
        if let provided = metadataProvider?.get() {
            for (key, value) in provided where contextMetadata[key] == nil {
                trusted.append(LogRecord.Field(key: key, value: value))
            }
        }
        for (key, value) in contextMetadata { trusted.append(LogRecord.Field(key: key, value: value)) }
        if userFacing {
            for (key, value) in metadata { user.append(LogRecord.Field(key: key, value: value)) }
            for (key, value) in callMetadata ?? [:] { user.append(LogRecord.Field(key: key, value: value)) }
        } else {
            for (key, value) in metadata { trusted.append(LogRecord.Field(key: key, value: value)) }
            for (key, value) in callMetadata ?? [:] { trusted.append(LogRecord.Field(key: key, value: value)) }
        }
        return output(trusted: DoryLogHandler.lastOfEachKeySorted(trusted),
                      user: DoryLogHandler.lastOfEachKeySorted(user), error: error)
    }

    /// The fields from doryd's and the user's metadata, each sorted by key with unique keys.
    private func output(trusted: [LogRecord.Field], user: [LogRecord.Field], error: (any Error)?) -> [LogRecord.Field] {
        var trusted = trusted
        if let error, !trusted.contains(where: { $0.key == "error" }) {
            DoryLogHandler.insertSorted(LogRecord.Field(key: "error", value: .errorValue(error)), into: &trusted)
        }
        var out: [LogRecord.Field] = []
        out.reserveCapacity(stream.globalMetadata.count + trusted.count + user.count)
        func add(_ key: String, _ value: Logger.MetadataValue) {
            if !out.contains(where: { $0.key == key }) { out.append(LogRecord.Field(key: key, value: value)) }
        }
        for field in stream.globalMetadata where !trusted.contains(where: { $0.key == field.key }) {
            add(field.key, field.value)
        }
        for pair in trusted {
            add(DoryLogHandler.isLineKey(pair.key) ? "x_" + pair.key : pair.key, pair.value)
        }
        for pair in user {
            add(DoryLogHandler.reservedKeys.contains(pair.key) ? "x_" + pair.key : pair.key, pair.value)
        }
        return out
    }

    /// Inserts into a key-sorted array with unique keys; an equal key is replaced.
    private static func insertSorted(_ pair: LogRecord.Field, into pairs: inout [LogRecord.Field]) {
        var index = pairs.count
        while index > 0, pairs[index - 1].key >= pair.key { index -= 1 }
        if index < pairs.count, pairs[index].key == pair.key {
            pairs[index] = pair
        } else {
            pairs.insert(pair, at: index)
        }
    }

    /// Sorts by key (code point order, as `String` compares) and keeps, for each key, the pair that came last.
    /// Insertion into a sorted array: the groups are a handful of keys, where this beats a general sort.
    private static func lastOfEachKeySorted(_ pairs: [LogRecord.Field]) -> [LogRecord.Field] {
        guard pairs.count > 1 else { return pairs }
        var out: [LogRecord.Field] = []
        out.reserveCapacity(pairs.count)
        for pair in pairs { insertSorted(pair, into: &out) }
        return out
    }
}

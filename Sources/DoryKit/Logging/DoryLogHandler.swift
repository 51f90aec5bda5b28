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

    /// Keys no metadata may set, whoever the logger belongs to.
    static let lineKeys: Set<String> = ["ts", "level", "logger", "msg"]

    public let label: String
    public let stream: LogStream
    /// Whether this logger's metadata is user metadata (reserved keys renamed `x_<name>`).
    public let userFacing: Bool
    /// Metadata doryd binds to the logger (the event workload's `requestId`, `invocation_id`, `app_id`): written
    /// after the global keys and never renamed.
    public var contextMetadata: Logger.Metadata
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
    func fields(callMetadata: Logger.Metadata?, error: (any Error)?) -> [LogRecord.Field] {
        var merged = metadata
        if let callMetadata {
            for (key, value) in callMetadata { merged[key] = value }
        }
        var trusted = contextMetadata
        if let provided = metadataProvider?.get() {
            for (key, value) in provided where trusted[key] == nil { trusted[key] = value }
        }
        var user: Logger.Metadata = [:]
        if userFacing {
            user = merged
        } else {
            for (key, value) in merged { trusted[key] = value }
        }
        if let error, trusted["error"] == nil {
            trusted["error"] = .errorValue(error)
        }

        var out: [LogRecord.Field] = []
        var written: Set<String> = []
        func add(_ key: String, _ value: Logger.MetadataValue) {
            if written.insert(key).inserted { out.append(LogRecord.Field(key: key, value: value)) }
        }
        for field in stream.globalMetadata where trusted[field.key] == nil {
            add(field.key, field.value)
        }
        for key in trusted.keys.sorted() {
            add(DoryLogHandler.lineKeys.contains(key) ? "x_" + key : key, trusted[key]!)
        }
        for key in user.keys.sorted() {
            add(DoryLogHandler.reservedKeys.contains(key) ? "x_" + key : key, user[key]!)
        }
        return out
    }
}

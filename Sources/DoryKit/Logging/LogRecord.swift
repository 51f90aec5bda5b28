import DoryState
import Logging

/// One log entry after doryd's key rules were applied: what the JSON line and the journald entry are made of.
public struct LogRecord: Sendable {
    /// One metadata key and value, in output order.
    public struct Field: Sendable {
        public var key: String
        public var value: Logger.MetadataValue
        public init(key: String, value: Logger.MetadataValue) {
            self.key = key
            self.value = value
        }
    }

    /// Wall-clock milliseconds since the epoch.
    public var millis: Int64
    public var level: Logger.Level
    /// The logger's label (`doryd.lifecycle`, `doryd.processor.<id>`, …).
    public var label: String
    public var message: String
    /// Metadata after `ts`, `level`, `logger` and `msg`: global keys, then the logger's, then the call's.
    public var fields: [Field]

    public init(millis: Int64, level: Logger.Level, label: String, message: String, fields: [Field]) {
        self.millis = millis
        self.level = level
        self.label = label
        self.message = message
        self.fields = fields
    }

    /// The compact JSON line, with its trailing `\n`:
    /// `{"ts":"2025-01-02T03:04:05.678Z","level":"info","logger":"doryd.lifecycle","msg":"…",…}`.
    public func jsonLine() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(160 + message.utf8.count + fields.count * 32)
        out.append(contentsOf: #"{"ts":""#.utf8)
        out.append(contentsOf: WallClock.rfc3339(millis: millis).utf8)
        out.append(contentsOf: #"","level":""#.utf8)
        out.append(contentsOf: level.rawValue.utf8)
        out.append(contentsOf: #"","logger":"#.utf8)
        LogJSONWriter.appendString(label, to: &out)
        out.append(contentsOf: #","msg":"#.utf8)
        LogJSONWriter.appendString(message, to: &out)
        for field in fields {
            out.append(0x2C)
            LogJSONWriter.appendString(field.key, to: &out)
            out.append(0x3A)
            LogJSONWriter.appendValue(field.value, to: &out)
        }
        out.append(contentsOf: "}\n".utf8)
        return out
    }
}

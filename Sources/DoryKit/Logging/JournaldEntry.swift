#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSystemd
import Logging

/// A native journald entry for a log record (spec/dory-runtime.md §9.2): `MESSAGE`, `PRIORITY`,
/// `SYSLOG_IDENTIFIER=doryd`, `DORY_LOGGER`, and each metadata key as `DORY_<KEY>` (upper-cased, characters outside
/// `[A-Z0-9_]` replaced by `_`), strings as they are and other values as compact JSON.
public struct JournaldEntry: Sendable {
    /// `FIELD=value` items, in order.
    public var fields: [[UInt8]]

    public init(record: LogRecord) {
        var fields: [[UInt8]] = [
            Array("MESSAGE=".utf8) + Array(record.message.utf8),
            Array("PRIORITY=\(JournaldEntry.priority(of: record.level))".utf8),
            Array("SYSLOG_IDENTIFIER=doryd".utf8),
            Array("DORY_LOGGER=".utf8) + Array(record.label.utf8),
        ]
        var seen: Set<String> = ["DORY_LOGGER"]
        for field in record.fields {
            let name = JournaldEntry.fieldName(forKey: field.key)
            guard seen.insert(name).inserted else { continue }
            fields.append(Array(name.utf8) + [0x3D] + LogJSONWriter.fieldText(field.value))
        }
        self.fields = fields
    }

    /// syslog priority: critical 2, error 3, warning 4, notice 5, info 6, debug and trace 7.
    public static func priority(of level: Logger.Level) -> Int {
        switch level {
        case .critical: 2
        case .error: 3
        case .warning: 4
        case .notice: 5
        case .info: 6
        case .debug, .trace: 7
        }
    }

    /// `DORY_` + the key upper-cased with every character outside `[A-Z0-9_]` replaced by `_`, at most 64 bytes
    /// (journald's limit): `processor_id` → `DORY_PROCESSOR_ID`, `x-level` → `DORY_X_LEVEL`.
    public static func fieldName(forKey key: String) -> String {
        var name = "DORY_"
        for scalar in key.unicodeScalars {
            guard name.utf8.count < 64 else { break }
            switch scalar {
            case "a"..."z": name.unicodeScalars.append(Unicode.Scalar(scalar.value - 32)!)
            case "A"..."Z", "0"..."9", "_": name.unicodeScalars.append(scalar)
            default: name += "_"
            }
        }
        return name
    }

    /// Sends the entry with `sd_journal_sendv`; false when the send fails.
    public func send() -> Bool {
        var storage: [UInt8] = []
        var offsets: [(Int, Int)] = []
        for field in fields {
            offsets.append((storage.count, field.count))
            storage.append(contentsOf: field)
        }
        return storage.withUnsafeMutableBytes { buffer -> Bool in
            var vectors = offsets.map { offset, count in
                iovec(iov_base: buffer.baseAddress! + offset, iov_len: count)
            }
            return sd_journal_sendv(&vectors, Int32(vectors.count)) >= 0
        }
    }

    /// True when `journalStream` (the `JOURNAL_STREAM` value, `<device>:<inode>` in decimal) names the file open
    /// on `fd`, as `fstat(2)` sees it: only then is stderr connected to journald.
    public static func streamMatches(journalStream: String?, fd: Int32 = 2) -> Bool {
        guard let journalStream, let colon = journalStream.firstIndex(of: ":"),
              let device = UInt64(journalStream[..<colon]),
              let inode = UInt64(journalStream[journalStream.index(after: colon)...]) else { return false }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }
}

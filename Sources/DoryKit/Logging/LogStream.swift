#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DoryState
import Logging
import Synchronization

/// Where log entries go.
public enum LogOutput: Sendable {
    /// One JSON line per entry on a descriptor (stderr is 2), each with a single `write(2)`.
    case fileDescriptor(Int32)
    /// Native journald entries through `sd_journal_sendv`; an entry whose send fails becomes a JSON line on the
    /// fallback descriptor.
    case journald(fallback: Int32)
    /// Each finished JSON line is handed to the closure (tests). Called under the stream's lock, one line at a time.
    case capture(@Sendable ([UInt8]) -> Void)
}

/// The shared state of doryd's log handlers: the process-wide threshold, per-logger overrides, the global metadata
/// (`processor_id`, `pod`, `namespace`, `boot_id`, …) and the serialized output. ``DoryLogging/shared`` is the
/// process's stream; tests make their own with a `.capture` output.
public final class LogStream: Sendable {
    /// Keys of the global metadata written first, in this order, once set.
    public static let globalKeyOrder = ["processor_id", "pod", "namespace", "boot_id"]

    public let output: LogOutput
    private let clock: @Sendable () -> Int64
    private let thresholdIndex: Atomic<Int>
    private let hasOverrides = Atomic<Bool>(false)
    private let overrides = Mutex<[String: Logger.Level]>([:])
    private let globals = Mutex<[LogRecord.Field]>([])
    /// Serializes writes: one line at a time, never interleaved.
    private let writeLock = Mutex<Void>(())
    /// A descriptor replacing the output's (`-1`: none); see ``redirect(toDescriptor:)``.
    private let redirected = Atomic<Int32>(-1)

    /// - Parameters:
    ///   - output: where entries go.
    ///   - threshold: the initial process-wide threshold (`info` until the configuration is read, §9.2).
    ///   - clock: wall-clock milliseconds (replaceable in tests).
    public init(output: LogOutput, threshold: Logger.Level = .info,
                clock: @escaping @Sendable () -> Int64 = { WallClock.nowMillis() })
    {
        self.output = output
        self.clock = clock
        self.thresholdIndex = Atomic(LogStream.index(of: threshold))
    }

    // MARK: Threshold

    /// The process-wide threshold: entries below it are dropped (unless a logger sets its own level).
    public var threshold: Logger.Level {
        Logger.Level.allCases[thresholdIndex.load(ordering: .relaxed)]
    }

    public func setThreshold(_ level: Logger.Level) {
        thresholdIndex.store(LogStream.index(of: level), ordering: .relaxed)
    }

    /// Per-logger levels (event-pipeline.md §10.2): a logger uses the entry with the longest matching dotted prefix
    /// of its label (`app` matches `app` and `app.pump`, not `apple`), else the threshold. Empty clears them.
    public func setLevelOverrides(_ levels: [String: Logger.Level]) {
        overrides.withLock { $0 = levels }
        hasOverrides.store(!levels.isEmpty, ordering: .releasing)
    }

    /// The level a logger with this label logs at when it has no level of its own.
    public func effectiveLevel(forLabel label: String) -> Logger.Level {
        guard hasOverrides.load(ordering: .acquiring) else { return threshold }
        let found: Logger.Level? = overrides.withLock { table in
            var candidate = Substring(label)
            while true {
                if let level = table[String(candidate)] { return level }
                guard let dot = candidate.lastIndex(of: ".") else { return nil }
                candidate = candidate[..<dot]
            }
        }
        return found ?? threshold
    }

    // MARK: Global metadata

    /// Sets (or with nil removes) a key written on every line after `msg`, e.g. `processor_id` once known. A key
    /// not set is omitted, never written as null.
    public func setGlobalMetadata(key: String, value: Logger.MetadataValue?) {
        globals.withLock { fields in
            fields.removeAll { $0.key == key }
            guard let value else { return }
            let field = LogRecord.Field(key: key, value: value)
            if let rank = LogStream.globalKeyOrder.firstIndex(of: key) {
                // Keep the known keys in their fixed order, before any other global key.
                let position = fields.firstIndex { other in
                    guard let otherRank = LogStream.globalKeyOrder.firstIndex(of: other.key) else { return true }
                    return otherRank > rank
                } ?? fields.count
                fields.insert(field, at: position)
            } else {
                fields.append(field)
            }
        }
    }

    /// The global metadata, in output order.
    public var globalMetadata: [LogRecord.Field] { globals.withLock { $0 } }

    // MARK: Output

    /// Writes the JSON lines (and journald's fallback lines) to `fd` from now on instead of the output's descriptor.
    /// The event workload's captured output (event-pipeline.md §10.3) points fd 2 at a pipe and keeps the log on a
    /// duplicate of the original stderr this way. A negative `fd` goes back to the output's own descriptor. A
    /// `.capture` output is not affected.
    public func redirect(toDescriptor fd: Int32) {
        writeLock.withLock { _ in redirected.store(fd, ordering: .relaxed) }
    }

    /// The descriptor JSON lines go to: the redirected one when set, else `configured`.
    private func descriptor(_ configured: Int32) -> Int32 {
        let fd = redirected.load(ordering: .relaxed)
        return fd >= 0 ? fd : configured
    }

    /// Stamps the time and writes an entry made of `level`, `label`, `message` and the fields.
    func emit(level: Logger.Level, label: String, message: String, fields: [LogRecord.Field]) {
        write(LogRecord(millis: clock(), level: level, label: label, message: message, fields: fields))
    }

    /// Writes one record: journald when so configured (falling back to a JSON line if the send fails), else one
    /// JSON line with a single `write(2)`, serialized with every other entry of this stream.
    public func write(_ record: LogRecord) {
        switch output {
        case .fileDescriptor(let fd):
            let line = record.jsonLine()
            writeLock.withLock { _ in LogStream.writeAll(line, to: descriptor(fd)) }
        case .journald(let fallback):
            let sent = writeLock.withLock { _ in JournaldEntry(record: record).send() }
            if !sent {
                let line = record.jsonLine()
                writeLock.withLock { _ in LogStream.writeAll(line, to: descriptor(fallback)) }
            }
        case .capture(let sink):
            let line = record.jsonLine()
            writeLock.withLock { _ in sink(line) }
        }
    }

    /// Waits for any entry being written to finish. Lines are written unbuffered, so nothing else is pending;
    /// call before exit.
    public func flush() {
        writeLock.withLock { _ in }
    }

    /// Writes every byte, retrying after `EINTR`, short writes and (briefly) `EAGAIN`. Lines up to `PIPE_BUF`
    /// bytes reach a pipe in one piece.
    static func writeAll(_ bytes: [UInt8], to fd: Int32) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            var waits = 0
            while offset < buffer.count {
                let written = systemWrite(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && waits < 10 {
                    waits += 1
                    var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&pfd, 1, 100)
                } else {
                    return // the log has nowhere to go; never block or crash the daemon over it
                }
            }
        }
    }

    private static func index(of level: Logger.Level) -> Int {
        Logger.Level.allCases.firstIndex(of: level) ?? 2
    }
}

/// `write(2)`, named apart from ``LogStream/write(_:)``.
private func systemWrite(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, pointer, count)
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Synchronization

/// The process's logging (spec/dory-runtime.md §9.2). Call ``bootstrap()`` as the first instruction: from then on
/// every `Logger` writes JSON lines on stderr (or journald entries when `JOURNAL_STREAM` names stderr) at threshold
/// `info`. Write the first line (with `version`) before calling ``setThreshold(_:)-(Logger.Level)`` with the
/// configured `log_level`, so no threshold hides it.
public enum DoryLogging {
    /// The process-wide stream: journald when `JOURNAL_STREAM` matches `fstat(2)` of stderr, else stderr.
    public static let shared: LogStream = {
        let journal = getenv("JOURNAL_STREAM").map { String(cString: $0) }
        let output: LogOutput = JournaldEntry.streamMatches(journalStream: journal, fd: 2)
            ? .journald(fallback: 2) : .fileDescriptor(2)
        return LogStream(output: output)
    }()

    private static let bootstrapped = Atomic<Bool>(false)

    /// Installs doryd's handler as swift-log's factory. Idempotent: only the first call bootstraps swift-log
    /// (which allows one bootstrap per process).
    public static func bootstrap() {
        guard bootstrapped.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        LoggingSystem.bootstrap({ label, provider in
            DoryLogHandler(label: label, stream: shared, metadataProvider: provider)
        }, metadataProvider: nil)
    }

    /// Changes the process-wide threshold (after the configuration is read).
    public static func setThreshold(_ level: Logger.Level) {
        shared.setThreshold(level)
    }

    /// Changes the process-wide threshold to a `log_level` setting.
    public static func setThreshold(_ setting: LogLevelSetting) {
        shared.setThreshold(setting.loggerLevel)
    }

    /// Sets a key written on every line (`processor_id`, `pod`, `namespace`, `boot_id` once known); nil removes it.
    public static func setGlobalMetadata(key: String, value: String?) {
        shared.setGlobalMetadata(key: key, value: value.map(Logger.MetadataValue.string))
    }

    /// Waits until no line is being written; call before exit.
    public static func flush() {
        shared.flush()
    }

    /// A logger on the shared stream without going through swift-log's bootstrap (for library code and tests).
    public static func logger(label: String, userFacing: Bool? = nil,
                              contextMetadata: Logger.Metadata = [:]) -> Logger
    {
        Logger(label: label) { label in
            DoryLogHandler(label: label, stream: shared, userFacing: userFacing, contextMetadata: contextMetadata)
        }
    }
}

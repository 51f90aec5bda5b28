#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DoryKit
import DoryState
import Logging

/// `doryd invoke FILE|-` (§2.6): one JSON body, classified as in §2.3, each event run through `runApp` in this
/// process, in record order, with a fresh `invocation_id`. No queue, no HTTP, no metrics.
///
/// The host does what belongs to the runtime before calling ``run(file:)``: takes the processor lock for the whole
/// run (held by a running doryd → exit 4), loads the newest valid generation read-only (none at all → nil; some but
/// none valid → exit 4 without calling this) and passes its state as `initialState`, and wires `persist` to write
/// each tag commit as a normal generation (reason `api`, strategy `invoke`, restart count 0).
public struct EventInvoke: Sendable {
    /// What the CLI prints and exits with.
    public struct Outcome: Sendable, Equatable {
        /// One compact JSON summary per invocation, in record order: the only standard-output lines.
        public var summaries: [String]
        /// 0 all `success`/`skipped`; 1 any `error`; 2 input rejected; 4 state directory unusable.
        public var exitCode: Int32
        /// The reason for exit 2 or 4, for standard error (nothing goes to standard output then).
        public var error: String?

        /// The summaries as standard output text: one line each, each ending in `\n`.
        public var standardOutput: String { summaries.map { $0 + "\n" }.joined() }
    }

    /// Largest input read (a body this large is refused with exit 2).
    public static let maxInputBytes = 64 << 20

    public let settings: EventSettings
    private let initialState: JSONObject?
    private let persist: EventStatePersist
    private let application: any Application.Type
    private let logStream: LogStream
    private let fileSystem: any FileSystem
    private let clock: @Sendable () -> Int64
    private let flushCapturedOutput: (@Sendable () -> Void)?

    /// - Parameters:
    ///   - settings: the configuration, read as `doryd events` reads it.
    ///   - initialState: the newest valid generation's state, or nil when there is none.
    ///   - persist: writes a tag commit's generation (see the type's note).
    ///   - application: the application (doryd's built-in example by default).
    public init(settings: EventSettings, initialState: JSONObject?, persist: @escaping EventStatePersist,
                application: any Application.Type = TemperatureAlertApp.self,
                logStream: LogStream = DoryLogging.shared, fileSystem: any FileSystem = SystemFileSystem(),
                clock: @escaping @Sendable () -> Int64 = { WallClock.nowMillis() },
                flushCapturedOutput: (@Sendable () -> Void)? = nil)
    {
        self.settings = settings
        self.initialState = initialState
        self.persist = persist
        self.application = application
        self.logStream = logStream
        self.fileSystem = fileSystem
        self.clock = clock
        self.flushCapturedOutput = flushCapturedOutput
    }

    /// Reads the body from `file`, or standard input for nil or `-`, and runs it.
    /// - Returns: the summary lines joined with `\n` (no trailing newline; empty on exit 2/4) and the exit status.
    public func run(file: String?) async -> (summaryJSON: String, exitCode: Int32) {
        let outcome = await runDetailed(file: file)
        return (outcome.summaries.joined(separator: "\n"), outcome.exitCode)
    }

    /// ``run(file:)`` with the reason of a refusal.
    public func runDetailed(file: String?) async -> Outcome {
        let bytes: [UInt8]
        switch readInput(file) {
        case .success(let b): bytes = b
        case .failure(let failure): return Outcome(summaries: [], exitCode: 2, error: failure.description)
        }
        return await run(body: bytes)
    }

    /// Classifies `body` (§2.3) and runs each event.
    public func run(body: [UInt8]) async -> Outcome {
        let classified: ClassifiedBody
        switch Envelope.classify(bytes: body) {
        case .success(let c): classified = c
        case .failure(let rejection): return Outcome(summaries: [], exitCode: 2, error: rejection.description)
        }
        let runtime: EventRuntime
        switch openRuntime() {
        case .success(let r): runtime = r
        case .failure(let failure): return Outcome(summaries: [], exitCode: 4, error: failure.description)
        }
        let app = application.init()
        var lines: [String] = []
        var anyError = false
        for record in classified.records {
            let request = InvocationRequest(invocationId: UUIDv7.make(), requestId: nil,
                                            subscriptionId: record.subscriptionId)
            guard let summary = await runApp(app, event: .object(record.event), context: request, runtime: runtime)
            else { break }  // cancelled: the CLI is being stopped
            lines.append(String(decoding: summary.encoded(), as: UTF8.self))
            if summary.status == .error { anyError = true }
        }
        return Outcome(summaries: lines, exitCode: anyError ? 1 : 0, error: nil)
    }

    // MARK: Pieces

    private func openRuntime() -> Result<EventRuntime, InvokeFailure> {
        let root = settings.channelsDirectory
        do throws(FileSystemError) {
            try fileSystem.makeDirectories(root)
        } catch {
            return .failure(InvokeFailure("state directory unusable: \(error)"))
        }
        let channels: ChannelStore
        do throws(ChannelStorageError) {
            channels = try ChannelStore(backend: FileChannelBackend(root: root, fileSystem: fileSystem),
                                        maxMessageBytes: settings.eventMaxBytes,
                                        channelMaxBytes: settings.channelMaxBytes)
        } catch {
            return .failure(InvokeFailure("channels \(root): \(error.message)"))
        }
        let state = EventState(channels: channels)
        if let initialState {
            do throws(EventStateError) {
                try state.restore(initialState)
            } catch {
                return .failure(InvokeFailure("state cannot be restored: \(error)"))
            }
        }
        let events = settings.events
        let writer = SnapshotTagCommitWriter(state: state, persist: persist)
        return .success(EventRuntime(base: events.deployment, state: state, tagWriter: writer,
                                     functionName: events.functionName, functionVersion: events.functionVersion,
                                     timeoutSeconds: settings.eventTimeoutSec, logStream: logStream,
                                     clock: clock, flushCapturedOutput: flushCapturedOutput))
    }

    private func readInput(_ file: String?) -> Result<[UInt8], InvokeFailure> {
        if let file, file != "-" {
            do throws(FileSystemError) {
                return .success(try fileSystem.readWholeFile(file, maxBytes: EventInvoke.maxInputBytes))
            } catch {
                return .failure(InvokeFailure("cannot read \(file): \(error)"))
            }
        }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(InvokeFailure("cannot read standard input: \(String(cString: strerror(errno)))"))
            }
            out.append(contentsOf: buffer[0..<n])
            if out.count > EventInvoke.maxInputBytes {
                return .failure(InvokeFailure("standard input is larger than \(EventInvoke.maxInputBytes) bytes"))
            }
        }
        return .success(out)
    }

}

/// A refusal of `doryd invoke` (its text goes to standard error).
struct InvokeFailure: Error, Sendable, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DoryKit
import Logging
import Synchronization

/// A failure to set up captured output (a `pipe`, `dup` or `dup2` call refused).
public struct OutputCaptureError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The call that failed, e.g. `pipe` or `dup2(1)`.
    public let step: String
    /// `strerror` of its errno.
    public let reason: String
    public var description: String { "captured output: \(step) failed: \(reason)" }
}

/// Captured standard output and standard error (event-pipeline.md §10.3): while the event workload runs, the
/// process's descriptors 1 and 2 write into pipes; a reader thread forwards each line as soon as it arrives as a log
/// record, logger `print` (level info) for standard output and `stderr` (level error) for standard error, attributed
/// to the invocation running when the line is read. doryd's own log keeps going to a duplicate of the original
/// stderr.
///
/// The pipeline marks the running invocation (S1 to the end of S16); the host passes ``flush()`` as the runtime's
/// `flushCapturedOutput`, which S16 calls before `invocation finished`, and calls ``stop()`` when the workload ends
/// (`doryd invoke` prints its summary lines after that, on the restored standard output).
///
/// One capture per process (the descriptors are the process's); ``start(logStream:)`` while one is running returns
/// the running one.
public final class OutputCapture: Sendable {
    /// Where a captured line came from.
    enum Source: Sendable {
        case standardOutput, standardError

        var label: String { self == .standardOutput ? "print" : "stderr" }
        var level: Logger.Level { self == .standardOutput ? .info : .error }
    }

    private struct State: Sendable {
        var output = CapturedLineSplitter()
        var error = CapturedLineSplitter()
        /// The invocation records are attributed to; nil between invocations.
        var invocation: InvocationContext?
        var outputOpen = true
        var errorOpen = true
        var stopped = false
    }

    /// The running capture, if any.
    private static let running = Mutex<OutputCapture?>(nil)

    /// The duplicate of the original stderr the log stream writes to while the capture runs.
    public let logDescriptor: Int32
    private let savedOutput: Int32
    private let outputRead: Int32
    private let errorRead: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let logStream: LogStream
    private let state = Mutex(State())
    private let thread = Mutex<pthread_t?>(nil)

    /// Largest read per descriptor and lock hold, so a flood of output never starves ``flush()``.
    private static let readChunk = 64 * 1024

    private init(logDescriptor: Int32, savedOutput: Int32, outputRead: Int32,
                 errorRead: Int32, wakeRead: Int32, wakeWrite: Int32, logStream: LogStream)
    {
        self.logDescriptor = logDescriptor
        self.savedOutput = savedOutput
        self.outputRead = outputRead
        self.errorRead = errorRead
        self.wakeRead = wakeRead
        self.wakeWrite = wakeWrite
        self.logStream = logStream
    }

    // MARK: Starting and stopping

    /// Redirects descriptors 1 and 2 into capture pipes, points `logStream` at a duplicate of the original stderr,
    /// sets standard output to line buffering and starts the reader thread.
    public static func start(logStream: LogStream = DoryLogging.shared) throws(OutputCaptureError) -> OutputCapture {
        if let existing = running.withLock({ $0 }) { return existing }
        var opened: [Int32] = []
        func fail(_ step: String) -> OutputCaptureError {
            let error = OutputCaptureError(step: step, reason: String(cString: strerror(errno)))
            for fd in opened { close(fd) }
            return error
        }
        func duplicate(_ fd: Int32) throws(OutputCaptureError) -> Int32 {
            let copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)
            guard copy >= 0 else { throw fail("dup(\(fd))") }
            opened.append(copy)
            return copy
        }
        func makePipe() throws(OutputCaptureError) -> (read: Int32, write: Int32) {
            var fds: [Int32] = [-1, -1]
            guard pipe(&fds) == 0 else { throw fail("pipe") }
            opened += fds
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
            return (fds[0], fds[1])
        }

        let logFd = try duplicate(2)
        let savedOutput = try duplicate(1)
        let outputPipe = try makePipe()
        let errorPipe = try makePipe()
        let wake = try makePipe()

        StandardOutputStream.flush()
        logStream.redirect(toDescriptor: logFd)
        guard dup2(outputPipe.write, 1) >= 0 else {
            logStream.redirect(toDescriptor: -1)
            throw fail("dup2(1)")
        }
        guard dup2(errorPipe.write, 2) >= 0 else {
            _ = dup2(savedOutput, 1)
            logStream.redirect(toDescriptor: -1)
            throw fail("dup2(2)")
        }
        close(outputPipe.write)
        close(errorPipe.write)
        StandardOutputStream.setLineBuffered()

        let capture = OutputCapture(logDescriptor: logFd, savedOutput: savedOutput,
                                    outputRead: outputPipe.read, errorRead: errorPipe.read, wakeRead: wake.read,
                                    wakeWrite: wake.write, logStream: logStream)
        capture.startReader()
        running.withLock { $0 = capture }
        return capture
    }

    /// ``start(logStream:)``, or nil after a WARN on `logger` when the descriptors cannot be redirected: the
    /// workload then runs with its output uncaptured rather than not at all.
    public static func startOrWarn(_ logger: Logger) -> OutputCapture? {
        do throws(OutputCaptureError) {
            return try start()
        } catch {
            logger.warning("standard output is not captured", metadata: ["error": .string(error.description)])
            return nil
        }
    }

    /// Forwards what the pipes and standard output's buffer hold, emits unterminated tails, gives descriptors 1 and
    /// 2 back to the original files, stops the reader thread and points the log stream back at stderr. Idempotent.
    public func stop() {
        let first = state.withLock { s -> Bool in
            defer { s.stopped = true }
            return !s.stopped
        }
        guard first else { return }
        StandardOutputStream.flush()
        _ = dup2(savedOutput, 1)
        _ = dup2(logDescriptor, 2)
        // Descriptors 1 and 2 no longer write into the pipes: whatever is in them now is the last of it.
        state.withLock { s in
            drain(&s, all: true)
            finishTails(&s)
        }
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
        if let t = thread.withLock({ $0 }) { pthread_join(t, nil) }
        logStream.redirect(toDescriptor: -1)
        for fd in [outputRead, errorRead, wakeRead, wakeWrite, savedOutput, logDescriptor] { close(fd) }
        OutputCapture.running.withLock { if $0 === self { $0 = nil } }
    }

    // MARK: The pipeline's side

    /// S16: flushes standard output's buffer, forwards what the pipes already hold and emits each unterminated
    /// last line as a record of its own, attributed to the running invocation.
    public func flush() {
        StandardOutputStream.flush()
        state.withLock { s in
            guard !s.stopped else { return }
            drain(&s, all: true)
            finishTails(&s)
        }
    }

    /// S1: records read from now on belong to `invocation`.
    static func invocationBegan(_ invocation: InvocationContext) {
        guard let capture = running.withLock({ $0 }) else { return }
        capture.state.withLock { $0.invocation = invocation }
    }

    /// End of S16: records read from now on carry no invocation context.
    static func invocationEnded(_ invocation: InvocationContext) {
        guard let capture = running.withLock({ $0 }) else { return }
        capture.state.withLock { s in
            if s.invocation === invocation { s.invocation = nil }
        }
    }

    // MARK: Reading

    private func startReader() {
        var t = pthread_t()
        let box = Unmanaged.passRetained(self).toOpaque()
        let result = pthread_create(&t, nil, { argument in
            let capture = Unmanaged<OutputCapture>.fromOpaque(argument!).takeRetainedValue()
            capture.readLoop()
            return nil
        }, box)
        if result == 0 {
            thread.withLock { $0 = t }
        } else {
            Unmanaged<OutputCapture>.fromOpaque(box).release()
            // No reader thread: lines are still forwarded at each flush (S16) and at stop.
        }
    }

    /// The reader thread: waits for bytes on either pipe, forwards them, until ``stop()`` wakes it.
    private func readLoop() {
        while true {
            let (outputOpen, errorOpen) = state.withLock { ($0.outputOpen, $0.errorOpen) }
            var fds = [
                pollfd(fd: outputOpen ? outputRead : -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: errorOpen ? errorRead : -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&fds, nfds_t(fds.count), -1)
            if ready < 0 {
                if errno == EINTR { continue }
                return
            }
            if fds[2].revents != 0 { return }
            state.withLock { s in
                guard !s.stopped else { return }
                drain(&s, all: false)
            }
        }
    }

    /// Reads what the pipes hold (one chunk each unless `all`) and forwards the complete lines. Runs under the lock.
    private func drain(_ s: inout State, all: Bool) {
        var buffer = [UInt8](repeating: 0, count: OutputCapture.readChunk)
        for source in [Source.standardOutput, .standardError] {
            let fd = source == .standardOutput ? outputRead : errorRead
            while source == .standardOutput ? s.outputOpen : s.errorOpen {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    let records = source == .standardOutput ? s.output.feed(buffer[..<n]) : s.error.feed(buffer[..<n])
                    emit(records, source: source, invocation: s.invocation)
                    if !all { break }
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    // 0: every writer is gone (after stop); EAGAIN: nothing more now.
                    if n == 0 {
                        if source == .standardOutput { s.outputOpen = false } else { s.errorOpen = false }
                    }
                    break
                }
            }
        }
    }

    private func finishTails(_ s: inout State) {
        emit(s.output.finish(), source: .standardOutput, invocation: s.invocation)
        emit(s.error.finish(), source: .standardError, invocation: s.invocation)
    }

    private func emit(_ records: [String], source: Source, invocation: InvocationContext?) {
        guard !records.isEmpty else { return }
        let logger: Logger
        if let invocation {
            logger = invocation.logger(label: source.label)
        } else {
            let stream = logStream
            logger = Logger(label: source.label) { label in DoryLogHandler(label: label, stream: stream) }
        }
        for record in records {
            logger.log(level: source.level, "\(record)")
        }
    }
}

/// The C library's `stdout` stream, found through `dlsym` (Swift 6 refuses to read the mutable C global).
enum StandardOutputStream {
    private static func stream() -> UnsafeMutablePointer<FILE>? {
        guard let symbol = dlsym(nil, "stdout") else { return nil }
        return symbol.assumingMemoryBound(to: UnsafeMutablePointer<FILE>?.self).pointee
    }

    /// `fflush(stdout)`: `print` output still in the buffer reaches descriptor 1.
    static func flush() {
        if let out = stream() { fflush(out) }
    }

    /// `setvbuf(stdout, NULL, _IOLBF, 0)`: each printed line reaches descriptor 1 when it ends.
    static func setLineBuffered() {
        if let out = stream() { setvbuf(out, nil, _IOLBF, 0) }
    }
}

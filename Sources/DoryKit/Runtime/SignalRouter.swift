@preconcurrency import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Signal handling through Dispatch signal sources only (spec §5.1): the handled signals are blocked with
/// `pthread_sigmask` before any thread exists, so every thread inherits the mask and libdispatch's signalfd sees
/// them, including one already pending. Events that arrive before a handler is attached are buffered.
public final class SignalRouter: Sendable {
    /// Signals doryd handles in every mode.
    public static let standardSignals: [Int32] = [SIGTERM, SIGINT, SIGUSR1, SIGHUP]
    /// Added in run mode.
    public static let runModeSignals: [Int32] = [SIGQUIT, SIGUSR2, SIGWINCH, SIGCHLD]

    private struct State {
        var handler: (@Sendable (Int32) -> Void)?
        var buffered: [Int32] = []
        var sources: [any DispatchSourceSignal] = []
    }
    private let state = Mutex(State())
    private let queue = DispatchQueue(label: "doryd.signals")
    private nonisolated(unsafe) static var installed: SignalRouter?

    /// Blocks `signals` for the process and creates their sources. Call first thing in `main`, before any thread.
    /// Idempotent: a second call returns the router of the first.
    @discardableResult
    public static func install(signals: [Int32] = standardSignals) -> SignalRouter {
        if let installed { return installed }
        var set = sigset_t()
        sigemptyset(&set)
        for sig in signals { sigaddset(&set, sig) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        signal(SIGPIPE, SIG_IGN)
        let router = SignalRouter()
        router.createSources(signals)
        installed = router
        return router
    }

    private func createSources(_ signals: [Int32]) {
        var sources: [any DispatchSourceSignal] = []
        for sig in signals {
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { [weak self] in self?.deliver(sig) }
            source.resume()
            sources.append(source)
        }
        state.withLock { $0.sources = sources }
    }

    private func deliver(_ sig: Int32) {
        let handler = state.withLock { s -> (@Sendable (Int32) -> Void)? in
            if s.handler == nil { s.buffered.append(sig) }
            return s.handler
        }
        handler?(sig)
    }

    /// Attaches the handler for signals from now on and returns those that arrived before, in order, for the
    /// caller to act on first.
    public func attach(_ handler: @escaping @Sendable (Int32) -> Void) -> [Int32] {
        state.withLock { s -> [Int32] in
            s.handler = handler
            defer { s.buffered.removeAll() }
            return s.buffered
        }
    }

    /// True when a stop signal (SIGTERM/SIGINT) is buffered, waiting for a handler.
    public var stopBuffered: Bool {
        state.withLock { $0.buffered.contains { $0 == SIGTERM || $0 == SIGINT } }
    }

    /// Parks the calling (main) thread for good with the handled signals still blocked. Use it instead of
    /// `dispatchMain()`: on Linux libdispatch parks the main thread in `sigsuspend` with an empty mask, so a stop
    /// signal could be delivered to that thread with its default action (death by SIGTERM) instead of reaching the
    /// signal source's signalfd.
    public static func parkMainThread() -> Never {
        while true { pause() }
    }

    public static func name(_ sig: Int32) -> String {
        switch sig {
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGUSR1: "SIGUSR1"
        case SIGUSR2: "SIGUSR2"
        case SIGHUP: "SIGHUP"
        case SIGQUIT: "SIGQUIT"
        case SIGWINCH: "SIGWINCH"
        case SIGCHLD: "SIGCHLD"
        default: "SIG\(sig)"
        }
    }
}

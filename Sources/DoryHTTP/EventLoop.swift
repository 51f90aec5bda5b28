import Glibc
import Synchronization

/// Something the event loop polls: a listening socket, a connection or the wake-up pipe.
/// Subclasses are used only on the loop thread.
class PollTarget {
    /// Index in the loop's poll arrays; -1 when not registered.
    var pollIndex = -1

    /// Handles `revents` reported by `poll(2)`.
    func handleEvents(_ revents: Int16) {}

    /// Periodic timeout check.
    func sweep(now: UInt64) {}

    /// For the connection cap: when this target went idle (smaller = evicted first), or nil if it may not be evicted.
    var evictionKey: UInt64? { nil }

    /// Closes the target (loop shutdown or eviction).
    func closeTarget() {}

    /// Server shutdown began: stop taking new work.
    func beginShutdown() {}
}

/// One thread running `poll(2)` over every socket of a server.
///
/// Threading: all sockets, connections and their buffers are confined to this thread. Other threads
/// talk to it only through `execute`, a mutex-guarded task list plus a byte on a wake-up pipe.
/// Handlers run on this thread and answer synchronously (no hop, no allocation for the hand-off) or
/// later through the mailbox. `poll` rather than epoll because the Glibc module does not export epoll;
/// with the connection cap (512) a poll set stays small.
final class EventLoop: @unchecked Sendable {
    let context: ServerContext

    // Shared between threads.
    private let mailbox = Mutex<[@Sendable () -> Void]>([])
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let loopThread = Atomic<UInt>(0)
    private let wakePending = Atomic<Bool>(false)

    // Loop-confined.
    private var pollFDs: [pollfd] = []
    private var targets: [PollTarget] = []
    private var vacated: [Int] = []
    private(set) var now: UInt64 = SystemCalls.monotonicNanoseconds()
    private var nextSweep: UInt64 = 0
    private var stopping = false
    private var stopDeadline: UInt64 = 0
    var connectionCount = 0
    /// Listeners waiting out a descriptor shortage (they need the periodic sweep).
    var pausedListenerCount = 0
    private(set) var isStopping = false
    private var thread: pthread_t?
    private let tick: UInt64

    init(context: ServerContext) throws(HTTPBindError) {
        self.context = context
        switch SystemCalls.makePipe() {
        case .success(let (readEnd, writeEnd)):
            wakeRead = readEnd
            wakeWrite = writeEnd
        case .failure(let error):
            throw HTTPBindError(address: "event loop", reason: .system(operation: error.operation, errno: error.errno))
        }
        let shortest = min(context.headerTimeoutNanos, context.idleTimeoutNanos)
        tick = min(250_000_000, max(5_000_000, shortest / 5))
        register(WakeUp(loop: self), fd: wakeRead, events: Int16(POLLIN))
    }

    /// Whether the caller runs on the loop thread.
    var isLoopThread: Bool {
        let id = loopThread.load(ordering: .acquiring)
        return id != 0 && pthread_equal(pthread_self(), pthread_t(id)) != 0
    }

    func start() {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(self).toOpaque()
        let result = pthread_create(
            &thread, nil,
            { argument in
                let loop = Unmanaged<EventLoop>.fromOpaque(argument!).takeRetainedValue()
                loop.run()
                return nil
            }, box)
        precondition(result == 0, "pthread_create failed: \(SystemCalls.errnoText(result))")
        self.thread = thread
    }

    /// Runs `task` on the loop thread soon (thread-safe).
    func execute(_ task: @escaping @Sendable () -> Void) {
        mailbox.withLock { $0.append(task) }
        if !wakePending.exchange(true, ordering: .acquiringAndReleasing) {
            var byte: UInt8 = 1
            _ = write(wakeWrite, &byte, 1)
        }
    }

    /// Begins a graceful stop; the loop thread ends once no connection remains or the grace period is over.
    func stop(gracePeriodNanos: UInt64) {
        execute { [self] in
            guard !stopping else { return }
            stopping = true
            isStopping = true
            stopDeadline = now &+ gracePeriodNanos
            for target in targets { target.beginShutdown() }
        }
    }

    /// Waits for the loop thread to end (not from the loop thread itself).
    func join() {
        guard !isLoopThread, let thread else { return }
        pthread_join(thread, nil)
        self.thread = nil
    }

    // MARK: Registration (loop thread)

    func register(_ target: PollTarget, fd: Int32, events: Int16) {
        target.pollIndex = pollFDs.count
        pollFDs.append(pollfd(fd: fd, events: events, revents: 0))
        targets.append(target)
    }

    /// Removes a target; its slot is reclaimed after the current poll round.
    func unregister(_ target: PollTarget) {
        let index = target.pollIndex
        guard index >= 0 else { return }
        pollFDs[index].fd = -1
        pollFDs[index].events = 0
        pollFDs[index].revents = 0
        target.pollIndex = -1
        vacated.append(index)
    }

    @inline(__always)
    func setEvents(_ target: PollTarget, _ events: Int16) {
        let index = target.pollIndex
        if index >= 0 && pollFDs[index].events != events { pollFDs[index].events = events }
    }

    /// Closes the connection idle the longest (or a lingering one) to make room; false if none may be evicted.
    func evictLongestIdle() -> Bool {
        var victim: PollTarget?
        var oldest = UInt64.max
        for target in targets where target.pollIndex >= 0 {
            if let key = target.evictionKey, key < oldest {
                oldest = key
                victim = target
                if key == 0 { break }
            }
        }
        guard let victim else { return false }
        victim.closeTarget()
        return true
    }

    // MARK: Loop

    private func run() {
        loopThread.store(UInt(pthread_self()), ordering: .releasing)
        while true {
            reclaimVacatedSlots()
            if stopping && (connectionCount == 0 || now >= stopDeadline) { break }
            let timeout: Int32 = (connectionCount > 0 || stopping || pausedListenerCount > 0) ? Int32(tick / 1_000_000) : -1
            let ready = poll(&pollFDs, nfds_t(pollFDs.count), timeout)
            now = SystemCalls.monotonicNanoseconds()
            if ready > 0 {
                var remaining = ready
                var index = 0
                let count = pollFDs.count
                while index < count && remaining > 0 {
                    let revents = pollFDs[index].revents
                    if revents != 0 {
                        remaining -= 1
                        pollFDs[index].revents = 0
                        if pollFDs[index].fd >= 0 { targets[index].handleEvents(revents) }
                    }
                    index += 1
                }
            } else if ready < 0 && errno != EINTR {
                fatalError("poll failed: \(SystemCalls.errnoText(errno))")
            }
            if now >= nextSweep {
                nextSweep = now &+ tick
                for target in targets where target.pollIndex >= 0 { target.sweep(now: now) }
            }
        }
        // Force-close whatever is left.
        for target in targets where target.pollIndex >= 0 { target.closeTarget() }
        reclaimVacatedSlots()
        runMailbox()
        targets.removeAll()
        pollFDs.removeAll()
    }

    deinit {
        // Closed here, not when the thread ends: a late responder may still write a wake-up byte.
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    private func reclaimVacatedSlots() {
        guard !vacated.isEmpty else { return }
        vacated.sort(by: >)
        for index in vacated {
            let last = pollFDs.count - 1
            if index != last {
                pollFDs[index] = pollFDs[last]
                targets[index] = targets[last]
                targets[index].pollIndex = index
            }
            pollFDs.removeLast()
            targets.removeLast()
        }
        vacated.removeAll(keepingCapacity: true)
    }

    fileprivate func runMailbox() {
        wakePending.store(false, ordering: .releasing)
        let tasks = mailbox.withLock { tasks -> [@Sendable () -> Void] in
            let taken = tasks
            tasks.removeAll(keepingCapacity: true)
            return taken
        }
        for task in tasks { task() }
    }

    fileprivate func drainWakePipe() {
        var scratch: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        while withUnsafeMutableBytes(of: &scratch, { read(wakeRead, $0.baseAddress, $0.count) }) > 0 {}
    }
}

/// The read end of the wake-up pipe: runs the mailbox.
private final class WakeUp: PollTarget {
    unowned let loop: EventLoop
    init(loop: EventLoop) { self.loop = loop }

    override func handleEvents(_ revents: Int16) {
        loop.drainWakePipe()
        loop.runMailbox()
    }
}

import Glibc
import Synchronization

/// Something the event loop watches: a listening socket, a connection or the wake-up pipe.
/// Subclasses are used only on the loop thread.
class PollTarget {
    /// Slot in the loop's table; -1 when not registered.
    var pollIndex = -1
    /// The epoll interest currently registered.
    var interest: UInt32 = 0
    var watchedFD: Int32 = -1

    /// Handles the epoll event mask.
    func handleEvents(_ events: UInt32) {}

    /// Periodic timeout check.
    func sweep(now: UInt64) {}

    /// For the connection cap: when this target went idle (smaller = evicted first), or nil if it may not be evicted.
    var evictionKey: UInt64? { nil }

    /// Closes the target (loop shutdown or eviction).
    func closeTarget() {}

    /// Server shutdown began: stop taking new work.
    func beginShutdown() {}
}

/// One thread running a level-triggered epoll loop over every socket of a server.
///
/// Threading: all sockets, connections and their buffers are confined to this thread. Other threads
/// talk to it only through `execute`, a mutex-guarded task list plus a byte on a wake-up pipe.
/// Handlers run on this thread and answer synchronously (no hop, no allocation for the hand-off) or
/// later through the mailbox.
final class EventLoop: @unchecked Sendable {
    let context: ServerContext

    // Shared between threads.
    private let mailbox = Mutex<[@Sendable () -> Void]>([])
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let epoll: Int32
    private let loopThread = Atomic<UInt>(0)
    private let wakePending = Atomic<Bool>(false)
    private let threadHandle = Mutex<pthread_t?>(nil)

    // Loop-confined.
    /// Registered targets by slot; an event carries its slot and the slot's generation, so an event
    /// for a target closed earlier in the same batch never reaches the slot's next owner.
    private var slots: [PollTarget?] = []
    private var generations: [UInt32] = []
    private var freeSlots: [Int] = []
    private(set) var now: UInt64 = SystemCalls.monotonicNanoseconds()
    private var nextSweep: UInt64 = 0
    private var stopping = false
    private var stopDeadline: UInt64 = 0
    var connectionCount = 0
    /// Listeners waiting out a descriptor shortage (they need the periodic sweep).
    var pausedListenerCount = 0
    private(set) var isStopping = false
    private let tick: UInt64
    private static let batchSize = 256

    init(context: ServerContext) throws(HTTPBindError) {
        self.context = context
        epoll = SystemCalls.epollCreate()
        if epoll < 0 {
            throw HTTPBindError(address: "event loop", reason: .system(operation: "epoll_create1", errno: errno))
        }
        switch SystemCalls.makePipe() {
        case .success(let (readEnd, writeEnd)):
            wakeRead = readEnd
            wakeWrite = writeEnd
        case .failure(let error):
            Glibc.close(epoll)
            throw HTTPBindError(address: "event loop", reason: .system(operation: error.operation, errno: error.errno))
        }
        let shortest = min(context.headerTimeoutNanos, context.idleTimeoutNanos)
        tick = min(250_000_000, max(5_000_000, shortest / 5))
        register(WakeUp(loop: self), fd: wakeRead, events: SystemCalls.epollIn)
    }

    deinit {
        // Closed here, not when the thread ends: a late responder may still write a wake-up byte.
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
        Glibc.close(epoll)
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
        threadHandle.withLock { $0 = thread }
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
            for case let target? in slots { target.beginShutdown() }
        }
    }

    /// Waits for the loop thread to end (not from the loop thread itself).
    func join() {
        guard !isLoopThread, let thread = threadHandle.withLock({ $0.take() }) else { return }
        pthread_join(thread, nil)
    }

    // MARK: Registration (loop thread)

    func register(_ target: PollTarget, fd: Int32, events: UInt32) {
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            slots[slot] = target
        } else {
            slot = slots.count
            slots.append(target)
            generations.append(0)
        }
        target.pollIndex = slot
        target.interest = events
        target.watchedFD = fd
        let error = SystemCalls.epollControl(epoll, SystemCalls.epollAdd, fd, events: events, data: eventData(slot))
        if error != 0 {
            // Only ENOMEM/ENOSPC are possible here; the target cannot be served.
            unregister(target)
            target.closeTarget()
        }
    }

    /// Stops watching a target (call before closing its descriptor).
    func unregister(_ target: PollTarget) {
        let slot = target.pollIndex
        guard slot >= 0 else { return }
        _ = SystemCalls.epollControl(epoll, SystemCalls.epollDelete, target.watchedFD, events: 0, data: 0)
        slots[slot] = nil
        generations[slot] &+= 1
        freeSlots.append(slot)
        target.pollIndex = -1
        target.watchedFD = -1
    }

    @inline(__always)
    func setEvents(_ target: PollTarget, _ events: UInt32) {
        guard target.interest != events, target.pollIndex >= 0 else { return }
        target.interest = events
        _ = SystemCalls.epollControl(
            epoll, SystemCalls.epollModify, target.watchedFD, events: events, data: eventData(target.pollIndex))
    }

    @inline(__always)
    private func eventData(_ slot: Int) -> UInt64 {
        UInt64(generations[slot]) << 32 | UInt64(slot)
    }

    /// Closes the connection idle the longest (or a lingering one) to make room; false if none may be evicted.
    func evictLongestIdle() -> Bool {
        var victim: PollTarget?
        var oldest = UInt64.max
        for case let target? in slots {
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
        let stride = SystemCalls.epollEventStride
        let events = UnsafeMutableRawPointer.allocate(byteCount: Self.batchSize * stride, alignment: 8)
        defer { events.deallocate() }
        while true {
            if stopping && (connectionCount == 0 || now >= stopDeadline) { break }
            let timeout: Int32 =
                (connectionCount > 0 || stopping || pausedListenerCount > 0) ? Int32(tick / 1_000_000) : -1
            let ready = SystemCalls.epollWait(epoll, events, capacity: Int32(Self.batchSize), timeout: timeout)
            now = SystemCalls.monotonicNanoseconds()
            if ready > 0 {
                for index in 0..<Int(ready) {
                    let event = events + index * stride
                    let mask = event.loadUnaligned(as: UInt32.self)
                    let data = event.loadUnaligned(fromByteOffset: SystemCalls.epollDataOffset, as: UInt64.self)
                    let slot = Int(data & 0xFFFF_FFFF)
                    guard slot < slots.count, generations[slot] == UInt32(data >> 32), let target = slots[slot] else {
                        continue
                    }
                    target.handleEvents(mask)
                }
            } else if ready < 0 && errno != EINTR {
                fatalError("epoll_wait failed: \(SystemCalls.errnoText(errno))")
            }
            if now >= nextSweep {
                nextSweep = now &+ tick
                for case let target? in slots { target.sweep(now: now) }
            }
        }
        // Force-close whatever is left.
        for case let target? in slots { target.closeTarget() }
        runMailbox()
        slots.removeAll()
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

    override func handleEvents(_ events: UInt32) {
        loop.drainWakePipe()
        loop.runMailbox()
    }
}

import Glibc

/// A growable byte buffer with a read and a write index, reused for the life of a connection.
/// Not thread-safe: owned by one connection on its event loop.
final class ByteBuffer {
    private(set) var base: UnsafeMutableRawPointer
    private(set) var capacity: Int
    private(set) var readIndex = 0
    private(set) var writeIndex = 0
    let initialCapacity: Int

    init(capacity: Int) {
        initialCapacity = capacity
        self.capacity = capacity
        base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    }

    deinit { base.deallocate() }

    var readableCount: Int { writeIndex - readIndex }
    var isEmpty: Bool { writeIndex == readIndex }
    var readable: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base + readIndex, count: writeIndex - readIndex) }
    var writablePointer: UnsafeMutableRawPointer { base + writeIndex }
    var writableCount: Int { capacity - writeIndex }

    /// Drops `count` read bytes; an emptied buffer starts again at offset 0.
    @inline(__always)
    func consume(_ count: Int) {
        readIndex += count
        if readIndex == writeIndex {
            readIndex = 0
            writeIndex = 0
        }
    }

    /// Marks `count` bytes written at `writablePointer` as readable.
    @inline(__always)
    func commit(_ count: Int) { writeIndex += count }

    func clear() {
        readIndex = 0
        writeIndex = 0
    }

    /// Gives the memory back when a large message grew the buffer (keeps idle connections small).
    func shrinkIfLarge() {
        guard isEmpty, capacity > 4 * initialCapacity, capacity > 64 * 1024 else { return }
        base.deallocate()
        capacity = initialCapacity
        base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    }

    /// Makes at least `minimum` writable bytes by moving unread bytes to the front and, if needed,
    /// growing up to `maxCapacity`; returns the writable byte count (0 when the buffer is full at its bound).
    func reserveWritable(minimum: Int, maxCapacity: Int) -> Int {
        if writableCount >= minimum { return writableCount }
        if readIndex > 0 {
            let unread = readableCount
            if unread > 0 { memmove(base, base + readIndex, unread) }
            readIndex = 0
            writeIndex = unread
            if writableCount >= minimum { return writableCount }
        }
        if capacity < maxCapacity {
            grow(to: min(maxCapacity, max(capacity * 2, writeIndex + minimum)))
        }
        return writableCount
    }

    private func grow(to newCapacity: Int) {
        let newBase = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        let unread = readableCount
        if unread > 0 { newBase.copyMemory(from: base + readIndex, byteCount: unread) }
        base.deallocate()
        base = newBase
        capacity = newCapacity
        readIndex = 0
        writeIndex = unread
    }

    @inline(__always)
    private func ensureAppendable(_ count: Int) {
        if writableCount < count { _ = reserveWritable(minimum: count, maxCapacity: Int.max) }
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        ensureAppendable(bytes.count)
        (base + writeIndex).copyMemory(from: source, byteCount: bytes.count)
        writeIndex += bytes.count
    }

    func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    func append(_ text: StaticString) {
        append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    func append(_ text: String) {
        var text = text
        text.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always)
    func append(byte: UInt8) {
        ensureAppendable(1)
        base.storeBytes(of: byte, toByteOffset: writeIndex, as: UInt8.self)
        writeIndex += 1
    }

    /// Appends a non-negative integer in decimal.
    func append(decimal value: Int) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch
        withUnsafeMutableBytes(of: &digits) { scratch in
            var position = scratch.count
            var rest = value
            repeat {
                position -= 1
                scratch[position] = UInt8(truncatingIfNeeded: 0x30 + rest % 10)
                rest /= 10
            } while rest > 0 && position > 0
            append(UnsafeRawBufferPointer(rebasing: scratch[position...]))
        }
    }
}

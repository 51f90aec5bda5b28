#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DoryState
import Synchronization

/// Base64 (RFC 4648 §4, standard alphabet) as the default ingestion parser reads it (§6.3): ASCII whitespace is
/// ignored, `=` padding is optional but must be correct when present.
public enum Base64 {
    public static func decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        var count = 0
        var padding = 0
        for b in text.utf8 {
            if b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D || b == 0x0C { continue }
            if b == UInt8(ascii: "=") {
                padding += 1
                continue
            }
            if padding > 0 { return nil }  // data after padding
            let v: UInt32
            switch b {
            case 65...90: v = UInt32(b - 65)
            case 97...122: v = UInt32(b - 71)
            case 48...57: v = UInt32(b) + 4
            case UInt8(ascii: "+"): v = 62
            case UInt8(ascii: "/"): v = 63
            default: return nil
            }
            accumulator = (accumulator << 6) | v
            bits += 6
            count += 1
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((accumulator >> UInt32(bits)) & 0xFF))
            }
        }
        let remainder = count % 4
        if remainder == 1 { return nil }
        if padding > 0 {
            guard remainder != 0, padding == 4 - remainder else { return nil }
        }
        return out
    }

    public static func encode(_ bytes: [UInt8]) -> String {
        let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        var i = 0
        while i + 2 < bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [table[Int(n >> 18)], table[Int((n >> 12) & 63)], table[Int((n >> 6) & 63)], table[Int(n & 63)]]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out += [table[Int(n >> 18)], table[Int((n >> 12) & 63)], 61, 61]
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [table[Int(n >> 18)], table[Int((n >> 12) & 63)], table[Int((n >> 6) & 63)], 61]
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// CRC-32/IEEE (the checksum of a queue line, §2.4).
public enum CRC32 {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var c: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        return c ^ 0xFFFF_FFFF
    }
}

/// UUID version 7 in lowercase canonical form: 48-bit Unix ms, version, 74 random bits (unique across restarts).
public enum UUIDv7 {
    /// SplitMix64 seeded once from the system generator: no system call per id.
    private static let random = Mutex<UInt64>({
        var system = SystemRandomNumberGenerator()
        return system.next()
    }())

    private static func next() -> UInt64 {
        random.withLock { state in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    public static func make(millis: Int64 = WallClock.nowMillis()) -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        let ms = UInt64(max(millis, 0))
        for i in 0..<6 { bytes[i] = UInt8((ms >> UInt64(8 * (5 - i))) & 0xFF) }
        let r1 = next()
        let r2 = next()
        for i in 0..<2 { bytes[6 + i] = UInt8((r1 >> UInt64(8 * i)) & 0xFF) }
        for i in 0..<8 { bytes[8 + i] = UInt8((r2 >> UInt64(8 * i)) & 0xFF) }
        bytes[6] = (bytes[6] & 0x0F) | 0x70
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(36)
        for (i, b) in bytes.enumerated() {
            if i == 4 || i == 6 || i == 8 || i == 10 { out.append(UInt8(ascii: "-")) }
            out.append(hex[Int(b >> 4)])
            out.append(hex[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Monotonic milliseconds (CLOCK_MONOTONIC).
enum MonotonicClock {
    static func nanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

extension String {
    /// The text cut to at most `maxBytes` UTF-8 bytes at a character boundary (§4.5).
    func truncatedUTF8(maxBytes: Int) -> String {
        if utf8.count <= maxBytes { return self }
        var used = 0
        var end = startIndex
        for ch in self {
            let n = ch.utf8.count
            if used + n > maxBytes { break }
            used += n
            end = index(after: end)
        }
        return String(self[..<end])
    }
}

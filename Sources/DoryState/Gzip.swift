// gzip (RFC 1952) through zlib: what snapshot files are made of (spec §6.1).
import CZlib

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why gzip data could not be read (or written). `reason` is the §6.4 quarantine reason.
public struct GzipError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Not gzip, or a damaged header or deflate stream.
        case badGzip = "bad_gzip"
        /// The data ends inside a member.
        case truncated
        /// CRC-32 or ISIZE does not match the inflated data.
        case crcMismatch = "crc_mismatch"
        /// Bytes after the last member.
        case trailingData = "trailing_data"
        /// The inflated data would exceed the limit.
        case tooLarge = "too_large"
        /// zlib failed to compress (out of memory, bad level).
        case compressFailed = "compress_failed"
    }

    public let kind: Kind
    /// Details, e.g. zlib's message.
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The §6.4 reason text (`bad_gzip`, `truncated`, `crc_mismatch`, `trailing_data`, `too_large`).
    public var reason: String { kind.rawValue }
    public var description: String { "\(kind.rawValue): \(message)" }
}

/// One-shot gzip compression and decompression.
public enum Gzip {
    /// Compresses `bytes` into one gzip member as zlib writes it with no header fields set: FLG 0, MTIME 0,
    /// OS 3 (Unix). `level` is 0 (stored) to 9.
    public static func compress(_ bytes: [UInt8], level: Int) throws(GzipError) -> [UInt8] {
        guard (0...9).contains(level) else { throw GzipError(.compressFailed, "compression level \(level) not in 0...9") }
        var stream = z_stream()
        let initResult = dory_deflate_init_gzip(&stream, Int32(level))
        guard initResult == Z_OK else { throw GzipError(.compressFailed, "deflateInit2 failed (\(initResult))") }
        defer { deflateEnd(&stream) }
        // deflateBound covers the gzip header and trailer too, so one pass with Z_FINISH suffices.
        let bound = Int(deflateBound(&stream, uLong(bytes.count)))
        var failure: GzipError?
        let out = [UInt8](unsafeUninitializedCapacity: bound) { outBuffer, initializedCount in
            bytes.withUnsafeBufferPointer { input in
                var inputOffset = 0
                stream.next_out = outBuffer.baseAddress
                stream.avail_out = uInt(bound)
                while true {
                    let chunk = min(input.count - inputOffset, Int(Int32.max))
                    stream.next_in = input.baseAddress.map { UnsafeMutablePointer(mutating: $0 + inputOffset) }
                    stream.avail_in = uInt(chunk)
                    let last = inputOffset + chunk == input.count
                    let r = deflate(&stream, last ? Z_FINISH : Z_NO_FLUSH)
                    inputOffset += chunk - Int(stream.avail_in)
                    if r == Z_STREAM_END { break }
                    if r != Z_OK && r != Z_BUF_ERROR || stream.avail_out == 0 {
                        failure = GzipError(.compressFailed, "deflate failed (\(r))")
                        break
                    }
                }
            }
            initializedCount = failure == nil ? Int(stream.total_out) : 0
        }
        if let failure { throw failure }
        return out
    }

    /// Decompresses gzip data: any conforming header, CRC-32 and ISIZE verified, concatenated members accepted
    /// (as `gzip -d` does), bytes after the last member rejected as `trailing_data`, and more than `maxOutput`
    /// inflated bytes rejected as `too_large` (inflating stops there).
    public static func decompress(_ bytes: [UInt8], maxOutput: Int) throws(GzipError) -> [UInt8] {
        guard !bytes.isEmpty else { throw GzipError(.truncated, "empty input") }
        var stream = z_stream()
        guard dory_inflate_init_gzip(&stream) == Z_OK else { throw GzipError(.badGzip, "inflateInit2 failed") }
        defer { inflateEnd(&stream) }

        // Capacity hint: ISIZE of the (last) member, bounded by the limit.
        var capacity = 64 * 1024
        if bytes.count >= 18 {
            let n = bytes.count
            let isize = Int(bytes[n - 4]) | Int(bytes[n - 3]) << 8 | Int(bytes[n - 2]) << 16 | Int(bytes[n - 1]) << 24
            capacity = max(capacity, min(isize + 1, maxOutput + 1))
        }
        capacity = min(max(capacity, bytes.count * 3), maxOutput + 1)
        capacity = max(capacity, 1)
        var buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        defer { buffer.deallocate() }
        var produced = 0

        let result: GzipError? = bytes.withUnsafeBufferPointer { input -> GzipError? in
            var inputOffset = 0
            while true {
                // One member.
                while true {
                    if produced == capacity {
                        if capacity > maxOutput { return GzipError(.tooLarge, "inflated data exceeds \(maxOutput) bytes") }
                        let newCapacity = min(capacity * 2, maxOutput + 1)
                        let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
                        grown.update(from: buffer, count: produced)
                        buffer.deallocate()
                        buffer = grown
                        capacity = newCapacity
                    }
                    let chunk = min(input.count - inputOffset, Int(Int32.max))
                    stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress! + inputOffset)
                    stream.avail_in = uInt(chunk)
                    stream.next_out = buffer + produced
                    stream.avail_out = uInt(min(capacity - produced, Int(Int32.max)))
                    let before = stream.avail_out
                    let r = inflate(&stream, Z_NO_FLUSH)
                    inputOffset += chunk - Int(stream.avail_in)
                    produced += Int(before - stream.avail_out)
                    if produced > maxOutput { return GzipError(.tooLarge, "inflated data exceeds \(maxOutput) bytes") }
                    if r == Z_STREAM_END { break }
                    switch r {
                    case Z_OK:
                        continue
                    case Z_BUF_ERROR:
                        if inputOffset == input.count { return GzipError(.truncated, "data ends inside a gzip member") }
                        continue  // no output space: grow
                    case Z_DATA_ERROR:
                        let message = stream.msg.map { String(cString: $0) } ?? "invalid data"
                        if message.contains("incorrect data check") || message.contains("incorrect length check") {
                            return GzipError(.crcMismatch, message)
                        }
                        return GzipError(.badGzip, message)
                    case Z_MEM_ERROR:
                        return GzipError(.badGzip, "out of memory")
                    default:
                        return GzipError(.badGzip, "inflate failed (\(r))")
                    }
                }
                if inputOffset == input.count { return nil }
                // Another member must follow, or it is trailing data.
                let rest = input.count - inputOffset
                if rest >= 2, input[inputOffset] == 0x1F, input[inputOffset + 1] == 0x8B {
                    inflateReset(&stream)
                    continue
                }
                return GzipError(.trailingData, "\(rest) bytes after the last gzip member")
            }
        }
        if let result { throw result }
        return Array(UnsafeBufferPointer(start: buffer, count: produced))
    }
}

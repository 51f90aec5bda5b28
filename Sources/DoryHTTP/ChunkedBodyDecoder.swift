/// Incremental decoder of a `Transfer-Encoding: chunked` request body (RFC 9112 §7.1).
///
/// Chunk extensions are skipped, trailer fields are read and dropped. Data bytes are counted while
/// read: crossing the limit ends decoding with `.tooLarge` and the count read so far.
public struct ChunkedBodyDecoder: Sendable {
    public enum Outcome: Sendable, Equatable {
        case needMore
        case done
        /// The body crossed the limit; `bytesRead` counts the data bytes read, the crossing piece included.
        case tooLarge(bytesRead: Int)
        case malformed(String)
    }

    private enum State {
        case size, sizeExtension, sizeLF, data, dataCR, dataLF, trailerLineStart, trailerLine, trailerEndLF, done
    }

    /// Longest chunk-size line (size and extensions).
    public static let maxSizeLineBytes = 4096
    /// Most bytes of trailer fields.
    public let maxTrailerBytes: Int

    private var state = State.size
    private var chunkSize = 0
    private var sizeDigits = 0
    private var lineBytes = 0
    private var trailerBytes = 0
    /// Data bytes decoded so far.
    public private(set) var bytesRead = 0

    public init(maxTrailerBytes: Int = 16384) {
        self.maxTrailerBytes = maxTrailerBytes
    }

    /// Decodes from `input`, appending data to `body`; returns how many input bytes were consumed and
    /// the outcome. After `.done` the consumed count ends right after the body (pipelined bytes remain).
    public mutating func decode(
        _ input: UnsafeRawBufferPointer, into body: inout [UInt8], limit: Int
    ) -> (consumed: Int, outcome: Outcome) {
        var index = 0
        let count = input.count
        while index < count {
            let byte = input[index]
            switch state {
            case .size:
                if let digit = PercentDecoding.hexValue(byte) {
                    sizeDigits += 1
                    if sizeDigits > 15 { return (index, .malformed("chunk size too large")) }
                    chunkSize = chunkSize << 4 | Int(digit)
                    lineBytes += 1
                } else if byte == 0x3B || byte == 0x20 || byte == 0x09 {  // ';' or BWS before it
                    guard sizeDigits > 0 else { return (index, .malformed("missing chunk size")) }
                    state = .sizeExtension
                    lineBytes += 1
                } else if byte == 0x0D {
                    state = .sizeLF
                } else if byte == 0x0A {
                    guard sizeDigits > 0 else { return (index, .malformed("missing chunk size")) }
                    endOfSizeLine()
                } else {
                    return (index, .malformed("invalid chunk size"))
                }
            case .sizeExtension:
                if byte == 0x0D {
                    state = .sizeLF
                } else if byte == 0x0A {
                    endOfSizeLine()
                } else if byte < 0x20 && byte != 0x09 || byte == 0x7F {
                    return (index, .malformed("invalid chunk extension"))
                } else {
                    lineBytes += 1
                }
            case .sizeLF:
                guard byte == 0x0A, sizeDigits > 0 else { return (index, .malformed("invalid chunk size line")) }
                endOfSizeLine()
            case .data:
                let piece = min(chunkSize, count - index)
                bytesRead += piece
                if bytesRead > limit { return (index + piece, .tooLarge(bytesRead: bytesRead)) }
                body.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[index..<(index + piece)]))
                chunkSize -= piece
                index += piece
                if chunkSize == 0 { state = .dataCR }
                continue
            case .dataCR:
                if byte == 0x0D {
                    state = .dataLF
                } else if byte == 0x0A {
                    state = .size
                } else {
                    return (index, .malformed("chunk data longer than its size"))
                }
            case .dataLF:
                guard byte == 0x0A else { return (index, .malformed("chunk data longer than its size")) }
                state = .size
            case .trailerLineStart:
                if byte == 0x0D {
                    state = .trailerEndLF
                } else if byte == 0x0A {
                    state = .done
                    return (index + 1, .done)
                } else {
                    state = .trailerLine
                    continue
                }
            case .trailerLine:
                trailerBytes += 1
                if trailerBytes > maxTrailerBytes { return (index, .malformed("trailer fields too large")) }
                if byte == 0x0A {
                    state = .trailerLineStart
                } else if byte < 0x20 && byte != 0x09 && byte != 0x0D || byte == 0x7F {
                    return (index, .malformed("invalid character in trailer field"))
                }
            case .trailerEndLF:
                guard byte == 0x0A else { return (index, .malformed("invalid end of chunked body")) }
                state = .done
                return (index + 1, .done)
            case .done:
                return (index, .done)
            }
            if lineBytes > Self.maxSizeLineBytes { return (index, .malformed("chunk size line too long")) }
            index += 1
        }
        return (index, state == .done ? .done : .needMore)
    }

    private mutating func endOfSizeLine() {
        lineBytes = 0
        sizeDigits = 0
        if chunkSize == 0 {
            state = .trailerLineStart
        } else {
            state = .data
        }
    }
}

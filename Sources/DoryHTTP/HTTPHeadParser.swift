import Glibc

/// Hard limits on a request head (defaults: the contract of spec §4.1).
public struct HTTPLimits: Sendable, Equatable {
    /// Longest request line, without its line ending (over it: 414).
    public var maxRequestLineBytes: Int = 8192
    /// Most bytes of header field lines, each counted with its line ending; the empty line that ends
    /// the head is not counted (over it: 431).
    public var maxHeaderBytes: Int = 16384
    /// Most header fields (over it: 431).
    public var maxHeaderFields: Int = 100

    public init(maxRequestLineBytes: Int = 8192, maxHeaderBytes: Int = 16384, maxHeaderFields: Int = 100) {
        self.maxRequestLineBytes = maxRequestLineBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderFields = maxHeaderFields
    }

    /// Largest number of bytes a valid head can occupy (leading empty lines included): the input buffer bound.
    var maxHeadBytes: Int { 2 * maxRequestLineBytes + maxHeaderBytes + 16 }
}

/// A request the server refuses before a handler sees it: the status, a stable snake_case code and a message.
public struct HTTPParseError: Error, Sendable, Equatable {
    public var status: Int
    public var code: String
    public var message: String

    public init(status: Int, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    static func badRequest(_ message: String) -> HTTPParseError {
        HTTPParseError(status: 400, code: "bad_request", message: message)
    }
}

/// Incremental parser of a request head with hard limits.
///
/// Feed it the unconsumed bytes starting at the first byte of the message, again and again as more
/// arrive (the same prefix plus new bytes): it keeps its position, so a trickled head costs linear time,
/// and it answers as soon as a limit is crossed, before the line or head is complete.
/// Line endings are CRLF; a bare LF is accepted as well (RFC 9112 §2.2).
public struct HTTPHeadParser: Sendable {
    public enum Outcome: Sendable {
        case needMore
        /// The head and the number of bytes it occupied (through the empty line).
        case complete(HTTPRequestHead, length: Int)
        case failure(HTTPParseError)
    }

    private struct FieldRange {
        var nameStart: Int32, nameEnd: Int32, valueStart: Int32, valueEnd: Int32
    }

    public let limits: HTTPLimits
    private var lineStart = 0
    private var scanned = 0
    private var requestLine: Range<Int>?
    private var fields: [FieldRange] = []
    private var headerBytes = 0

    public init(limits: HTTPLimits = HTTPLimits()) {
        self.limits = limits
    }

    /// Forgets the current head (call after `.complete` before parsing the next message).
    public mutating func reset() {
        lineStart = 0
        scanned = 0
        requestLine = nil
        fields.removeAll(keepingCapacity: true)
        headerBytes = 0
    }

    public mutating func parse(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        guard let base = bytes.baseAddress else { return .needMore }
        while true {
            let from = max(lineStart, scanned)
            let found = from < bytes.count ? memchr(base + from, 0x0A, bytes.count - from) : nil
            guard let found else {
                scanned = bytes.count
                return partialLineOutcome(bytes)
            }
            let lf = base.distance(to: UnsafeRawPointer(found))
            var contentEnd = lf
            if contentEnd > lineStart, bytes[contentEnd - 1] == 0x0D { contentEnd -= 1 }
            let lineLength = contentEnd - lineStart
            let nextLine = lf + 1

            if requestLine == nil {
                if lineLength == 0 {
                    // Empty lines before the request line are ignored (RFC 9112 §2.2), within a bound.
                    if nextLine > limits.maxRequestLineBytes { return .failure(.badRequest("too many empty lines")) }
                    lineStart = nextLine
                    continue
                }
                if lineLength > limits.maxRequestLineBytes { return .failure(Self.uriTooLong(limits)) }
                requestLine = lineStart..<contentEnd
                lineStart = nextLine
                continue
            }
            if lineLength == 0 {
                return buildHead(bytes, length: nextLine)
            }
            if fields.count == limits.maxHeaderFields {
                return .failure(Self.headerFieldsTooLarge("more than \(limits.maxHeaderFields) header fields"))
            }
            headerBytes += nextLine - lineStart
            if headerBytes > limits.maxHeaderBytes { return .failure(Self.headerBytesTooLarge(limits)) }
            if let error = parseField(bytes, lineStart..<contentEnd) { return .failure(error) }
            lineStart = nextLine
        }
    }

    /// Limit checks on a line whose end has not arrived yet.
    private func partialLineOutcome(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        let pending = bytes.count - lineStart
        if requestLine == nil {
            // pending bytes may still end with the CR of the line ending.
            if pending > limits.maxRequestLineBytes + 1 { return .failure(Self.uriTooLong(limits)) }
            return .needMore
        }
        if pending == 1 && bytes[lineStart] == 0x0D { return .needMore }  // the end of the head, half arrived
        if fields.count == limits.maxHeaderFields && pending > 0 {
            return .failure(Self.headerFieldsTooLarge("more than \(limits.maxHeaderFields) header fields"))
        }
        // The line will take at least pending + 1 bytes (its LF).
        if headerBytes + pending + 1 > limits.maxHeaderBytes { return .failure(Self.headerBytesTooLarge(limits)) }
        return .needMore
    }

    private static func uriTooLong(_ limits: HTTPLimits) -> HTTPParseError {
        HTTPParseError(
            status: 414, code: "uri_too_long",
            message: "request line longer than \(limits.maxRequestLineBytes) bytes")
    }

    private static func headerBytesTooLarge(_ limits: HTTPLimits) -> HTTPParseError {
        headerFieldsTooLarge("header fields longer than \(limits.maxHeaderBytes) bytes")
    }

    private static func headerFieldsTooLarge(_ message: String) -> HTTPParseError {
        HTTPParseError(status: 431, code: "header_fields_too_large", message: message)
    }

    private mutating func parseField(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) -> HTTPParseError? {
        let first = bytes[line.lowerBound]
        if first == 0x20 || first == 0x09 { return .badRequest("obsolete line folding in header fields") }
        var colon = line.lowerBound
        while colon < line.upperBound, bytes[colon] != 0x3A {
            guard HTTPSyntax.isTokenByte(bytes[colon]) else { return .badRequest("invalid header field name") }
            colon += 1
        }
        if colon == line.upperBound { return .badRequest("header field without a colon") }
        if colon == line.lowerBound { return .badRequest("empty header field name") }
        var valueStart = colon + 1
        var valueEnd = line.upperBound
        while valueStart < valueEnd, bytes[valueStart] == 0x20 || bytes[valueStart] == 0x09 { valueStart += 1 }
        while valueEnd > valueStart, bytes[valueEnd - 1] == 0x20 || bytes[valueEnd - 1] == 0x09 { valueEnd -= 1 }
        for index in valueStart..<valueEnd where !HTTPSyntax.isFieldValueByte(bytes[index]) {
            return .badRequest("invalid character in header field value")
        }
        fields.append(
            FieldRange(
                nameStart: Int32(line.lowerBound), nameEnd: Int32(colon),
                valueStart: Int32(valueStart), valueEnd: Int32(valueEnd)))
        return nil
    }

    private func buildHead(_ bytes: UnsafeRawBufferPointer, length: Int) -> Outcome {
        guard let line = requestLine else { return .needMore }
        // method SP request-target SP HTTP-version
        var index = line.lowerBound
        while index < line.upperBound, bytes[index] != 0x20 {
            guard HTTPSyntax.isTokenByte(bytes[index]) else { return .failure(.badRequest("invalid method")) }
            index += 1
        }
        let methodEnd = index
        guard methodEnd > line.lowerBound, methodEnd < line.upperBound else {
            return .failure(.badRequest("malformed request line"))
        }
        let targetStart = methodEnd + 1
        index = targetStart
        while index < line.upperBound, bytes[index] != 0x20 {
            let byte = bytes[index]
            guard byte > 0x20, byte != 0x7F else { return .failure(.badRequest("invalid request target")) }
            index += 1
        }
        let targetEnd = index
        guard targetEnd > targetStart, targetEnd < line.upperBound else {
            return .failure(.badRequest("malformed request line"))
        }
        let versionStart = targetEnd + 1
        guard let version = HTTPSyntax.parseVersion(bytes, versionStart..<line.upperBound) else {
            return .failure(.badRequest("malformed HTTP version"))
        }
        guard version.major == 1 else {
            return .failure(
                HTTPParseError(
                    status: 505, code: "http_version_not_supported",
                    message: "HTTP/\(version.major).\(version.minor) is not supported; use HTTP/1.1"))
        }
        let firstTargetByte = bytes[targetStart]
        if firstTargetByte != 0x2F {  // '/'
            let isAsterisk = targetEnd - targetStart == 1 && firstTargetByte == 0x2A
            if !isAsterisk && !HTTPSyntax.containsSchemeSeparator(bytes, targetStart..<targetEnd) {
                return .failure(.badRequest("unsupported request target form"))
            }
        }

        let method = HTTPSyntax.string(bytes, line.lowerBound..<methodEnd)
        let target = HTTPSyntax.string(bytes, targetStart..<targetEnd)
        var headerFields: [HTTPHeaders.Field] = []
        headerFields.reserveCapacity(fields.count)
        var hostCount = 0
        var contentLength: Int?
        var codings: [Substring] = []
        var sawTransferEncoding = false
        var closeToken = false
        var keepAliveToken = false
        for range in fields {
            let name = HTTPSyntax.string(bytes, Int(range.nameStart)..<Int(range.nameEnd))
            let value = HTTPSyntax.string(bytes, Int(range.valueStart)..<Int(range.valueEnd))
            headerFields.append((name: name, value: value))
            switch name.utf8.count {
            case 4 where HTTPHeaders.namesEqual(name, "host"):
                hostCount += 1
            case 10 where HTTPHeaders.namesEqual(name, "connection"):
                for token in value.split(separator: ",") {
                    let token = token.trimmingASCIIWhitespace()
                    if HTTPHeaders.namesEqual(token, "close") { closeToken = true }
                    if HTTPHeaders.namesEqual(token, "keep-alive") { keepAliveToken = true }
                }
            case 14 where HTTPHeaders.namesEqual(name, "content-length"):
                for part in value.split(separator: ",", omittingEmptySubsequences: false) {
                    guard let parsed = HTTPSyntax.parseContentLength(part.trimmingASCIIWhitespace()) else {
                        return .failure(.badRequest("invalid Content-Length"))
                    }
                    if let contentLength, contentLength != parsed {
                        return .failure(.badRequest("conflicting Content-Length values"))
                    }
                    contentLength = parsed
                }
            case 17 where HTTPHeaders.namesEqual(name, "transfer-encoding"):
                sawTransferEncoding = true
                for coding in value.split(separator: ",", omittingEmptySubsequences: false) {
                    codings.append(coding.trimmingASCIIWhitespace())
                }
            default:
                break
            }
        }
        if version.minor >= 1 && hostCount != 1 {
            return .failure(.badRequest(hostCount == 0 ? "missing Host header" : "more than one Host header"))
        }
        if hostCount > 1 { return .failure(.badRequest("more than one Host header")) }
        var isChunked = false
        if sawTransferEncoding {
            if contentLength != nil {
                return .failure(.badRequest("both Content-Length and Transfer-Encoding present"))
            }
            guard let last = codings.last, HTTPHeaders.namesEqual(last, "chunked") else {
                return .failure(.badRequest("Transfer-Encoding must end with chunked"))
            }
            if codings.count > 1 {
                if codings.dropLast().contains(where: { HTTPHeaders.namesEqual($0, "chunked") }) {
                    return .failure(.badRequest("chunked applied more than once"))
                }
                return .failure(
                    HTTPParseError(
                        status: 501, code: "not_implemented",
                        message: "only the chunked transfer coding is supported"))
            }
            isChunked = true
        }
        let keepAlive = version.minor >= 1 ? !closeToken : (keepAliveToken && !closeToken)
        let head = HTTPRequestHead(
            method: method, target: target, version: version, headers: HTTPHeaders(headerFields),
            keepAlive: keepAlive, contentLength: contentLength, isChunked: isChunked)
        return .complete(head, length: length)
    }
}

/// Byte classes and small parsers of RFC 9110/9112 syntax.
enum HTTPSyntax {
    /// tchar: "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
    static let tokenTable: [Bool] = (0..<256).map { value in
        let byte = UInt8(value)
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "A")...UInt8(ascii: "Z"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    @inline(__always)
    static func isTokenByte(_ byte: UInt8) -> Bool { tokenTable[Int(byte)] }

    /// field-vchar / SP / HTAB / obs-text.
    @inline(__always)
    static func isFieldValueByte(_ byte: UInt8) -> Bool {
        byte >= 0x20 ? byte != 0x7F : byte == 0x09
    }

    static func string(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// `HTTP/<digit>.<digit>`, or nil.
    static func parseVersion(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> HTTPVersion? {
        guard range.count == 8 else { return nil }
        let prefix: [UInt8] = Array("HTTP/".utf8)
        for offset in 0..<5 where bytes[range.lowerBound + offset] != prefix[offset] { return nil }
        let major = bytes[range.lowerBound + 5], dot = bytes[range.lowerBound + 6], minor = bytes[range.lowerBound + 7]
        guard isDigit(major), dot == UInt8(ascii: "."), isDigit(minor) else { return nil }
        return HTTPVersion(major: Int(major - 0x30), minor: Int(minor - 0x30))
    }

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    /// 1*DIGIT, at most 18 digits (no overflow), or nil.
    static func parseContentLength<S: StringProtocol>(_ text: S) -> Int? {
        let utf8 = text.utf8
        guard !utf8.isEmpty, utf8.count <= 18 else { return nil }
        var value = 0
        for byte in utf8 {
            guard isDigit(byte) else { return nil }
            value = value * 10 + Int(byte - 0x30)
        }
        return value
    }

    static func containsSchemeSeparator(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        guard range.count >= 4 else { return false }
        for index in range.lowerBound..<(range.upperBound - 2)
        where bytes[index] == 0x3A && bytes[index + 1] == 0x2F && bytes[index + 2] == 0x2F {
            return index > range.lowerBound
        }
        return false
    }
}

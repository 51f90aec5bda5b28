// DORY_TEST_FAULT=<op>@<path-substring> (spec §10.1) and the fault-injecting FileSystem wrapper.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The operations a fault can target.
public enum FaultOperation: String, Sendable, CaseIterable {
    case fsync, rename, write, open
}

/// One injected fault: every `operation` on a path containing `pathSubstring` fails with `EIO`.
/// For `fsync` and `write` the path is the one the descriptor was opened with; for `rename`, either path.
public struct FaultRule: Sendable, Equatable, CustomStringConvertible {
    public let operation: FaultOperation
    public let pathSubstring: String

    public init(operation: FaultOperation, pathSubstring: String) {
        self.operation = operation
        self.pathSubstring = pathSubstring
    }

    public var description: String { "\(operation.rawValue)@\(pathSubstring)" }

    /// Parses the value of `DORY_TEST_FAULT` (`fsync@snapshots/`). The error text names what is wrong and what is
    /// accepted, for a configuration error line.
    public static func parse(_ value: String) throws(FaultRuleParseError) -> FaultRule {
        guard let at = value.firstIndex(of: "@") else {
            throw FaultRuleParseError(value: value, message: "expected <op>@<path-substring>")
        }
        let op = String(value[..<at])
        let substring = String(value[value.index(after: at)...])
        guard let operation = FaultOperation(rawValue: op) else {
            throw FaultRuleParseError(
                value: value, message: "unknown operation \"\(op)\": expected fsync, rename, write or open")
        }
        guard !substring.isEmpty else {
            throw FaultRuleParseError(value: value, message: "empty path substring")
        }
        return FaultRule(operation: operation, pathSubstring: substring)
    }
}

/// A malformed `DORY_TEST_FAULT` value.
public struct FaultRuleParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public let value: String
    public let message: String
    public var description: String { "DORY_TEST_FAULT=\"\(value)\": \(message)" }
}

/// Wraps a FileSystem and fails chosen calls with `EIO` (or the errno a predicate picks). Calls that are not
/// targeted pass through. `readWholeFile` and `fsyncDirectory` go through `open`, so they are targeted too.
public struct FaultInjectingFileSystem: FileSystem {
    public let base: any FileSystem
    private let shouldFail: @Sendable (FaultOperation, String) -> Bool

    /// Fails the calls `rules` select.
    public init(base: any FileSystem, rules: [FaultRule]) {
        self.base = base
        self.shouldFail = { op, path in
            rules.contains { $0.operation == op && path.contains($0.pathSubstring) }
        }
    }

    /// Fails the calls `shouldFail(operation, path)` selects (for tests).
    public init(base: any FileSystem, shouldFail: @escaping @Sendable (FaultOperation, String) -> Bool) {
        self.base = base
        self.shouldFail = shouldFail
    }

    private func check(_ op: FaultOperation, _ path: String) throws(FileSystemError) {
        if shouldFail(op, path) { throw FileSystemError(operation: op.rawValue, path: path, errno: EIO) }
    }

    public func open(_ path: String, flags: Int32, mode: mode_t) throws(FileSystemError) -> OpenFile {
        try check(.open, path)
        return try base.open(path, flags: flags, mode: mode)
    }

    public func write(_ file: OpenFile, _ bytes: UnsafeRawBufferPointer) throws(FileSystemError) -> Int {
        try check(.write, file.path)
        return try base.write(file, bytes)
    }

    public func read(_ file: OpenFile, into buffer: UnsafeMutableRawBufferPointer) throws(FileSystemError) -> Int {
        try base.read(file, into: buffer)
    }

    public func fsync(_ file: OpenFile) throws(FileSystemError) {
        try check(.fsync, file.path)
        try base.fsync(file)
    }

    public func close(_ file: OpenFile) throws(FileSystemError) { try base.close(file) }
    public func fstat(_ file: OpenFile) throws(FileSystemError) -> FileStatus { try base.fstat(file) }

    public func ftruncate(_ file: OpenFile, length: Int64) throws(FileSystemError) {
        try base.ftruncate(file, length: length)
    }

    public func seek(_ file: OpenFile, offset: Int64, whence: Int32) throws(FileSystemError) -> Int64 {
        try base.seek(file, offset: offset, whence: whence)
    }

    public func flock(_ file: OpenFile, operation: Int32) throws(FileSystemError) {
        try base.flock(file, operation: operation)
    }

    public func rename(_ from: String, to: String) throws(FileSystemError) {
        if shouldFail(.rename, from) || shouldFail(.rename, to) {
            throw FileSystemError(operation: "rename", path: from, errno: EIO)
        }
        try base.rename(from, to: to)
    }

    public func unlink(_ path: String) throws(FileSystemError) { try base.unlink(path) }
    public func mkdir(_ path: String, mode: mode_t) throws(FileSystemError) { try base.mkdir(path, mode: mode) }
    public func rmdir(_ path: String) throws(FileSystemError) { try base.rmdir(path) }
    public func readDirectory(_ path: String) throws(FileSystemError) -> [String] { try base.readDirectory(path) }
    public func status(_ path: String) throws(FileSystemError) -> FileStatus? { try base.status(path) }
}

// The file operations DoryState performs, behind a protocol so tests (and DORY_TEST_FAULT) can fail chosen calls.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// A failed file operation: which call, on which path, and the errno.
public struct FileSystemError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The call: `open`, `write`, `fsync`, `close`, `rename`, `unlink`, `mkdir`, `readdir`, `read`, `fstat`,
    /// `ftruncate`, `flock`, `lseek`.
    public let operation: String
    public let path: String
    public let errno: Int32

    public init(operation: String, path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    /// The errno text, e.g. `Input/output error`.
    public var errnoText: String { String(cString: strerror(errno)) }
    public var description: String { "\(operation) \(path): \(errnoText)" }
}

/// An open descriptor and the path it was opened with (fault injection matches `fsync` and `write` on it).
public struct OpenFile: Sendable, Equatable {
    public let descriptor: Int32
    public let path: String

    public init(descriptor: Int32, path: String) {
        self.descriptor = descriptor
        self.path = path
    }
}

/// What `fstat` reports that DoryState needs.
public struct FileStatus: Sendable, Equatable {
    public let size: Int64
    public let isDirectory: Bool
    public let isRegularFile: Bool
    public let modifiedMillis: Int64
}

/// Every file operation DoryState performs. Paths are plain strings; every descriptor is opened `O_CLOEXEC`.
public protocol FileSystem: Sendable {
    /// `open(2)`; the conformance adds `O_CLOEXEC`.
    func open(_ path: String, flags: Int32, mode: mode_t) throws(FileSystemError) -> OpenFile
    /// One `write(2)`; returns the count written (may be short). EINTR is reported as an error with errno EINTR.
    func write(_ file: OpenFile, _ bytes: UnsafeRawBufferPointer) throws(FileSystemError) -> Int
    /// One `read(2)`; 0 at end of file.
    func read(_ file: OpenFile, into buffer: UnsafeMutableRawBufferPointer) throws(FileSystemError) -> Int
    func fsync(_ file: OpenFile) throws(FileSystemError)
    func close(_ file: OpenFile) throws(FileSystemError)
    func fstat(_ file: OpenFile) throws(FileSystemError) -> FileStatus
    func ftruncate(_ file: OpenFile, length: Int64) throws(FileSystemError)
    /// `lseek(2)` with `SEEK_SET`/`SEEK_END`…; returns the new offset.
    func seek(_ file: OpenFile, offset: Int64, whence: Int32) throws(FileSystemError) -> Int64
    /// `flock(2)`; `operation` as `LOCK_EX | LOCK_NB`.
    func flock(_ file: OpenFile, operation: Int32) throws(FileSystemError)
    func rename(_ from: String, to: String) throws(FileSystemError)
    func unlink(_ path: String) throws(FileSystemError)
    func mkdir(_ path: String, mode: mode_t) throws(FileSystemError)
    /// Rmdir an empty directory.
    func rmdir(_ path: String) throws(FileSystemError)
    /// Names in a directory, without `.` and `..`, unsorted.
    func readDirectory(_ path: String) throws(FileSystemError) -> [String]
    /// `stat(2)` of a path (following symlinks); nil when it does not exist.
    func status(_ path: String) throws(FileSystemError) -> FileStatus?
}

extension FileSystem {
    /// `mkdir -p` with mode 0700: creates `path` and its missing parents, fsyncing the parent of each directory it
    /// creates so the new entry survives a crash (runtime §6.3). An existing non-directory → `ENOTDIR`.
    public func makeDirectories(_ path: String) throws(FileSystemError) {
        if let st = try status(path) {
            if st.isDirectory { return }
            throw FileSystemError(operation: "mkdir", path: path, errno: ENOTDIR)
        }
        var parent = "."
        if let slash = path.lastIndex(of: "/") {
            parent = slash == path.startIndex ? "/" : String(path[..<slash])
            if parent != "/" { try makeDirectories(parent) }
        }
        do throws(FileSystemError) {
            try mkdir(path, mode: 0o700)
        } catch where error.errno == EEXIST {
            return
        }
        try fsyncDirectory(parent)
    }

    /// Writes every byte, looping on short writes and `EINTR`.
    public func writeAll(_ file: OpenFile, _ bytes: [UInt8]) throws(FileSystemError) {
        var offset = 0
        let count = bytes.count
        while offset < count {
            let result: Result<Int, FileSystemError> = bytes.withUnsafeBytes { raw in
                do throws(FileSystemError) {
                    return .success(try write(file, UnsafeRawBufferPointer(rebasing: raw[offset..<count])))
                } catch {
                    return .failure(error)
                }
            }
            switch result {
            case .success(let n):
                if n <= 0 { throw FileSystemError(operation: "write", path: file.path, errno: EIO) }
                offset += n
            case .failure(let e) where e.errno == EINTR:
                continue
            case .failure(let e):
                throw e
            }
        }
    }

    /// Reads a whole file (at most `maxBytes`; more → `EFBIG`).
    public func readWholeFile(_ path: String, maxBytes: Int) throws(FileSystemError) -> [UInt8] {
        let file = try open(path, flags: O_RDONLY, mode: 0)
        defer { try? close(file) }
        let size = Int(try fstat(file).size)
        if size > maxBytes { throw FileSystemError(operation: "read", path: path, errno: EFBIG) }
        var out = [UInt8](repeating: 0, count: max(size, 0) + 1)
        var filled = 0
        while true {
            if filled == out.count {
                if out.count > maxBytes { throw FileSystemError(operation: "read", path: path, errno: EFBIG) }
                out.append(contentsOf: repeatElement(0, count: max(out.count, 4096)))
            }
            let result: Result<Int, FileSystemError> = out.withUnsafeMutableBytes { raw in
                do throws(FileSystemError) {
                    return .success(try read(file, into: UnsafeMutableRawBufferPointer(rebasing: raw[filled...])))
                } catch {
                    return .failure(error)
                }
            }
            switch result {
            case .success(0):
                out.removeLast(out.count - filled)
                if filled > maxBytes { throw FileSystemError(operation: "read", path: path, errno: EFBIG) }
                return out
            case .success(let n): filled += n
            case .failure(let e) where e.errno == EINTR: continue
            case .failure(let e): throw e
            }
        }
    }

    /// Opens a directory, fsyncs it, closes it.
    public func fsyncDirectory(_ path: String) throws(FileSystemError) {
        let dir = try open(path, flags: O_RDONLY | O_DIRECTORY, mode: 0)
        do throws(FileSystemError) {
            try fsync(dir)
        } catch {
            try? close(dir)
            throw error
        }
        try close(dir)
    }
}

private func systemStat(_ path: String, _ st: inout stat) -> Int32 { stat(path, &st) }
private func systemFlock(_ fd: Int32, _ operation: Int32) -> Int32 { flock(fd, operation) }

/// The production conformance: the system calls.
public struct SystemFileSystem: FileSystem {
    public init() {}

    private func fail(_ op: String, _ path: String) -> FileSystemError {
        FileSystemError(operation: op, path: path, errno: errno)
    }

    public func open(_ path: String, flags: Int32, mode: mode_t) throws(FileSystemError) -> OpenFile {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return OpenFile(descriptor: fd, path: path) }
            if errno != EINTR { throw fail("open", path) }
        }
    }

    public func write(_ file: OpenFile, _ bytes: UnsafeRawBufferPointer) throws(FileSystemError) -> Int {
        let n = Glibc.write(file.descriptor, bytes.baseAddress, bytes.count)
        if n < 0 { throw fail("write", file.path) }
        return n
    }

    public func read(_ file: OpenFile, into buffer: UnsafeMutableRawBufferPointer) throws(FileSystemError) -> Int {
        let n = Glibc.read(file.descriptor, buffer.baseAddress, buffer.count)
        if n < 0 { throw fail("read", file.path) }
        return n
    }

    public func fsync(_ file: OpenFile) throws(FileSystemError) {
        if Glibc.fsync(file.descriptor) != 0 { throw fail("fsync", file.path) }
    }

    public func close(_ file: OpenFile) throws(FileSystemError) {
        // Linux releases the descriptor even when close reports EINTR: never retry.
        if Glibc.close(file.descriptor) != 0, errno != EINTR { throw fail("close", file.path) }
    }

    private static func status(_ st: stat) -> FileStatus {
        let type = st.st_mode & S_IFMT
        return FileStatus(
            size: Int64(st.st_size), isDirectory: type == S_IFDIR, isRegularFile: type == S_IFREG,
            modifiedMillis: Int64(st.st_mtim.tv_sec) * 1000 + Int64(st.st_mtim.tv_nsec) / 1_000_000)
    }

    public func fstat(_ file: OpenFile) throws(FileSystemError) -> FileStatus {
        var st = stat()
        if Glibc.fstat(file.descriptor, &st) != 0 { throw fail("fstat", file.path) }
        return Self.status(st)
    }

    public func status(_ path: String) throws(FileSystemError) -> FileStatus? {
        var st = stat()
        if systemStat(path, &st) != 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw fail("stat", path)
        }
        return Self.status(st)
    }

    public func ftruncate(_ file: OpenFile, length: Int64) throws(FileSystemError) {
        if Glibc.ftruncate(file.descriptor, off_t(length)) != 0 { throw fail("ftruncate", file.path) }
    }

    public func seek(_ file: OpenFile, offset: Int64, whence: Int32) throws(FileSystemError) -> Int64 {
        let r = Glibc.lseek(file.descriptor, off_t(offset), whence)
        if r < 0 { throw fail("lseek", file.path) }
        return Int64(r)
    }

    public func flock(_ file: OpenFile, operation: Int32) throws(FileSystemError) {
        while systemFlock(file.descriptor, operation) != 0 {
            if errno != EINTR { throw fail("flock", file.path) }
        }
    }

    public func rename(_ from: String, to: String) throws(FileSystemError) {
        if Glibc.rename(from, to) != 0 { throw fail("rename", from) }
    }

    public func unlink(_ path: String) throws(FileSystemError) {
        if Glibc.unlink(path) != 0 { throw fail("unlink", path) }
    }

    public func mkdir(_ path: String, mode: mode_t) throws(FileSystemError) {
        if Glibc.mkdir(path, mode) != 0 { throw fail("mkdir", path) }
    }

    public func rmdir(_ path: String) throws(FileSystemError) {
        if Glibc.rmdir(path) != 0 { throw fail("rmdir", path) }
    }

    public func readDirectory(_ path: String) throws(FileSystemError) -> [String] {
        guard let dir = opendir(path) else { throw fail("readdir", path) }
        defer { closedir(dir) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { throw fail("readdir", path) }
                return names
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
    }
}

extension Mutex where Value == OpenFile? {
    /// Takes the open file out (leaving nil), so exactly one caller closes it.
    func take() -> OpenFile? {
        withLock { file in
            defer { file = nil }
            return file
        }
    }
}

// The processor directory's `lock` file (spec §6.2): one doryd per processor directory.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Why the processor lock was not taken.
public enum ProcessorLockError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Another process (or another open of the file) holds it.
    case heldByAnotherProcess(path: String)
    /// Opening or locking failed otherwise.
    case failed(FileSystemError)

    public var description: String {
        switch self {
        case .heldByAnotherProcess(let path): return "\(path) is held by another doryd"
        case .failed(let error): return error.description
        }
    }
}

/// `flock(LOCK_EX|LOCK_NB)` on `<processor dir>/lock`, opened `O_CLOEXEC` with mode 0600, held until `release()`
/// or deinit. flock locks belong to the open file description, so a second acquire in the same process fails too.
public final class ProcessorLock: Sendable {
    public let path: String
    private let fileSystem: any FileSystem
    private let file: Mutex<OpenFile?>

    private init(path: String, file: OpenFile, fileSystem: any FileSystem) {
        self.path = path
        self.file = Mutex(file)
        self.fileSystem = fileSystem
    }

    /// Takes the lock on `<processorDirectory>/lock` (the directory must exist).
    public static func acquire(processorDirectory: String, fileSystem: any FileSystem = SystemFileSystem())
        throws(ProcessorLockError) -> ProcessorLock
    {
        let path = SnapshotLayout(processorDirectory: processorDirectory).lockPath
        let file: OpenFile
        do throws(FileSystemError) {
            file = try fileSystem.open(path, flags: O_RDWR | O_CREAT, mode: 0o600)
        } catch {
            throw .failed(error)
        }
        do throws(FileSystemError) {
            try fileSystem.flock(file, operation: LOCK_EX | LOCK_NB)
        } catch {
            try? fileSystem.close(file)
            if error.errno == EWOULDBLOCK || error.errno == EAGAIN { throw .heldByAnotherProcess(path: path) }
            throw .failed(error)
        }
        return ProcessorLock(path: path, file: file, fileSystem: fileSystem)
    }

    /// Releases the lock (closing the descriptor). Idempotent.
    public func release() {
        if let taken = file.take() { try? fileSystem.close(taken) }
    }

    deinit { release() }
}

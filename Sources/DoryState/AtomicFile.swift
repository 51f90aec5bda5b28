// The durable replace protocol of spec §6.3 steps 3–7, for snapshots and the journal's compaction.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Replaces a file durably: `O_EXCL` temp `.<name>.tmp.<random>` in the same directory (mode 0600), write every
/// byte, fsync, close, rename, fsync the directory. On failure the temp file is unlinked if it still exists.
public enum AtomicFile {
    /// The step that failed and the call's error.
    public struct Failure: Error, Sendable, Equatable {
        /// `open`, `write`, `fsync`, `close`, `rename` or `fsync_dir`.
        public let step: SnapshotWriteError.Step
        public let error: FileSystemError
    }

    public static func write(_ bytes: [UInt8], to finalPath: String, tempName: String? = nil,
                             fileSystem: any FileSystem) throws(Failure) {
        let directory = SnapshotStore.parent(of: finalPath)
        let name = String(finalPath[(finalPath.lastIndex(of: "/").map { finalPath.index(after: $0) } ?? finalPath.startIndex)...])
        let tempPath = directory + "/" + (tempName ?? SnapshotLayout.temporaryFileName(for: name))
        let file: OpenFile
        do throws(FileSystemError) {
            file = try fileSystem.open(tempPath, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        } catch {
            throw Failure(step: .open, error: error)
        }
        func abandon(_ step: SnapshotWriteError.Step, _ error: FileSystemError, closeFirst: Bool) -> Failure {
            if closeFirst { try? fileSystem.close(file) }
            try? fileSystem.unlink(tempPath)
            return Failure(step: step, error: error)
        }
        do throws(FileSystemError) { try fileSystem.writeAll(file, bytes) } catch {
            throw abandon(.write, error, closeFirst: true)
        }
        // A failed fsync means "not saved": the descriptor is closed and never fsynced again.
        do throws(FileSystemError) { try fileSystem.fsync(file) } catch {
            throw abandon(.fsync, error, closeFirst: true)
        }
        do throws(FileSystemError) { try fileSystem.close(file) } catch {
            throw abandon(.close, error, closeFirst: false)
        }
        do throws(FileSystemError) { try fileSystem.rename(tempPath, to: finalPath) } catch {
            throw abandon(.rename, error, closeFirst: false)
        }
        do throws(FileSystemError) { try fileSystem.fsyncDirectory(directory) } catch {
            throw Failure(step: .fsyncDirectory, error: error)
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DoryState

/// Channels in files (§8.1, §8.2): `<root>/<agent_id>/<name>.jsonl` (active), `<name>.jsonl.1` (previous),
/// `<name>.aggregate.json`. `root` is `<state_dir>/<processor_id>/events/channels`. Every append is written and
/// fsynced before it returns; aggregates are replaced with ``AtomicFile`` (temp, fsync, rename, directory fsync).
/// A line without its `\n` (a torn append) is cut off at recovery.
public final class FileChannelBackend: ChannelBackend {
    public let root: String
    private let fileSystem: any FileSystem
    /// Largest file read back (retention keeps files near `channel_max_bytes`).
    private let maxReadBytes: Int

    public init(root: String, fileSystem: any FileSystem = SystemFileSystem(), maxReadBytes: Int = 1 << 31) {
        self.root = root
        self.fileSystem = fileSystem
        self.maxReadBytes = maxReadBytes
    }

    private func fail(_ e: FileSystemError) -> ChannelStorageError { ChannelStorageError(e.description) }

    private func directory(_ c: ChannelAddress) -> String { root + "/" + c.agentId.decimal }
    private func activePath(_ c: ChannelAddress) -> String { directory(c) + "/" + c.name + ".jsonl" }
    private func aggregatePath(_ c: ChannelAddress) -> String { directory(c) + "/" + c.name + ".aggregate.json" }


    public func recover() throws(ChannelStorageError) -> [ChannelAddress: RecoveredChannel] {
        var out: [ChannelAddress: RecoveredChannel] = [:]
        do throws(FileSystemError) {
            guard try fileSystem.status(root)?.isDirectory == true else { return [:] }
            for agentName in try fileSystem.readDirectory(root) {
                guard let agent = IDValue.parseDigits(agentName) else { continue }
                let dir = root + "/" + agentName
                guard try fileSystem.status(dir)?.isDirectory == true else { continue }
                for file in try fileSystem.readDirectory(dir) {
                    let name: String
                    if file.hasSuffix(".aggregate.json") {
                        name = String(file.dropLast(".aggregate.json".count))
                    } else if file.hasSuffix(".jsonl") {
                        name = String(file.dropLast(".jsonl".count))
                    } else if file.hasSuffix(".jsonl.1") {
                        name = String(file.dropLast(".jsonl.1".count))
                    } else {
                        continue
                    }
                    guard ChannelAddress.isValidName(name) else { continue }
                    let address = ChannelAddress(agentId: IDValue(agent), name: name)
                    if out[address] != nil { continue }
                    var recovered = RecoveredChannel()
                    let lines = try readLines(address, repairTail: true)
                    recovered.lastMessageId = lines.last.flatMap(ChannelStore.messageId(ofLine:)) ?? 0
                    if try fileSystem.status(aggregatePath(address)) != nil {
                        let bytes = try fileSystem.readWholeFile(aggregatePath(address), maxBytes: maxReadBytes)
                        if let value = try? JSON.parse(bytes) { recovered.aggregate = AggregateRecord(json: value) }
                    }
                    out[address] = recovered
                }
            }
        } catch {
            throw fail(error)
        }
        return out
    }

    public func append(line: [UInt8], to channel: ChannelAddress, rotateAbove: Int) throws(ChannelStorageError) {
        do throws(FileSystemError) {
            try fileSystem.makeDirectories(directory(channel))
            let path = activePath(channel)
            var file = try fileSystem.open(path, flags: O_WRONLY | O_APPEND | O_CREAT, mode: 0o600)
            let size = try fileSystem.fstat(file).size
            if size > 0, Int(size) + line.count + 1 > rotateAbove {
                try? fileSystem.close(file)
                try fileSystem.rename(path, to: path + ".1")
                try fileSystem.fsyncDirectory(directory(channel))
                file = try fileSystem.open(path, flags: O_WRONLY | O_APPEND | O_CREAT, mode: 0o600)
            }
            let before = try fileSystem.fstat(file).size
            var bytes = line
            bytes.append(0x0A)
            do throws(FileSystemError) {
                try fileSystem.writeAll(file, bytes)
                try fileSystem.fsync(file)
            } catch {
                // Cut a partial line back off so readers only see whole lines.
                try? fileSystem.ftruncate(file, length: before)
                try? fileSystem.close(file)
                throw error
            }
            try fileSystem.close(file)
        } catch {
            throw fail(error)
        }
    }

    public func lines(of channel: ChannelAddress) throws(ChannelStorageError) -> [[UInt8]] {
        do throws(FileSystemError) {
            return try readLines(channel, repairTail: false)
        } catch {
            throw fail(error)
        }
    }

    private func readLines(_ channel: ChannelAddress, repairTail: Bool) throws(FileSystemError) -> [[UInt8]] {
        var out: [[UInt8]] = []
        for path in [activePath(channel) + ".1", activePath(channel)] {
            guard try fileSystem.status(path) != nil else { continue }
            let bytes = try fileSystem.readWholeFile(path, maxBytes: maxReadBytes)
            var start = 0
            for i in 0..<bytes.count where bytes[i] == 0x0A {
                if i > start { out.append(Array(bytes[start..<i])) }
                start = i + 1
            }
            if start < bytes.count, repairTail {
                let file = try fileSystem.open(path, flags: O_WRONLY, mode: 0)
                defer { try? fileSystem.close(file) }
                try fileSystem.ftruncate(file, length: Int64(start))
                try fileSystem.fsync(file)
            }
        }
        return out
    }

    public func writeAggregate(_ record: AggregateRecord, for channel: ChannelAddress) throws(ChannelStorageError) {
        do throws(FileSystemError) {
            try fileSystem.makeDirectories(directory(channel))
        } catch {
            throw fail(error)
        }
        let bytes: [UInt8]
        do { bytes = try JSON.encode(record.json) } catch { throw ChannelStorageError("aggregate \(channel): \(error)") }
        do throws(AtomicFile.Failure) {
            try AtomicFile.write(bytes, to: aggregatePath(channel), fileSystem: fileSystem)
        } catch {
            throw ChannelStorageError("\(error.step) \(error.error)")
        }
    }
}

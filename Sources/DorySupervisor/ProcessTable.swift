import Glibc

/// One process as `/proc/<pid>/stat` shows it (spec/supervise.md §5.2).
public struct ProcessEntry: Sendable, Hashable, CustomStringConvertible {
    public let pid: pid_t
    public let ppid: pid_t
    public let pgid: pid_t
    /// The state letter (`R`, `S`, `Z`, …).
    public let state: Character
    /// Field 22 (clock ticks since boot): with the pid, what identifies the process.
    public let startTime: UInt64
    /// The command name (field 2, without the parentheses).
    public let comm: String

    /// A zombie or a dead entry counts as gone.
    public var isGone: Bool { state == "Z" || state == "X" }

    public var description: String { "\(pid)(\(comm), ppid \(ppid), pgid \(pgid), \(state))" }
}

/// Reading `/proc` (spec/supervise.md §5.2).
public enum ProcessTable {
    /// The entry of one pid, or nil when it does not exist (or `/proc` is unreadable).
    public static func entry(pid: pid_t, procRoot: String = "/proc") -> ProcessEntry? {
        guard let text = readSmallFile("\(procRoot)/\(pid)/stat") else { return nil }
        return parseStat(text)
    }

    /// Parses a `stat` line: the command name may hold spaces and `)`, so fields are read after the last `)`.
    public static func parseStat(_ text: String) -> ProcessEntry? {
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")"), open < close,
              let pid = pid_t(text[..<open].trimmingCharacters(in: " "))
        else { return nil }
        let comm = String(text[text.index(after: open)..<close])
        let fields = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // fields[0] is field 3 (state); field k is fields[k - 3].
        guard fields.count > 19, let state = fields[0].first, let ppid = pid_t(fields[1]), let pgid = pid_t(fields[2]),
              let start = UInt64(fields[19])
        else { return nil }
        return ProcessEntry(pid: pid, ppid: ppid, pgid: pgid, state: state, startTime: start, comm: comm)
    }

    /// Every process in `/proc`, or nil when `/proc` cannot be read.
    public static func scan(procRoot: String = "/proc") -> [ProcessEntry]? {
        guard let directory = opendir(procRoot) else { return nil }
        defer { closedir(directory) }
        var result: [ProcessEntry] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let pid = pid_t(name), let process = self.entry(pid: pid, procRoot: procRoot) else { continue }
            result.append(process)
        }
        return result
    }

    /// The live processes (not zombies) whose chain of parents reaches `ancestor`, `ancestor` excluded.
    public static func descendants(of ancestor: pid_t, in table: [ProcessEntry]) -> [ProcessEntry] {
        var parent: [pid_t: pid_t] = [:]
        for entry in table { parent[entry.pid] = entry.ppid }
        return table.filter { entry in
            guard entry.pid != ancestor, !entry.isGone else { return false }
            var current = entry.ppid
            var steps = 0
            while current > 1, steps < 4096 {
                if current == ancestor { return true }
                guard let next = parent[current] else { return false }
                current = next
                steps += 1
            }
            return current == ancestor
        }
    }

    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 2048)
        var total = 0
        while total < buffer.count {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            total += n
        }
        return total > 0 ? String(decoding: buffer[..<total], as: UTF8.self) : nil
    }
}

#if canImport(Glibc)
import Glibc
#endif
@testable import DoryState

/// A fresh temporary directory, removed by `cleanup()`.
struct TempDir {
    let path: String

    init() {
        var template = Array(((getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp") + "/dorystate-test.XXXXXX").utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(p != nil, "mkdtemp failed")
        path = String(cString: p!)
    }

    func cleanup() { _ = runProcess("/bin/rm", ["-rf", path]) }

    func sub(_ name: String) -> String { path + "/" + name }
}

/// Runs a program; returns its exit status and standard output.
func runProcess(_ program: String, _ args: [String], stdinFile: String? = nil) -> (status: Int32, output: [UInt8]) {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { return (-1, []) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if let stdinFile { posix_spawn_file_actions_addopen(&actions, 0, stdinFile, O_RDONLY, 0) }
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    posix_spawn_file_actions_addclose(&actions, fds[0])
    posix_spawn_file_actions_addclose(&actions, fds[1])
    let argv = ([program] + args).map { strdup($0) } + [nil]
    defer { for a in argv { free(a) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, program, &actions, nil, argv, environ)
    close(fds[1])
    guard rc == 0 else { close(fds[0]); return (-1, []) }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fds[0], &chunk, chunk.count)
        if n > 0 { output.append(contentsOf: chunk[0..<n]) } else if n == 0 || errno != EINTR { break }
    }
    close(fds[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return ((status >> 8) & 0xFF, output)
}

func writeFile(_ path: String, _ bytes: [UInt8]) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    precondition(fd >= 0, "open \(path)")
    var off = 0
    while off < bytes.count {
        let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        precondition(n > 0)
        off += n
    }
    close(fd)
}

func readFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &chunk, chunk.count)
        if n <= 0 { break }
        out.append(contentsOf: chunk[0..<n])
    }
    return out
}

func listDir(_ path: String) -> [String] {
    guard let d = opendir(path) else { return [] }
    defer { closedir(d) }
    var names: [String] = []
    while let e = readdir(d) {
        let name = withUnsafePointer(to: e.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}

/// Deterministic pseudo-random JSON-ish text of about `size` bytes.
func sampleJSONText(size: Int) -> [UInt8] {
    var items: [String] = []
    var total = 0
    var i = 0
    while total < size {
        let item = "{\"id\":\(i),\"name\":\"item-\(i * 7919 % 10007)\",\"score\":\(Double(i) / 7.0),\"ok\":\(i % 3 == 0)}"
        items.append(item)
        total += item.utf8.count + 1
        i += 1
    }
    return Array(("{\"items\":[" + items.joined(separator: ",") + "]}").utf8)
}

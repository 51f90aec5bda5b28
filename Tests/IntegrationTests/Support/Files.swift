import DoryState
import Glibc

/// File helpers over plain system calls.
enum Files {
    static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 { out.append(contentsOf: chunk[0..<n]) } else if n < 0 && errno == EINTR { continue } else { break }
        }
        return out
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Names in a directory (without . and ..), sorted; empty if it does not exist.
    static func list(_ directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    static func stat(_ path: String) -> Glibc.stat? {
        var info = Glibc.stat()
        return lstat(path, &info) == 0 ? info : nil
    }
}

/// A decoded snapshot file: the envelope and the exact JSON text `gzip -dc` printed.
struct Snapshot {
    let envelope: JSONObject
    let text: String
    var state: JSONObject { envelope["state"]?.object ?? [:] }
    var reason: String? { envelope["reason"]?.string }
    var generation: Int64? { envelope["generation"]?.int }
    var counter: Int64? { state["counter"]?.int }
}

/// Snapshot files, read with the system's `gzip -dc` so the tests prove standard gzip reads them.
enum Snapshots {
    struct DecodeError: Error, CustomStringConvertible { let description: String }

    static func isGenerationName(_ name: String) -> Bool {
        let utf8 = Array(name.utf8)
        return utf8.count == 28 && name.hasSuffix(".json.gz") && utf8[0..<20].allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    static func generations(in directory: String) -> [UInt64] {
        Files.list(directory).filter(isGenerationName).compactMap { UInt64($0.prefix(20)) }.sorted()
    }

    static func path(in directory: String, generation: UInt64) -> String {
        let digits = String(generation)
        return directory + "/" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".json.gz"
    }

    /// `gzip -dc PATH`, parsed.
    static func decode(path: String, sandbox: Sandbox) throws -> Snapshot {
        try gunzip(arguments: ["-dc", path], stdinFD: nil, what: path, sandbox: sandbox)
    }

    /// `gzip -dc` reading an already open descriptor (so pruning cannot remove the file under the reader).
    static func decode(fd: Int32, what: String, sandbox: Sandbox) throws -> Snapshot {
        try gunzip(arguments: ["-dc"], stdinFD: fd, what: what, sandbox: sandbox)
    }

    private static func gunzip(arguments: [String], stdinFD: Int32?, what: String, sandbox: Sandbox) throws -> Snapshot {
        let gzip = Files.exists("/usr/bin/gzip") ? "/usr/bin/gzip" : "/bin/gzip"
        let child = try sandbox.spawn(gzip, arguments, environment: ["PATH": "/usr/bin:/bin"], captureStdout: true, stdinFD: stdinFD)
        guard let status = child.waitForExit(timeout: .seconds(30)) else { throw DecodeError(description: "gzip hung on \(what)") }
        _ = Poll.until(timeout: .seconds(5), interval: .milliseconds(2)) { child.stdout!.isClosed }
        guard status.code == 0 else {
            throw DecodeError(description: "gzip -dc \(what): \(status): \(child.stderr.text)")
        }
        let text = child.stdout!.text
        guard let envelope = JSON.object(text) else { throw DecodeError(description: "\(what) is not a JSON object: \(text.prefix(200))") }
        return Snapshot(envelope: envelope, text: text)
    }
}

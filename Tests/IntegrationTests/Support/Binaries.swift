import Glibc

/// Finds the built `doryd` and `doryd-fixture` next to the test bundle (`.build/<config>/` or
/// `.build/<triple>/<config>/`), by walking up from `/proc/self/exe`.
enum Binaries {
    struct Missing: Error, CustomStringConvertible {
        let description: String
    }

    /// The directory holding both executables.
    static let directory: Result<String, Missing> = {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard let resolved = realpath("/proc/self/exe", &buffer) else {
            return .failure(Missing(description: "cannot resolve /proc/self/exe: \(String(cString: strerror(errno)))"))
        }
        var path = String(cString: resolved)
        let start = path
        while path.count > 1 {
            path = dirname(path)
            if isExecutable(path + "/doryd") && isExecutable(path + "/doryd-fixture") { return .success(path) }
            if path.hasSuffix("/.build") { break }
        }
        return .failure(Missing(description:
            "doryd and doryd-fixture not found in any .build/<config> directory above \(start); "
            + "build them first (swift build --product doryd; swift build --product doryd-fixture)"))
    }()

    static func doryd() throws -> String { try directory.get() + "/doryd" }
    static func fixture() throws -> String { try directory.get() + "/doryd-fixture" }

    static func dirname(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func isExecutable(_ path: String) -> Bool { access(path, X_OK) == 0 }
}

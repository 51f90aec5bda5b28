// Names and paths inside a processor directory (spec §6.2).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The paths of one processor directory `<state_dir>/<processor_id>/` and the file-name rules of §6.2.
public struct SnapshotLayout: Sendable, Equatable {
    public let processorDirectory: String

    public init(processorDirectory: String) {
        var dir = processorDirectory
        while dir.count > 1, dir.hasSuffix("/") { dir.removeLast() }
        self.processorDirectory = dir
    }

    /// `<state_dir>/<processor_id>`, trailing slashes of `state_dir` dropped.
    public static func processorDirectory(stateDir: String, processorId: String) -> String {
        var dir = stateDir
        while dir.count > 1, dir.hasSuffix("/") { dir.removeLast() }
        return dir + "/" + processorId
    }

    public var snapshotsDirectory: String { processorDirectory + "/snapshots" }
    public var quarantineDirectory: String { processorDirectory + "/quarantine" }
    public var archiveDirectory: String { processorDirectory + "/archive" }
    public var eventsDirectory: String { processorDirectory + "/events" }
    public var lockPath: String { processorDirectory + "/lock" }
    public var journalPath: String { processorDirectory + "/boots.jsonl" }

    public func snapshotPath(generation: Int64) -> String {
        snapshotsDirectory + "/" + Self.fileName(generation: generation)
    }

    /// `00000000000000000042.json.gz`: the generation zero-padded to 20 digits.
    public static func fileName(generation: Int64) -> String {
        paddedGeneration(generation) + ".json.gz"
    }

    static func paddedGeneration(_ generation: Int64) -> String {
        let digits = String(generation)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    /// The generation of a name matching `^[0-9]{20}\.json\.gz$` exactly; nil for any other name.
    public static func generation(fromFileName name: String) -> Int64? {
        let utf8 = Array(name.utf8)
        guard utf8.count == 28, name.hasSuffix(".json.gz") else { return nil }
        return leadingGeneration(utf8)
    }

    /// The generation a name starts with (`<20 digits>.json.gz…`, as in quarantine and archive names).
    public static func generation(prefixOf name: String) -> Int64? {
        let utf8 = Array(name.utf8)
        guard utf8.count >= 28, Array(utf8[20..<28]) == Array(".json.gz".utf8) else { return nil }
        return leadingGeneration(utf8)
    }

    private static func leadingGeneration(_ utf8: [UInt8]) -> Int64? {
        var value: Int64 = 0
        for b in utf8[0..<20] {
            guard b >= 48, b <= 57 else { return nil }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int64(b - 48))
            if o1 || o2 { return nil }
            value = s
        }
        return value
    }

    /// Whether `name` is a doryd temporary file: `.<name>.tmp.<random>`.
    public static func isTemporaryFileName(_ name: String) -> Bool {
        guard name.hasPrefix("."), let range = name.firstRange(of: ".tmp.") else { return false }
        return range.lowerBound > name.index(after: name.startIndex) && range.upperBound < name.endIndex
    }

    /// A fresh temporary name for `finalName` in the same directory: `.<finalName>.tmp.<8 hex digits>`.
    public static func temporaryFileName(for finalName: String) -> String {
        let r = UInt32.random(in: .min ... .max)
        let hex = String(r, radix: 16)
        return "." + finalName + ".tmp." + String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// `yyyyMMddTHHmmss.SSSZ` in UTC, as archive directory names start.
    public static func compactUTC(millis: Int64) -> String {
        let rfc = WallClock.rfc3339(millis: millis)  // 2025-01-02T03:04:05.678Z
        return String(rfc.filter { $0 != "-" && $0 != ":" })
    }
}

import DoryState

/// Civil-date arithmetic (proleptic Gregorian, Howard Hinnant's algorithms).
enum CivilDate {
    static func days(year: Int64, month: Int, day: Int) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(days z0: Int64) -> (year: Int64, month: Int, day: Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = Int(doy - (153 * mp + 2) / 5 + 1)
        let m = Int(mp < 10 ? mp + 3 : mp - 9)
        return (m <= 2 ? y + 1 : y, m, d)
    }

    /// 0 = Sunday.
    static func weekday(days: Int64) -> Int {
        Int(((days % 7) + 11) % 7)
    }

    static func isLeap(_ y: Int64) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func monthLength(_ y: Int64, _ m: Int) -> Int {
        [31, isLeap(y) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }
}

/// A POSIX TZ rule (the TZif footer, RFC 8536 §3.3), e.g. `AEST-10AEDT,M10.1.0,M4.1.0/3`.
struct PosixTZRule: Sendable, Equatable {
    enum DateRule: Sendable, Equatable {
        /// `Jn`: day 1…365, February 29 never counted.
        case julian1(Int)
        /// `n`: day 0…365, leap days counted.
        case julian0(Int)
        /// `Mm.w.d`: day `d` (0 = Sunday) of week `w` (5 = last) of month `m`.
        case monthWeekDay(Int, Int, Int)
    }

    /// UTC offset in seconds (east positive) of standard time.
    var stdOffset: Int64
    var dstOffset: Int64?
    var start: (DateRule, Int64)?
    var end: (DateRule, Int64)?

    static func == (a: PosixTZRule, b: PosixTZRule) -> Bool {
        a.stdOffset == b.stdOffset && a.dstOffset == b.dstOffset && a.start?.0 == b.start?.0
            && a.start?.1 == b.start?.1 && a.end?.0 == b.end?.0 && a.end?.1 == b.end?.1
    }

    static func parse(_ text: String) -> PosixTZRule? {
        var p = Array(text.utf8)[...]
        func name() -> Bool {
            if p.first == UInt8(ascii: "<") {
                guard let close = p.firstIndex(of: UInt8(ascii: ">")) else { return false }
                p = p[(close + 1)...]
                return true
            }
            var n = 0
            while let c = p.first, (c >= 65 && c <= 90) || (c >= 97 && c <= 122) { p = p.dropFirst(); n += 1 }
            return n >= 3
        }
        func number() -> Int64? {
            var v: Int64 = 0
            var n = 0
            while let c = p.first, c >= 48, c <= 57 { v = v * 10 + Int64(c - 48); p = p.dropFirst(); n += 1 }
            return n > 0 ? v : nil
        }
        /// `[+-]hh[:mm[:ss]]` in seconds.
        func time() -> Int64? {
            var sign: Int64 = 1
            if p.first == UInt8(ascii: "-") { sign = -1; p = p.dropFirst() } else if p.first == UInt8(ascii: "+") { p = p.dropFirst() }
            guard let h = number() else { return nil }
            var total = h * 3600
            if p.first == UInt8(ascii: ":") {
                p = p.dropFirst()
                guard let m = number() else { return nil }
                total += m * 60
                if p.first == UInt8(ascii: ":") {
                    p = p.dropFirst()
                    guard let s = number() else { return nil }
                    total += s
                }
            }
            return sign * total
        }
        func dateRule() -> (DateRule, Int64)? {
            let rule: DateRule
            if p.first == UInt8(ascii: "J") {
                p = p.dropFirst()
                guard let n = number(), (1...365).contains(n) else { return nil }
                rule = .julian1(Int(n))
            } else if p.first == UInt8(ascii: "M") {
                p = p.dropFirst()
                guard let m = number(), p.first == UInt8(ascii: ".") else { return nil }
                p = p.dropFirst()
                guard let w = number(), p.first == UInt8(ascii: ".") else { return nil }
                p = p.dropFirst()
                guard let d = number(), (1...12).contains(m), (1...5).contains(w), (0...6).contains(d) else { return nil }
                rule = .monthWeekDay(Int(m), Int(w), Int(d))
            } else {
                guard let n = number(), (0...365).contains(n) else { return nil }
                rule = .julian0(Int(n))
            }
            var at: Int64 = 7200
            if p.first == UInt8(ascii: "/") {
                p = p.dropFirst()
                guard let t = time() else { return nil }
                at = t
            }
            return (rule, at)
        }
        guard name(), let std = time() else { return nil }
        var rule = PosixTZRule(stdOffset: -std)
        if p.isEmpty { return rule }
        guard name() else { return nil }
        rule.dstOffset = -std + 3600
        if let c = p.first, c != UInt8(ascii: ",") {
            guard let dst = time() else { return nil }
            rule.dstOffset = -dst
        }
        guard p.first == UInt8(ascii: ",") else { return nil }
        p = p.dropFirst()
        guard let s = dateRule(), p.first == UInt8(ascii: ",") else { return nil }
        p = p.dropFirst()
        guard let e = dateRule(), p.isEmpty else { return nil }
        rule.start = s
        rule.end = e
        return rule
    }

    /// Local midnight (as days since epoch) of the rule's day in `year`.
    private static func day(_ rule: DateRule, year: Int64) -> Int64 {
        let jan1 = CivilDate.days(year: year, month: 1, day: 1)
        switch rule {
        case .julian1(let n):
            let leapShift: Int64 = CivilDate.isLeap(year) && n >= 60 ? 1 : 0
            return jan1 + Int64(n - 1) + leapShift
        case .julian0(let n):
            return jan1 + Int64(n)
        case .monthWeekDay(let m, let w, let d):
            let first = CivilDate.days(year: year, month: m, day: 1)
            var day = first + Int64((d - CivilDate.weekday(days: first) + 7) % 7) + Int64(7 * (w - 1))
            let length = Int64(CivilDate.monthLength(year, m))
            while day >= first + length { day -= 7 }
            return day
        }
    }

    func offset(at t: Int64) -> Int64 {
        guard let dst = dstOffset, let start, let end else { return stdOffset }
        let year = CivilDate.civil(days: CivilDate.floorDiv(t + stdOffset, 86400)).year
        // DST starts at `start` local standard time and ends at `end` local daylight time.
        func interval(_ y: Int64) -> (Int64, Int64) {
            let s = PosixTZRule.day(start.0, year: y) * 86400 + start.1 - stdOffset
            let e = PosixTZRule.day(end.0, year: y) * 86400 + end.1 - dst
            return (s, e)
        }
        let (s, e) = interval(year)
        if s < e { return (t >= s && t < e) ? dst : stdOffset }
        // Southern hemisphere: DST spans the new year.
        return (t < e || t >= s) ? dst : stdOffset
    }
}

/// A time zone's UTC offsets: `UTC`, or a TZif file (RFC 8536, version 2+ 64-bit data plus the footer rule for
/// instants after the last transition), read by doryd itself; no ICU, no platform time-zone API.
public struct TimeZoneRules: Sendable, Equatable {
    public let name: String
    /// Transition instants (s) and the UTC offset in force from each.
    private var transitions: [Int64] = []
    private var offsets: [Int64] = []
    /// The offset before the first transition.
    private var initialOffset: Int64 = 0
    private var footer: PosixTZRule?

    public static let utc = TimeZoneRules(name: "UTC")

    private init(name: String) { self.name = name }

    /// A fixed offset east of UTC (tests).
    public static func fixed(name: String, offsetSeconds: Int64) -> TimeZoneRules {
        var r = TimeZoneRules(name: name)
        r.initialOffset = offsetSeconds
        return r
    }

    /// Whether `name` is one or more `/`-separated segments of `[A-Za-z0-9_+-]` (§2.5).
    public static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty else { return false }
        for segment in name.split(separator: "/", omittingEmptySubsequences: false) {
            guard !segment.isEmpty, segment.utf8.allSatisfy({ b in
                (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 95 || b == 43 || b == 45
            }) else { return false }
        }
        return true
    }

    /// Loads `name` from `directory` (`UTC` is built in). nil reason = fine.
    public static func load(_ name: String, directory: String = "/usr/share/zoneinfo",
                            fileSystem: any FileSystem = SystemFileSystem()) -> Result<TimeZoneRules, ScheduleError>
    {
        if name == "UTC" { return .success(TimeZoneRules.utc) }
        guard isValidName(name) else { return .failure(ScheduleError("unknown time zone \"\(name)\"")) }
        guard let bytes = try? fileSystem.readWholeFile(directory + "/" + name, maxBytes: 1 << 20),
              let rules = parse(tzif: bytes, name: name)
        else { return .failure(ScheduleError("unknown time zone \"\(name)\"")) }
        return .success(rules)
    }

    /// Parses TZif bytes; nil when not valid TZif (version 2+ is required for the 64-bit data).
    static func parse(tzif b: [UInt8], name: String) -> TimeZoneRules? {
        func u32(_ i: Int) -> Int64? {
            guard i + 4 <= b.count else { return nil }
            return Int64(UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3]))
        }
        func i32(_ i: Int) -> Int64? { u32(i).map { Int64(Int32(truncatingIfNeeded: $0)) } }
        func i64(_ i: Int) -> Int64? {
            guard i + 8 <= b.count else { return nil }
            var v: UInt64 = 0
            for k in 0..<8 { v = v << 8 | UInt64(b[i + k]) }
            return Int64(bitPattern: v)
        }
        guard b.count >= 44, b[0] == 0x54, b[1] == 0x5A, b[2] == 0x69, b[3] == 0x66 else { return nil }
        guard b[4] >= 0x32 else { return nil }
        func counts(_ at: Int) -> [Int]? {
            var out: [Int] = []
            for k in 0..<6 { guard let v = u32(at + 20 + 4 * k) else { return nil }; out.append(Int(v)) }
            return out  // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
        }
        guard let c1 = counts(0) else { return nil }
        let v1Size = c1[3] * 5 + c1[4] * 6 + c1[5] + c1[2] * 8 + c1[1] + c1[0]
        let h2 = 44 + v1Size
        guard h2 + 44 <= b.count, b[h2] == 0x54, let c = counts(h2) else { return nil }
        let (isut, isstd, leap, timecnt, typecnt, charcnt) = (c[0], c[1], c[2], c[3], c[4], c[5])
        guard typecnt > 0 else { return nil }
        var i = h2 + 44
        var times: [Int64] = []
        for _ in 0..<timecnt { guard let t = i64(i) else { return nil }; times.append(t); i += 8 }
        var idx: [Int] = []
        for _ in 0..<timecnt { guard i < b.count else { return nil }; idx.append(Int(b[i])); i += 1 }
        var typeOffsets: [Int64] = []
        var typeIsDst: [Bool] = []
        for _ in 0..<typecnt {
            guard let off = i32(i), i + 5 < b.count else { return nil }
            typeOffsets.append(off)
            typeIsDst.append(b[i + 4] != 0)
            i += 6
        }
        i += charcnt + leap * 12 + isstd + isut
        guard i < b.count, b[i] == 0x0A else { return nil }
        let footerStart = i + 1
        guard let footerEnd = b[footerStart...].firstIndex(of: 0x0A) else { return nil }
        let footerText = String(decoding: b[footerStart..<footerEnd], as: UTF8.self)
        var r = TimeZoneRules(name: name)
        r.transitions = times
        guard idx.allSatisfy({ $0 < typecnt }) else { return nil }
        r.offsets = idx.map { typeOffsets[$0] }
        r.initialOffset = typeOffsets[0]
        if !footerText.isEmpty {
            guard let rule = PosixTZRule.parse(footerText) else { return nil }
            r.footer = rule
        }
        return r
    }

    /// The UTC offset (seconds east) in force at `t` (Unix seconds).
    public func offset(at t: Int64) -> Int64 {
        guard let last = transitions.last else { return footer?.offset(at: t) ?? initialOffset }
        if t >= last, let footer { return footer.offset(at: t) }
        if t < transitions[0] { return initialOffset }
        var lo = 0
        var hi = transitions.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if transitions[mid] <= t { lo = mid } else { hi = mid - 1 }
        }
        return offsets[lo]
    }

    /// The instant a local wall-clock time (seconds since the epoch as if UTC) fires at (§2.5): the earlier
    /// instant when it occurs twice, the first instant after the gap when it does not exist.
    public func instant(forLocal local: Int64) -> Int64 {
        let a = offset(at: local - 86400)
        let b = offset(at: local + 86400)
        var candidates: [Int64] = []
        for off in Set([a, b, offset(at: local)]) {
            let u = local - off
            if offset(at: u) == off { candidates.append(u) }
        }
        if let first = candidates.min() { return first }
        // A gap: find the transition between local - max and local - min.
        var lo = local - max(a, b)
        var hi = local - min(a, b)
        let after = offset(at: hi)
        while lo < hi {
            let mid = CivilDate.floorDiv(lo + hi, 2)
            if offset(at: mid) == after { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }
}

import DoryState

/// A schedule that cannot be used: what is wrong, for a one-line configuration error.
public struct ScheduleError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A 5-field cron expression (§2.5): minute, hour, day of month, month, day of week.
public struct CronExpression: Sendable, Equatable {
    var minutes: UInt64
    var hours: UInt64
    var daysOfMonth: UInt64
    var months: UInt64
    /// Bit 0…6, Sunday = 0 (7 folds onto 0).
    var daysOfWeek: UInt64
    var domRestricted: Bool
    var dowRestricted: Bool

    static let monthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    static let dayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

    /// Parses the expression; the error names what is wrong.
    public static func parse(_ text: String) -> Result<CronExpression, ScheduleError> {
        let fields = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard fields.count == 5 else { return .failure(ScheduleError("expected 5 space-separated fields, got \(fields.count)")) }
        func field(_ s: String, _ range: ClosedRange<Int>, names: [String], nameBase: Int) -> Result<(UInt64, Bool), ScheduleError> {
            var bits: UInt64 = 0
            for part in s.split(separator: ",", omittingEmptySubsequences: false) {
                var body = Substring(part)
                var step = 1
                if let slash = part.firstIndex(of: "/") {
                    guard let n = Int(part[part.index(after: slash)...]), n > 0 else { return .failure(ScheduleError("invalid step in \"\(s)\"")) }
                    step = n
                    body = part[..<slash]
                }
                func value(_ t: Substring) -> Int? {
                    if let n = Int(t), t.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) { return range.contains(n) ? n : nil }
                    if let i = names.firstIndex(of: t.uppercased()) { return i + nameBase }
                    return nil
                }
                var lo: Int
                var hi: Int
                if body == "*" {
                    (lo, hi) = (range.lowerBound, range.upperBound)
                } else if let dash = body.firstIndex(of: "-") {
                    guard let a = value(body[..<dash]), let b = value(body[body.index(after: dash)...]), a <= b else {
                        return .failure(ScheduleError("invalid range \"\(part)\""))
                    }
                    (lo, hi) = (a, b)
                } else {
                    guard let v = value(body) else { return .failure(ScheduleError("invalid value \"\(part)\"")) }
                    guard step == 1 || part.contains("/") == false else { return .failure(ScheduleError("a step needs * or a range: \"\(part)\"")) }
                    (lo, hi) = (v, v)
                }
                var v = lo
                while v <= hi { bits |= 1 << UInt64(v); v += step }
            }
            return .success((bits, s != "*"))
        }
        var out = CronExpression(minutes: 0, hours: 0, daysOfMonth: 0, months: 0, daysOfWeek: 0,
                                 domRestricted: false, dowRestricted: false)
        switch field(fields[0], 0...59, names: [], nameBase: 0) {
        case .failure(let e): return .failure(ScheduleError("minute: \(e)"))
        case .success(let (b, _)): out.minutes = b
        }
        switch field(fields[1], 0...23, names: [], nameBase: 0) {
        case .failure(let e): return .failure(ScheduleError("hour: \(e)"))
        case .success(let (b, _)): out.hours = b
        }
        switch field(fields[2], 1...31, names: [], nameBase: 0) {
        case .failure(let e): return .failure(ScheduleError("day of month: \(e)"))
        case .success(let (b, r)): (out.daysOfMonth, out.domRestricted) = (b, r)
        }
        switch field(fields[3], 1...12, names: monthNames, nameBase: 1) {
        case .failure(let e): return .failure(ScheduleError("month: \(e)"))
        case .success(let (b, _)): out.months = b
        }
        switch field(fields[4], 0...7, names: dayNames, nameBase: 0) {
        case .failure(let e): return .failure(ScheduleError("day of week: \(e)"))
        case .success(let (b, r)):
            out.daysOfWeek = (b | (b >> 7)) & 0x7F
            out.dowRestricted = r
        }
        return .success(out)
    }

    func matchesDay(year: Int64, month: Int, day: Int, weekday: Int) -> Bool {
        guard months & (1 << UInt64(month)) != 0 else { return false }
        let dom = daysOfMonth & (1 << UInt64(day)) != 0
        let dow = daysOfWeek & (1 << UInt64(weekday)) != 0
        if domRestricted && dowRestricted { return dom || dow }
        return dom && dow
    }

    /// The first fire strictly after `afterMillis` in `zone` (§2.5 DST rules), or nil when none within 8 years.
    public func nextFire(afterMillis: Int64, zone: TimeZoneRules) -> Int64? {
        let after = CivilDate.floorDiv(afterMillis, 1000)
        let localNow = after + zone.offset(at: after)
        // Start one day early so a fire pushed past a gap is not missed.
        var dayNumber = CivilDate.floorDiv(localNow, 86400) - 1
        let lastDay = dayNumber + 366 * 8
        while dayNumber <= lastDay {
            let (y, m, d) = CivilDate.civil(days: dayNumber)
            if matchesDay(year: y, month: m, day: d, weekday: CivilDate.weekday(days: dayNumber)) {
                for h in 0..<24 where hours & (1 << UInt64(h)) != 0 {
                    for mi in 0..<60 where minutes & (1 << UInt64(mi)) != 0 {
                        let local = dayNumber * 86400 + Int64(h * 3600 + mi * 60)
                        let instant = zone.instant(forLocal: local)
                        if instant > after { return instant * 1000 }
                    }
                }
            }
            dayNumber += 1
        }
        return nil
    }
}

/// One configured schedule (§2.5).
public struct ScheduleSpec: Sendable, Equatable {
    public enum Timing: Sendable, Equatable {
        /// Every `seconds`, on a monotonic clock, first one interval after start.
        case rate(seconds: Int64)
        case cron(CronExpression, TimeZoneRules)
    }

    public var id: String
    public var timing: Timing

    /// Parses `every <N><unit>` (unit s, m, h, d) into seconds.
    public static func parseRate(_ text: String) -> Int64? {
        guard text.hasPrefix("every "), let unit = text.last else { return nil }
        let number = text.dropFirst(6).dropLast()
        guard !number.isEmpty, number.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int64(number), n > 0 else {
            return nil
        }
        let scale: Int64
        switch unit {
        case "s": scale = 1
        case "m": scale = 60
        case "h": scale = 3600
        case "d": scale = 86400
        default: return nil
        }
        let (v, o) = n.multipliedReportingOverflow(by: scale)
        return o ? nil : v
    }

    /// Whether `id` is 1–64 characters of `[A-Za-z0-9_.-]`.
    public static func isValidId(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 64 && id.utf8.allSatisfy { b in
            (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 95 || b == 46 || b == 45
        }
    }

    /// The processor event a fire enqueues.
    public func fireEvent(organisationId: String?, scheduledAt: Int64) -> JSONObject {
        ["op": "on_schedule", "d": .object(["schedule_id": .string(id),
                                             "organisation_id": organisationId.map(JSONValue.string) ?? .null,
                                             "scheduled_at": .int(scheduledAt)])]
    }
}

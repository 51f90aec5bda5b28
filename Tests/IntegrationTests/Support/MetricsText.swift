/// A strict reader of the Prometheus text exposition format 0.0.4, enough to check §4.6: every sample belongs to a
/// family announced by exactly one `# HELP` and one `# TYPE`, label values are unescaped, values parse.
struct MetricsText {
    struct Family {
        var help: String?
        var type: String?
    }
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }
    struct ParseError: Error, CustomStringConvertible { let description: String }

    var families: [String: Family] = [:]
    var samples: [Sample] = []

    static func parse(_ text: String) throws -> MetricsText {
        guard text.hasSuffix("\n") else { throw ParseError(description: "the text does not end with a newline") }
        var result = MetricsText()
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            let line = String(raw)
            if line.isEmpty { continue }
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                let isHelp = line.hasPrefix("# HELP ")
                let rest = line.dropFirst(7)
                guard let space = rest.firstIndex(of: " ") else { throw ParseError(description: "bad comment: \(line)") }
                let name = String(rest[..<space])
                let value = String(rest[rest.index(after: space)...])
                var family = result.families[name] ?? Family()
                if isHelp {
                    guard family.help == nil else { throw ParseError(description: "second HELP for \(name)") }
                    family.help = value
                } else {
                    guard family.type == nil else { throw ParseError(description: "second TYPE for \(name)") }
                    guard ["counter", "gauge", "histogram", "summary", "untyped"].contains(value) else {
                        throw ParseError(description: "bad TYPE \(value) for \(name)")
                    }
                    family.type = value
                }
                result.families[name] = family
                continue
            }
            if line.hasPrefix("#") { continue }
            result.samples.append(try parseSample(line))
        }
        for sample in result.samples {
            guard let family = result.family(of: sample.name), result.families[family]?.type != nil,
                  result.families[family]?.help != nil else {
                throw ParseError(description: "sample \(sample.name) has no HELP/TYPE family")
            }
        }
        return result
    }

    /// The family a sample name belongs to (histogram samples carry `_bucket`, `_sum`, `_count`).
    func family(of name: String) -> String? {
        if families[name] != nil { return name }
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if families[base]?.type == "histogram" || families[base]?.type == "summary" { return base }
        }
        return nil
    }

    private static func parseSample(_ line: String) throws -> Sample {
        let chars = Array(line)
        var i = 0
        var name = ""
        while i < chars.count, chars[i] != "{", chars[i] != " " { name.append(chars[i]); i += 1 }
        guard !name.isEmpty else { throw ParseError(description: "empty metric name: \(line)") }
        var labels: [String: String] = [:]
        if i < chars.count, chars[i] == "{" {
            i += 1
            while i < chars.count, chars[i] != "}" {
                var key = ""
                while i < chars.count, chars[i] != "=" { key.append(chars[i]); i += 1 }
                guard i + 1 < chars.count, chars[i + 1] == "\"" else { throw ParseError(description: "bad label in \(line)") }
                i += 2
                var value = ""
                while i < chars.count, chars[i] != "\"" {
                    if chars[i] == "\\" {
                        guard i + 1 < chars.count else { throw ParseError(description: "bad escape in \(line)") }
                        switch chars[i + 1] {
                        case "\\": value.append("\\")
                        case "\"": value.append("\"")
                        case "n": value.append("\n")
                        default: throw ParseError(description: "bad escape \\\(chars[i + 1]) in \(line)")
                        }
                        i += 2
                    } else {
                        value.append(chars[i]); i += 1
                    }
                }
                guard i < chars.count else { throw ParseError(description: "unterminated label value in \(line)") }
                i += 1
                guard labels[key] == nil else { throw ParseError(description: "duplicate label \(key) in \(line)") }
                labels[key] = value
                if i < chars.count, chars[i] == "," { i += 1 }
            }
            guard i < chars.count else { throw ParseError(description: "unterminated labels in \(line)") }
            i += 1
        }
        guard i < chars.count, chars[i] == " " else { throw ParseError(description: "no value in \(line)") }
        let fields = String(chars[(i + 1)...]).split(separator: " ")
        guard fields.count == 1 else { throw ParseError(description: "timestamp or junk after the value: \(line)") }
        let text = String(fields[0])
        let value: Double
        switch text {
        case "+Inf": value = .infinity
        case "-Inf": value = -.infinity
        case "NaN": value = .nan
        default:
            guard let parsed = Double(text) else { throw ParseError(description: "bad value \(text) in \(line)") }
            value = parsed
        }
        return Sample(name: name, labels: labels, value: value)
    }

    /// Samples of `name` whose labels include `labels`.
    func samples(_ name: String, _ labels: [String: String] = [:]) -> [Sample] {
        samples.filter { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }
    }

    /// The single value of `name` with exactly-matching `labels` subset, or nil.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        let found = samples(name, labels)
        return found.count == 1 ? found[0].value : (found.isEmpty ? nil : found.map(\.value).reduce(0, +))
    }
}

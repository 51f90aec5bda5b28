import CYAML

/// One scalar of a YAML document, kept as its source text so a setting is validated exactly like an environment
/// value (spec/dory-runtime.md §10 **YAML**): no YAML 1.1 implicit typing is applied here.
public struct YAMLScalar: Sendable, Equatable {
    /// How the scalar was written.
    public enum Style: Sendable, Equatable {
        case plain, singleQuoted, doubleQuoted, literal, folded
    }

    /// The scalar's text after YAML unquoting/folding (for a plain scalar: exactly what was written).
    public var text: String
    public var style: Style
    /// True when the scalar was tagged `!!str`; it is then a string like a quoted one.
    public var isTaggedString: Bool
    /// 1-based line of the scalar's first character.
    public var line: Int
    /// 1-based column of the scalar's first character.
    public var column: Int

    public init(text: String, style: Style = .plain, isTaggedString: Bool = false, line: Int = 1, column: Int = 1) {
        self.text = text
        self.style = style
        self.isTaggedString = isTaggedString
        self.line = line
        self.column = column
    }

    /// A plain, untagged scalar: the only kind the YAML 1.2 core schema may read as null, bool or number.
    public var isPlain: Bool { style == .plain && !isTaggedString }
    /// Written in single or double quotes.
    public var isQuoted: Bool { style == .singleQuoted || style == .doubleQuoted }
}

/// One key/value pair of a YAML mapping, in document order.
public struct YAMLMappingEntry: Sendable, Equatable {
    public var key: YAMLScalar
    public var value: YAMLNode
    public init(key: YAMLScalar, value: YAMLNode) {
        self.key = key
        self.value = value
    }
}

/// A node of a parsed YAML document. Mapping keys are always scalars (a complex key is a parse error); anchors,
/// aliases and tags other than `!!str` are rejected, so the tree is exactly what the text shows.
public indirect enum YAMLNode: Sendable, Equatable {
    case scalar(YAMLScalar)
    case sequence([YAMLNode], line: Int)
    case mapping([YAMLMappingEntry], line: Int)

    /// 1-based line where the node starts.
    public var line: Int {
        switch self {
        case .scalar(let s): s.line
        case .sequence(_, let line), .mapping(_, let line): line
        }
    }

    /// "a scalar", "a sequence", "a mapping": for messages.
    public var kindDescription: String {
        switch self {
        case .scalar: "a scalar"
        case .sequence: "a sequence"
        case .mapping: "a mapping"
        }
    }
}

/// Why a YAML text could not be read: libyaml's problem, or a construct doryd refuses, with its position.
public struct YAMLError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    /// 1-based line (0 when unknown).
    public var line: Int
    /// 1-based column (0 when unknown).
    public var column: Int

    public init(message: String, line: Int, column: Int) {
        self.message = message
        self.line = line
        self.column = column
    }

    public var description: String {
        line > 0 ? "line \(line), column \(column): \(message)" : message
    }
}

/// A small binding of libyaml's event API that builds a ``YAMLNode`` tree from at most one document.
public enum YAMLDocument {
    /// Deepest nesting accepted, so a hostile file cannot exhaust the stack.
    public static let maxDepth = 64

    /// Parses `bytes` (UTF-8) as a stream holding zero or one document.
    /// - Returns: the document's root node, or nil when the stream holds no document (empty or comments only).
    /// - Throws: a syntax error, a second document, an anchor, alias or unsupported tag, a complex mapping key,
    ///   a key given twice in one mapping, or nesting deeper than ``maxDepth``.
    public static func parse(_ bytes: [UInt8]) throws(YAMLError) -> YAMLNode? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw YAMLError(message: "cannot initialise the YAML parser (out of memory)", line: 0, column: 0)
        }
        defer { yaml_parser_delete(&parser) }
        // libyaml keeps a pointer to the input: every event is read inside this closure.
        let result: Result<YAMLNode?, YAMLError> = bytes.withUnsafeBufferPointer { buffer in
            // An empty buffer may have a nil base address; libyaml needs a valid pointer.
            var empty: UInt8 = 0
            if let base = buffer.baseAddress {
                yaml_parser_set_input_string(&parser, base, buffer.count)
            } else {
                yaml_parser_set_input_string(&parser, &empty, 0)
            }
            return withUnsafeMutablePointer(to: &parser) { pointer in
                do throws(YAMLError) {
                    return .success(try EventReader(parser: pointer).readStream())
                } catch {
                    return .failure(error)
                }
            }
        }
        return try result.get()
    }

    /// Parses a string; see ``parse(_:)-([UInt8])``.
    public static func parse(_ text: String) throws(YAMLError) -> YAMLNode? {
        try parse(Array(text.utf8))
    }
}

/// Pulls events from a libyaml parser and assembles nodes. Lives only during one `parse` call.
private struct EventReader {
    let parser: UnsafeMutablePointer<yaml_parser_t>

    init(parser: UnsafeMutablePointer<yaml_parser_t>) {
        self.parser = parser
    }

    /// One event's useful parts, copied out so the C event can be freed at once.
    struct Event {
        enum Kind { case streamStart, streamEnd, documentStart, documentEnd, alias, scalar, sequenceStart, sequenceEnd,
                    mappingStart, mappingEnd, none }
        var kind: Kind
        var line: Int
        var column: Int
        var anchor: String?
        var tag: String?
        var text: String
        var style: YAMLScalar.Style
    }

    func next() throws(YAMLError) -> Event {
        var event = yaml_event_t()
        guard yaml_parser_parse(parser, &event) == 1 else {
            let p = parser.pointee
            var message = p.problem.map { String(cString: $0) } ?? "syntax error"
            if let context = p.context { message += " " + String(cString: context) }
            // libyaml marks are 0-based.
            throw YAMLError(message: message, line: Int(p.problem_mark.line) + 1, column: Int(p.problem_mark.column) + 1)
        }
        defer { yaml_event_delete(&event) }
        var result = Event(kind: .none, line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1,
                           anchor: nil, tag: nil, text: "", style: .plain)
        func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
            pointer.map { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
        }
        switch event.type {
        case YAML_STREAM_START_EVENT: result.kind = .streamStart
        case YAML_STREAM_END_EVENT: result.kind = .streamEnd
        case YAML_DOCUMENT_START_EVENT: result.kind = .documentStart
        case YAML_DOCUMENT_END_EVENT: result.kind = .documentEnd
        case YAML_ALIAS_EVENT:
            result.kind = .alias
            result.anchor = string(event.data.alias.anchor)
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            result.kind = .scalar
            result.anchor = string(scalar.anchor)
            result.tag = string(scalar.tag)
            if let value = scalar.value {
                let bytes = UnsafeBufferPointer(start: value, count: Int(scalar.length))
                result.text = String(decoding: bytes, as: UTF8.self)
            }
            switch scalar.style {
            case YAML_SINGLE_QUOTED_SCALAR_STYLE: result.style = .singleQuoted
            case YAML_DOUBLE_QUOTED_SCALAR_STYLE: result.style = .doubleQuoted
            case YAML_LITERAL_SCALAR_STYLE: result.style = .literal
            case YAML_FOLDED_SCALAR_STYLE: result.style = .folded
            default: result.style = .plain
            }
        case YAML_SEQUENCE_START_EVENT:
            result.kind = .sequenceStart
            result.anchor = string(event.data.sequence_start.anchor)
            result.tag = string(event.data.sequence_start.tag)
        case YAML_SEQUENCE_END_EVENT: result.kind = .sequenceEnd
        case YAML_MAPPING_START_EVENT:
            result.kind = .mappingStart
            result.anchor = string(event.data.mapping_start.anchor)
            result.tag = string(event.data.mapping_start.tag)
        case YAML_MAPPING_END_EVENT: result.kind = .mappingEnd
        default: result.kind = .none
        }
        return result
    }

    func readStream() throws(YAMLError) -> YAMLNode? {
        guard try next().kind == .streamStart else {
            throw YAMLError(message: "expected the start of a YAML stream", line: 1, column: 1)
        }
        var root: YAMLNode?
        var documents = 0
        while true {
            let event = try next()
            switch event.kind {
            case .streamEnd:
                return root
            case .documentStart:
                documents += 1
                if documents > 1 {
                    throw YAMLError(message: "a second YAML document; the file must hold exactly one",
                                    line: event.line, column: event.column)
                }
                root = try readNode(try next(), depth: 1)
                let end = try next()
                guard end.kind == .documentEnd else {
                    throw YAMLError(message: "expected the end of the document", line: end.line, column: end.column)
                }
            default:
                throw YAMLError(message: "unexpected YAML event", line: event.line, column: event.column)
            }
        }
    }

    func readNode(_ event: Event, depth: Int) throws(YAMLError) -> YAMLNode {
        guard depth <= YAMLDocument.maxDepth else {
            throw YAMLError(message: "nesting deeper than \(YAMLDocument.maxDepth) levels", line: event.line,
                            column: event.column)
        }
        if event.kind == .alias {
            throw YAMLError(message: "YAML aliases (*\(event.anchor ?? "")) are not supported", line: event.line,
                            column: event.column)
        }
        if let anchor = event.anchor {
            throw YAMLError(message: "YAML anchors (&\(anchor)) are not supported", line: event.line,
                            column: event.column)
        }
        let stringTag = "tag:yaml.org,2002:str"
        switch event.kind {
        case .scalar:
            if let tag = event.tag, tag != stringTag, tag != "!" {
                throw YAMLError(message: "YAML tag \(tag) is not supported (only !!str)", line: event.line,
                                column: event.column)
            }
            return .scalar(YAMLScalar(text: event.text, style: event.style, isTaggedString: event.tag != nil,
                                      line: event.line, column: event.column))
        case .sequenceStart:
            try rejectCollectionTag(event)
            var items: [YAMLNode] = []
            while true {
                let item = try next()
                if item.kind == .sequenceEnd { return .sequence(items, line: event.line) }
                items.append(try readNode(item, depth: depth + 1))
            }
        case .mappingStart:
            try rejectCollectionTag(event)
            var entries: [YAMLMappingEntry] = []
            var seen: [String: Int] = [:]
            while true {
                let keyEvent = try next()
                if keyEvent.kind == .mappingEnd { return .mapping(entries, line: event.line) }
                let keyNode = try readNode(keyEvent, depth: depth + 1)
                guard case .scalar(let key) = keyNode else {
                    throw YAMLError(message: "a mapping key must be a scalar, not \(keyNode.kindDescription)",
                                    line: keyNode.line, column: keyEvent.column)
                }
                if let first = seen[key.text] {
                    throw YAMLError(message: "key \"\(key.text)\" given twice (first at line \(first))",
                                    line: key.line, column: key.column)
                }
                seen[key.text] = key.line
                let value = try readNode(try next(), depth: depth + 1)
                entries.append(YAMLMappingEntry(key: key, value: value))
            }
        default:
            throw YAMLError(message: "unexpected YAML event", line: event.line, column: event.column)
        }
    }

    func rejectCollectionTag(_ event: Event) throws(YAMLError) {
        if let tag = event.tag, tag != "tag:yaml.org,2002:seq", tag != "tag:yaml.org,2002:map" {
            throw YAMLError(message: "YAML tag \(tag) is not supported", line: event.line, column: event.column)
        }
    }
}

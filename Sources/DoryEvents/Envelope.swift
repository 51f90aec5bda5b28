import DoryState

/// One processor event out of an intake body, with its record's subscription id.
public struct EnvelopeRecord: Sendable, Equatable {
    /// The processor event (a JSON object), with any top-level `token` removed.
    public var event: JSONObject
    /// The SNS record's `EventSubscriptionArn`, verbatim; nil for pass-through.
    public var subscriptionId: String?

    public init(event: JSONObject, subscriptionId: String?) {
        self.event = event
        self.subscriptionId = subscriptionId
    }
}

/// How the body was wrapped; decides the response shape (§2.2).
public enum EnvelopeForm: Sendable, Equatable {
    case passThrough
    case sns
}

/// A classified intake body: its form and its records in record order.
public struct ClassifiedBody: Sendable, Equatable {
    public var form: EnvelopeForm
    public var records: [EnvelopeRecord]
}

/// An intake body refused with a 400 (§2.2 rows 7–9): the stable code, the message and, for envelope errors, the
/// index of the offending record.
public struct IntakeRejection: Error, Sendable, Equatable, CustomStringConvertible {
    /// `invalid_json`, `not_an_object` or `invalid_envelope`.
    public var code: String
    public var message: String
    public var record: Int?

    public init(code: String, message: String, record: Int? = nil) {
        self.code = code
        self.message = message
        self.record = record
    }

    public var description: String { record.map { "\(code): \(message) (record \($0))" } ?? "\(code): \(message)" }

    /// The runtime's error body `{"error", "message", "record"?}`.
    public var body: JSONValue {
        var o: JSONObject = ["error": .string(code), "message": .string(message)]
        if let record { o["record"] = .int(Int64(record)) }
        return .object(o)
    }
}

/// Envelope classification (§2.3), identical for HTTP and `doryd invoke`.
public enum Envelope {
    /// Parses and classifies a raw body (rows 7–9 of §2.2).
    public static func classify(bytes: [UInt8]) -> Result<ClassifiedBody, IntakeRejection> {
        let value: JSONValue
        do {
            value = try JSON.parse(bytes)
        } catch {
            return .failure(IntakeRejection(code: "invalid_json", message: "body is not valid JSON: \(error)"))
        }
        guard case .object(let object) = value else {
            return .failure(IntakeRejection(code: "not_an_object", message: "body must be a JSON object"))
        }
        return classify(object)
    }

    /// Classifies a parsed body object. All records are accepted or none.
    public static func classify(_ body: JSONObject) -> Result<ClassifiedBody, IntakeRejection> {
        guard let records = body["Records"] else {
            return .success(ClassifiedBody(form: .passThrough,
                                           records: [EnvelopeRecord(event: removingToken(body), subscriptionId: nil)]))
        }
        guard case .array(let items) = records else { return .failure(invalid("Records must be an array")) }
        guard !items.isEmpty else { return .failure(invalid("empty Records")) }
        var out: [EnvelopeRecord] = []
        out.reserveCapacity(items.count)
        for (index, item) in items.enumerated() {
            guard case .object(let record) = item, record["EventSource"] == .string("aws:sns") else {
                return .failure(invalid("unsupported event source", record: index))
            }
            guard case .object(let sns)? = record["Sns"], case .string(let text)? = sns["Message"],
                  case .object(let event)? = try? JSON.parse(text)
            else {
                return .failure(invalid("invalid SNS message", record: index))
            }
            let subscription: String?
            switch record["EventSubscriptionArn"] {
            case nil, .null?: subscription = nil
            case .string(let s)?: subscription = s
            default: return .failure(invalid("invalid SNS message", record: index))
            }
            out.append(EnvelopeRecord(event: removingToken(event), subscriptionId: subscription))
        }
        return .success(ClassifiedBody(form: .sns, records: out))
    }

    /// The processor event without its top-level `token` (never queued, stored or logged, §6.1).
    public static func removingToken(_ event: JSONObject) -> JSONObject {
        guard event["token"] != nil else { return event }
        var copy = event
        copy.removeValue(forKey: "token")
        return copy
    }

    private static func invalid(_ message: String, record: Int? = nil) -> IntakeRejection {
        IntakeRejection(code: "invalid_envelope", message: message, record: record)
    }
}

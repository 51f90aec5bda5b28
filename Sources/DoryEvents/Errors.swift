// The errors doryd raises into application code (§4.5). Their unqualified type names are what summaries report.

/// A write refused by anti-recursion (§8.3).
public struct InvokingChannelWriteRejected: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(agentId: IDValue, name: String) {
        message = "cannot write to the invoking channel \(agentId.decimal)/\(name)"
    }
    public var description: String { message }
}

/// A tag write after the commit (e.g. from `close()`).
public struct TagsSealed: Error, Sendable, Equatable, CustomStringConvertible {
    public init() {}
    public var description: String { "tags are sealed: the tag commit of this invocation has run" }
}

/// A context-bound API called outside an invocation (e.g. from a detached task, or after the invocation ended).
public struct NoActiveInvocation: Error, Sendable, Equatable, CustomStringConvertible {
    public init() {}
    public var description: String { "no active invocation: call this from a handler, setup, a filter or close" }
}

/// A bad channel name, tag or app key, or a wrong aggregate shape for `tag_values`.
public struct InvalidArgument: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// An error whose reported `type` is not its Swift type name (doryd's own `ConfigError`, `InvalidPayload`…).
public protocol ReportedEventError: Error {
    /// The summary's `error.type`.
    var reportedType: String { get }
    /// The summary's `error.message`.
    var reportedMessage: String { get }
}

/// A configuration value the application cannot use (reported as `ConfigError`), e.g. the built-in example's
/// `config.threshold` that is not a number.
public struct AppConfigError: ReportedEventError, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var reportedType: String { "ConfigError" }
    public var reportedMessage: String { message }
    public var description: String { message }
}

extension PayloadError: ReportedEventError {
    public var reportedType: String { "InvalidPayload" }
    public var reportedMessage: String { description }
}

/// The summary's `error` member: `{"type", "message"}` (§4.5).
public struct EventErrorInfo: Sendable, Equatable {
    public var type: String
    /// At most 4096 UTF-8 bytes, cut at a character boundary.
    public var message: String

    public static let maxMessageBytes = 4096

    public init(type: String, message: String) {
        self.type = type
        self.message = message.truncatedUTF8(maxBytes: EventErrorInfo.maxMessageBytes)
    }

    /// Describes an error thrown by application code: the unqualified type name, and the `errorDescription` of a
    /// `LocalizedError` (when non-nil) or else `String(describing:)`.
    public init(describing error: any Error) {
        if let reported = error as? any ReportedEventError {
            self.init(type: reported.reportedType, message: reported.reportedMessage)
            return
        }
        self.init(type: String(describing: Swift.type(of: error)), message: String(describing: error))
    }
}

import DoryState

/// A failed channel storage operation, with the cause a user needs.
public struct ChannelStorageError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What is known about a channel's stored files at open (§8.1, §8.2).
public struct RecoveredChannel: Sendable, Equatable {
    /// The id of the newest stored message; 0 when none.
    public var lastMessageId: Int64
    /// The `.aggregate.json` content, if the channel has one.
    public var aggregate: AggregateRecord?

    public init(lastMessageId: Int64 = 0, aggregate: AggregateRecord? = nil) {
        self.lastMessageId = lastMessageId
        self.aggregate = aggregate
    }
}

/// A channel's aggregate as stored: `{"data": <JSON>, "last_updated": <ms>|null}` (§8.2).
public struct AggregateRecord: Sendable, Equatable {
    public var data: JSONValue
    public var lastUpdated: Int64?

    public init(data: JSONValue = .object([:]), lastUpdated: Int64? = nil) {
        self.data = data
        self.lastUpdated = lastUpdated
    }

    public var json: JSONValue {
        .object(["data": data, "last_updated": lastUpdated.map { .int($0) } ?? .null])
    }

    /// Parses the stored/state form; nil when the shape is wrong.
    public init?(json: JSONValue) {
        guard case .object(let o) = json, let data = o["data"] else { return nil }
        switch o["last_updated"] {
        case nil, .null?: self.init(data: data, lastUpdated: nil)
        case .int(let ms)?: self.init(data: data, lastUpdated: ms)
        default: return nil
        }
    }
}

/// Where channel messages and aggregates live. Implementations: ``InMemoryChannelBackend`` (tests, benches) and
/// ``FileChannelBackend`` (`events/channels/<agent_id>/<name>.jsonl`, `.jsonl.1`, `.aggregate.json`).
/// Calls are serialised by ``ChannelStore``.
public protocol ChannelBackend: Sendable {
    /// Every channel that has stored messages or an aggregate.
    func recover() throws(ChannelStorageError) -> [ChannelAddress: RecoveredChannel]
    /// Appends one line (without its `\n`) durably. When the active file would exceed `rotateAbove` bytes it is first
    /// rotated to the `.1` file (replacing the previous one): at most two files per channel.
    func append(line: [UInt8], to channel: ChannelAddress, rotateAbove: Int) throws(ChannelStorageError)
    /// The stored lines, oldest first, across both retention files; whole lines only.
    func lines(of channel: ChannelAddress) throws(ChannelStorageError) -> [[UInt8]]
    /// Replaces the channel's aggregate durably.
    func writeAggregate(_ record: AggregateRecord, for channel: ChannelAddress) throws(ChannelStorageError)
}

/// Channels in memory, with the same two-segment size retention as the files. `failAppends` makes appends to the
/// named channel keys (`"<agent>/<name>"`) fail, for tests.
public final class InMemoryChannelBackend: ChannelBackend {
    private struct Channel {
        var old: [[UInt8]] = []
        var active: [[UInt8]] = []
        var activeBytes = 0
        var aggregate: AggregateRecord?

        mutating func append(_ line: [UInt8], size: Int, rotateAbove: Int) {
            if activeBytes > 0, activeBytes + size > rotateAbove {
                old = active
                active = []
                activeBytes = 0
            }
            active.append(line)
            activeBytes += size
        }
    }

    private let channels = Mutex<[ChannelAddress: Channel]>([:])
    /// Channel keys whose appends fail (tests).
    public let failAppends = Mutex<Set<String>>([])

    public init() {}

    public func recover() throws(ChannelStorageError) -> [ChannelAddress: RecoveredChannel] {
        channels.withLock { all in
            var out: [ChannelAddress: RecoveredChannel] = [:]
            for (address, channel) in all {
                let last = (channel.active.last ?? channel.old.last).flatMap(ChannelStore.messageId(ofLine:)) ?? 0
                out[address] = RecoveredChannel(lastMessageId: last, aggregate: channel.aggregate)
            }
            return out
        }
    }

    public func append(line: [UInt8], to channel: ChannelAddress, rotateAbove: Int) throws(ChannelStorageError) {
        if failAppends.withLock({ $0.contains(channel.key) }) {
            throw ChannelStorageError("append \(channel.key): Input/output error (injected)")
        }
        channels.withLock { all in
            // Mutate in place: copying the channel out of the dictionary would copy its arrays on every append.
            let size = line.count + 1
            all[channel, default: Channel()].append(line, size: size, rotateAbove: rotateAbove)
        }
    }

    public func lines(of channel: ChannelAddress) throws(ChannelStorageError) -> [[UInt8]] {
        channels.withLock { all in
            guard let c = all[channel] else { return [] }
            return c.old + c.active
        }
    }

    public func writeAggregate(_ record: AggregateRecord, for channel: ChannelAddress) throws(ChannelStorageError) {
        channels.withLock { all in all[channel, default: Channel()].aggregate = record }
    }

    /// Number of retention segments holding lines (tests).
    public func segmentCount(of channel: ChannelAddress) -> Int {
        channels.withLock { all in
            guard let c = all[channel] else { return 0 }
            return (c.old.isEmpty ? 0 : 1) + (c.active.isEmpty ? 0 : 1)
        }
    }
}

import Synchronization

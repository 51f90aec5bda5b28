import DoryState
import Synchronization

/// A refused or failed channel write (§4.5 `ChannelWriteError`).
public struct ChannelWriteError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The local channels (§8.1–§8.2): message ids, appends, reads, aggregates with JSON merge patch, and their part of
/// the workload state (`aggregates`, `channels`, §7.1). Durability is the backend's. The app agent's `tag_values`
/// aggregate is not kept here: it is the tag map (see ``EventState``).
public final class ChannelStore: Sendable {
    private struct State {
        var lastIds: [ChannelAddress: Int64] = [:]
        var aggregates: [ChannelAddress: AggregateRecord] = [:]
    }

    public let backend: any ChannelBackend
    /// `event_max_bytes`: the largest message encoding and aggregate `data` encoding.
    public let maxMessageBytes: Int
    /// `channel_max_bytes`: the rotation size of a message file.
    public let channelMaxBytes: Int
    private let state = Mutex(State())

    /// Opens the store over `backend`, reading the last ids and aggregates it holds.
    public init(backend: any ChannelBackend, maxMessageBytes: Int = 1_048_576,
                channelMaxBytes: Int = 4_194_304) throws(ChannelStorageError)
    {
        self.backend = backend
        self.maxMessageBytes = maxMessageBytes
        self.channelMaxBytes = channelMaxBytes
        let recovered = try backend.recover()
        state.withLock { s in
            for (address, r) in recovered {
                if r.lastMessageId > 0 { s.lastIds[address] = r.lastMessageId }
                if let a = r.aggregate { s.aggregates[address] = a }
            }
        }
    }

    /// Appends a message record (§8.1) and returns its id once it is durable.
    @discardableResult
    public func append(to channel: ChannelAddress, authorId: IDValue, timestamp: Int64, invocationId: String?,
                       data: JSONValue) throws(ChannelWriteError) -> IDValue
    {
        var dataBytes: [UInt8] = []
        do {
            dataBytes = try JSON.encode(data)
        } catch {
            throw ChannelWriteError("cannot encode message data: \(error)")
        }
        return try append(to: channel, authorId: authorId, timestamp: timestamp, invocationId: invocationId,
                          encodedData: dataBytes)
    }

    /// ``append(to:authorId:timestamp:invocationId:data:)`` with `data` already encoded as compact JSON.
    @discardableResult
    public func append(to channel: ChannelAddress, authorId: IDValue, timestamp: Int64, invocationId: String?,
                       encodedData dataBytes: [UInt8]) throws(ChannelWriteError) -> IDValue
    {
        return try state.withLock { s throws(ChannelWriteError) -> IDValue in
            let id = (s.lastIds[channel] ?? 0) + 1
            var line: [UInt8] = []
            line.reserveCapacity(dataBytes.count + 160)
            ChannelStore.appendRecordHead(id: id, channel: channel, authorId: authorId, timestamp: timestamp,
                                          invocationId: invocationId, to: &line)
            line.append(contentsOf: dataBytes)
            line.append(UInt8(ascii: "}"))
            guard line.count <= maxMessageBytes else {
                throw ChannelWriteError("message of \(line.count) bytes exceeds event_max_bytes \(maxMessageBytes)")
            }
            do throws(ChannelStorageError) {
                try backend.append(line: line, to: channel, rotateAbove: channelMaxBytes)
            } catch {
                throw ChannelWriteError("append to \(channel.key) failed: \(error.message)")
            }
            s.lastIds[channel] = id
            return IDValue(id)
        }
    }

    /// `{"id":"N","channel":{"agent_id":"A","name":"…"},"author_id":"X","timestamp":T,"invocation_id":…,"data":`
    private static func appendRecordHead(id: Int64, channel: ChannelAddress, authorId: IDValue, timestamp: Int64,
                                         invocationId: String?, to out: inout [UInt8])
    {
        out.append(contentsOf: #"{"id":""#.utf8)
        out.append(contentsOf: String(id).utf8)
        out.append(contentsOf: #"","channel":{"agent_id":""#.utf8)
        out.append(contentsOf: channel.agentId.decimal.utf8)
        out.append(contentsOf: #"","name":"#.utf8)
        JSON.appendQuoted(channel.name, to: &out)
        out.append(contentsOf: #"},"author_id":""#.utf8)
        out.append(contentsOf: authorId.decimal.utf8)
        out.append(contentsOf: #"","timestamp":"#.utf8)
        out.append(contentsOf: String(timestamp).utf8)
        out.append(contentsOf: #","invocation_id":"#.utf8)
        if let invocationId { JSON.appendQuoted(invocationId, to: &out) } else { out.append(contentsOf: "null".utf8) }
        out.append(contentsOf: #","data":"#.utf8)
    }

    /// The message id of a stored line (its `"id"` member), without parsing the whole line.
    static func messageId(ofLine line: [UInt8]) -> Int64? {
        let prefix = Array(#"{"id":""#.utf8)
        guard line.count > prefix.count, Array(line[0..<prefix.count]) == prefix else {
            guard case .object(let o)? = try? JSON.parse(line), case .string(let s)? = o["id"] else { return nil }
            return IDValue.parseDigits(s)
        }
        var v: Int64 = 0
        var i = prefix.count
        while i < line.count, line[i] >= 48, line[i] <= 57 {
            v = v &* 10 &+ Int64(line[i] - 48)
            i += 1
        }
        return v
    }

    /// The newest `limit` messages (oldest first) across both retention files. Unparsable lines are skipped.
    public func messages(of channel: ChannelAddress, limit: Int) throws(ChannelStorageError) -> [JSONValue] {
        let lines = try backend.lines(of: channel)
        return lines.suffix(max(limit, 0)).compactMap { try? JSON.parse($0) }
    }

    /// Every stored message (oldest first): used to look for a delivered summary (§2.4).
    public func allMessages(of channel: ChannelAddress) throws(ChannelStorageError) -> [JSONValue] {
        try backend.lines(of: channel).compactMap { try? JSON.parse($0) }
    }

    /// The aggregate; `{"data": {}, "last_updated": null}` for a channel never written.
    public func aggregate(of channel: ChannelAddress) -> AggregateRecord {
        state.withLock { $0.aggregates[channel] } ?? AggregateRecord()
    }

    /// Applies `patch` (RFC 7386 merge patch, or the whole document when `replace`) and writes it durably (§8.2).
    @discardableResult
    public func updateAggregate(_ channel: ChannelAddress, patch: JSONValue, replace: Bool,
                                now: Int64) throws(ChannelWriteError) -> AggregateRecord
    {
        try state.withLock { s throws(ChannelWriteError) -> AggregateRecord in
            let current = s.aggregates[channel] ?? AggregateRecord()
            let data = replace ? patch : ChannelStore.mergePatch(current.data, patch)
            let size: Int
            do { size = try JSON.encode(data).count } catch { throw ChannelWriteError("cannot encode aggregate: \(error)") }
            guard size <= maxMessageBytes else {
                throw ChannelWriteError("aggregate of \(size) bytes exceeds event_max_bytes \(maxMessageBytes)")
            }
            let record = AggregateRecord(data: data, lastUpdated: now)
            do throws(ChannelStorageError) {
                try backend.writeAggregate(record, for: channel)
            } catch {
                throw ChannelWriteError("aggregate write to \(channel.key) failed: \(error.message)")
            }
            s.aggregates[channel] = record
            return record
        }
    }

    /// RFC 7386 JSON merge patch.
    public static func mergePatch(_ target: JSONValue, _ patch: JSONValue) -> JSONValue {
        guard case .object(let p) = patch else { return patch }
        var result: JSONObject
        if case .object(let t) = target { result = t } else { result = [:] }
        for (key, value) in p {
            if case .null = value {
                result.removeValue(forKey: key)
            } else {
                result[key] = mergePatch(result[key] ?? .null, value)
            }
        }
        return .object(result)
    }

    // MARK: Workload state (§7.1)

    /// `aggregates`: every written aggregate, `"<agent>/<name>"` → `{data, last_updated}`.
    public func captureAggregates() -> JSONObject {
        state.withLock { s in
            var out: JSONObject = [:]
            for (address, record) in s.aggregates { out[address.key] = record.json }
            return out
        }
    }

    /// `channels`: `"<agent>/<name>"` → the last assigned id as a decimal string.
    public func captureChannels() -> JSONObject {
        state.withLock { s in
            var out: JSONObject = [:]
            for (address, id) in s.lastIds { out[address.key] = .string(String(id)) }
            return out
        }
    }

    /// Validates the `aggregates` and `channels` members; the first wrong one is named.
    static func validate(aggregates: JSONObject, channels: JSONObject) throws(EventStateError)
        -> ([ChannelAddress: AggregateRecord], [ChannelAddress: Int64])
    {
        var aggs: [ChannelAddress: AggregateRecord] = [:]
        for (key, value) in aggregates {
            guard let address = ChannelAddress(key: key), let record = AggregateRecord(json: value) else {
                throw EventStateError(member: "aggregates", reason: "entry \"\(key)\" is not an aggregate")
            }
            aggs[address] = record
        }
        var ids: [ChannelAddress: Int64] = [:]
        for (key, value) in channels {
            guard let address = ChannelAddress(key: key), case .string(let s) = value,
                  let id = IDValue.parseDigits(s)
            else {
                throw EventStateError(member: "channels", reason: "entry \"\(key)\" is not a decimal message id")
            }
            ids[address] = id
        }
        return (aggs, ids)
    }

    /// Restores validated members: an aggregate replaces the local one (and its file) only when there is none or
    /// it is newer (null oldest); each id becomes the larger of the restored and the local one.
    func restore(aggregates: [ChannelAddress: AggregateRecord], channels: [ChannelAddress: Int64]) throws(ChannelWriteError) {
        try state.withLock { s throws(ChannelWriteError) in
            for (address, record) in aggregates {
                if let local = s.aggregates[address] {
                    guard (record.lastUpdated ?? Int64.min) > (local.lastUpdated ?? Int64.min) else { continue }
                }
                do throws(ChannelStorageError) {
                    try backend.writeAggregate(record, for: address)
                } catch {
                    throw ChannelWriteError("aggregate write to \(address.key) failed: \(error.message)")
                }
                s.aggregates[address] = record
            }
            for (address, id) in channels where id > (s.lastIds[address] ?? 0) {
                s.lastIds[address] = id
            }
        }
    }
}

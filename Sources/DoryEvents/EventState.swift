import DoryState
import Synchronization

/// The tag map `{app_key: {tag_name: value}}` (§7.1).
public typealias TagMap = [String: JSONObject]

/// A workload state member of the wrong shape (§7.1 "Restore"): for `POST /state`, 400 `invalid_state` naming
/// `member` in `fields`.
public struct EventStateError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `tag_values`, `aggregates` or `channels`.
    public let member: String
    public let reason: String
    public var description: String { "\(member): \(reason)" }
}

/// Writes a tag commit as one new durable snapshot generation (reason `api`, §7.1). The lead's implementation hands
/// it to the runtime's serial snapshot writer: capture the workload state with `newTagMap` in place of the committed
/// map (``EventState/capture(tagValues:)``), write the generation durably, then call `swapIn()` **before taking any
/// later capture**, and return. Throwing means nothing was saved (the commit fails with `TagCommitError`).
public protocol TagCommitWriter: Sendable {
    func writeTagCommit(_ newTagMap: TagMap, swapIn: @Sendable () -> Void) async throws
}

/// Accepts every commit without writing anything (tests, benches, an in-process host without snapshots).
/// `failNext` makes the next N commits fail (tests of `TagCommitError`).
public final class InMemoryTagCommitWriter: TagCommitWriter {
    public struct InjectedFailure: Error, CustomStringConvertible {
        public var description: String { "snapshot write failed (injected)" }
    }

    public let failNext = Atomic<Int>(0)
    /// Commits written so far.
    public let commits = Atomic<Int>(0)

    public init() {}

    public func writeTagCommit(_ newTagMap: TagMap, swapIn: @Sendable () -> Void) async throws {
        if failNext.load(ordering: .relaxed) > 0 {
            failNext.subtract(1, ordering: .relaxed)
            throw InjectedFailure()
        }
        commits.add(1, ordering: .relaxed)
        swapIn()
    }
}

/// The event workload's state (§7.1): the committed tag map and the local channels. One instance per workload.
public final class EventState: Sendable {
    public let channels: ChannelStore
    private let tags: Mutex<TagMap>

    public init(channels: ChannelStore, tagValues: TagMap = [:]) {
        self.channels = channels
        self.tags = Mutex(tagValues)
    }

    /// The committed tag map (never an invocation's buffer).
    public var tagValues: TagMap { tags.withLock { $0 } }

    /// Replaces the committed map (after a durable commit, or a restore).
    func setTagValues(_ map: TagMap) { tags.withLock { $0 = map } }

    /// `{tag_values, aggregates, channels}`; `tagValues` replaces the committed map in the capture (a commit's
    /// generation, §7.1).
    public func capture(tagValues override: TagMap? = nil) -> JSONObject {
        let map = override ?? tagValues
        var tv: JSONObject = [:]
        for (app, entry) in map { tv[app] = .object(entry) }
        return ["tag_values": .object(tv), "aggregates": .object(channels.captureAggregates()),
                "channels": .object(channels.captureChannels())]
    }

    /// Validates the whole state first (a wrong member fails the restore and changes nothing), then restores it:
    /// `tag_values` replaces the committed map; aggregates and ids never move backwards (§7.1).
    public func restore(_ state: JSONObject) throws(EventStateError) {
        let (map, aggs, ids) = try EventState.validate(state)
        do throws(ChannelWriteError) {
            try channels.restore(aggregates: aggs, channels: ids)
        } catch {
            throw EventStateError(member: "aggregates", reason: error.message)
        }
        setTagValues(map)
    }

    /// Checks every member's shape without applying anything (`POST /state` validation, §7.1 "Restore"); returns
    /// the parsed members. A missing member counts as empty; unknown members are ignored.
    public static func validate(_ state: JSONObject) throws(EventStateError)
        -> (TagMap, [ChannelAddress: AggregateRecord], [ChannelAddress: Int64])
    {
        var map: TagMap = [:]
        switch state["tag_values"] {
        case nil: break
        case .object(let o)?:
            for (app, entry) in o {
                guard !app.isEmpty, case .object(let values) = entry else {
                    throw EventStateError(member: "tag_values", reason: "app entry \"\(app)\" is not an object")
                }
                if values.values.contains(.null) {
                    throw EventStateError(member: "tag_values", reason: "app entry \"\(app)\" holds a null value")
                }
                if !values.isEmpty { map[app] = values }
            }
        default:
            throw EventStateError(member: "tag_values", reason: "expected an object")
        }
        func member(_ name: String) throws(EventStateError) -> JSONObject {
            switch state[name] {
            case nil: return [:]
            case .object(let o)?: return o
            default: throw EventStateError(member: name, reason: "expected an object")
            }
        }
        let (aggs, ids) = try ChannelStore.validate(aggregates: try member("aggregates"), channels: try member("channels"))
        return (map, aggs, ids)
    }
}

import DoryState

/// One invocation's tag changes (§7.3): opened at S10 over the committed map, sealed at S14.
struct TagBuffer: Sendable {
    /// The committed map as seen by this invocation (a copy-on-write copy).
    var base: TagMap
    /// app → key → new value (nil = deleted). Keys set back to their committed value stay here; the commit computes
    /// the net change.
    var changes: [String: [String: JSONValue?]] = [:]
    /// app → keys written with `log: true`; an app present here has its log flag set.
    var logged: [String: Set<String>] = [:]
    var isOpen = false
    var isSealed = false

    init(base: TagMap) {
        self.base = base
    }

    /// The buffered value, else the committed value; nil when absent or deleted.
    func get(app: String, key: String) -> JSONValue? {
        if let entry = changes[app], let change = entry[key] { return change }
        return base[app]?[key]
    }

    /// The rules of `setTag` (§7.3 steps 1–5). Returns whether the buffer changed.
    mutating func set(app: String, key: String, value: JSONValue, log: Bool) {
        let current = get(app: app, key: key)
        if case .null = value {
            if current != nil { changes[app, default: [:]][key] = .some(nil) }
        } else if current != value {
            changes[app, default: [:]][key] = .some(value)
        }
        if log { logged[app, default: []].insert(key) }
    }

    /// The net change per app against `committed` (§7.4 step 1): key → new value or nil (deleted).
    func netChanges(against committed: TagMap) -> [String: [String: JSONValue?]] {
        var out: [String: [String: JSONValue?]] = [:]
        for (app, entry) in changes {
            for (key, new) in entry where committed[app]?[key] != new {
                out[app, default: [:]][key] = .some(new)
            }
        }
        return out
    }
}

/// What a commit writes (§7.4): the new map and the `tag_values` history message, or nothing.
struct TagCommitPlan {
    /// nil when there is no net change (no new generation).
    var newMap: TagMap?
    /// nil when neither a net change nor a log flag exists.
    var message: JSONObject?

    static func make(buffer: TagBuffer, committed: TagMap, ownApp: String) -> TagCommitPlan {
        let net = buffer.netChanges(against: committed)
        var plan = TagCommitPlan()
        var map = committed
        if !net.isEmpty {
            for (app, entry) in net {
                var values = map[app] ?? [:]
                for (key, new) in entry {
                    if let new { values[key] = new } else { values.removeValue(forKey: key) }
                }
                map[app] = values.isEmpty ? nil : values
            }
            plan.newMap = map
        }
        var message: JSONObject = [:]
        if net[ownApp] != nil || buffer.logged[ownApp] != nil {
            message[ownApp] = .object(map[ownApp] ?? [:])
        }
        let others = Set(net.keys).union(buffer.logged.keys).subtracting([ownApp])
        for app in others {
            var entry: JSONObject = [:]
            for (key, new) in net[app] ?? [:] { entry[key] = new ?? .null }
            for key in buffer.logged[app] ?? [] where entry[key] == nil {
                entry[key] = map[app]?[key] ?? .null
            }
            message[app] = .object(entry)
        }
        if !message.isEmpty { plan.message = message }
        return plan
    }
}

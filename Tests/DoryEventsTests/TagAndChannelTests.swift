#if canImport(Glibc)
import Glibc
#endif
import DoryKit
import DoryState
import Testing
@testable import DoryEvents

/// Runs `body` as the handler of an on_schedule event (or `event`) on a fresh fixture.
private func withHandler(tags: TagMap = ["my_app": ["temp": 20]], event: JSONValue = Examples.schedule,
                         _ body: @escaping Hook) async -> (Fixture, InvocationSummary)
{
    let f = Fixture(tags: tags)
    var app = Full()
    app.handlerHook = body
    let s = await f.run(app, event)
    return (f, s)
}

@Suite struct TagTests {
    @Test func newTagWritesOneGenerationAndOneMessage() async {  // C71
        let (f, s) = await withHandler { app in try app.setTag("voltage", 13.2) }
        #expect(s.status == .success)
        #expect(f.writer.commits.load(ordering: .relaxed) == 1)
        #expect(f.messages(1, "tag_values") == [["my_app": ["temp": 20, "voltage": 13.2]]])
        #expect(f.runtime.metrics.value("tag_commits_total", "written") == 1)
    }

    @Test func equalSetIsNoop() async {  // C72
        let (f, _) = await withHandler { app in try app.setTag("temp", 20) }
        #expect(f.writer.commits.load(ordering: .relaxed) == 0)
        #expect(f.messages(1, "tag_values").isEmpty)
        #expect(f.runtime.metrics.value("tag_commits_total", "noop") == 1)
    }

    @Test func equalSetWithLogWritesOnlyAMessage() async {  // C73
        let (f, _) = await withHandler { app in try app.setTag("temp", 20, log: true) }
        #expect(f.writer.commits.load(ordering: .relaxed) == 0)
        #expect(f.messages(1, "tag_values") == [["my_app": ["temp": 20]]])
        #expect(f.runtime.metrics.value("tag_commits_total", "message_only") == 1)
    }

    @Test func kindsDiffer() async {  // C74, G18
        let (f, _) = await withHandler(tags: ["my_app": ["temp": 1, "flag": true]]) { app in
            try app.setTag("temp", 1.0)
            try app.setTag("flag", 1)
        }
        #expect(f.tags["my_app"] == ["temp": .double(1.0), "flag": .int(1)])
        let text = String(decoding: try! JSON.encode(.object(f.state.capture())), as: UTF8.self)
        #expect(text.contains(#""temp":1.0"#))
    }

    @Test func getTagReturnsACopy() async {  // C75
        let (f, _) = await withHandler(tags: ["my_app": ["cfg": ["a": [1]]]]) { app in
            guard case .object(var o)? = try app.getTag("cfg") else { return }
            o["a"] = [1, 2]
            #expect(try app.getTag("cfg") == ["a": [1]])
            try app.setTag("cfg", .object(o))
        }
        #expect(f.tags["my_app"]?["cfg"] == ["a": [1, 2]])
    }

    @Test func setBackToCommittedIsNoChange() async {  // C76
        let (f, _) = await withHandler { app in
            try app.setTag("x", 5)
            try app.setTag("temp", 21)
            try app.setTag("x", nil)
            try app.setTag("temp", 20)
        }
        #expect(f.writer.commits.load(ordering: .relaxed) == 0)
        #expect(f.messages(1, "tag_values").isEmpty)
    }

    @Test func nullDeletes() async {  // C77, C78
        let (f, _) = await withHandler { app in
            try app.setTag("temp", nil)
            #expect(try app.getTag("temp", default: 7) == 7)
            try app.setTag("missing", nil)
        }
        #expect(f.messages(1, "tag_values") == [["my_app": [:]]])
        #expect(f.tags["my_app"] == nil)
        let (g, _) = await withHandler { app in try app.setTag("missing", nil) }
        #expect(g.writer.commits.load(ordering: .relaxed) == 0 && g.messages(1, "tag_values").isEmpty)
    }

    @Test func externalTagCommitsOnlyChangedKeys() async {  // C79, G16
        let (f, _) = await withHandler(tags: ["pump": ["running": false, "rpm": 10], "other": ["a": 1]]) { app in
            try app.setExternalTag(appKey: "pump", "running", true)
        }
        #expect(f.tags == ["pump": ["running": true, "rpm": 10], "other": ["a": 1]])
        #expect(f.messages(1, "tag_values") == [["pump": ["running": true]]])
    }

    private static let foreignTagEvent = Examples.message(channel: "tag_values", data: #"{"other": {"a": 2}}"#)

    @Test func ownScopedHistoryMessageAllowedFromTagValues() async {  // C80
        let (f, s) = await withHandler(event: TagTests.foreignTagEvent) { app in try app.setTag("x", 1) }
        #expect(s.status == .success)
        #expect(f.messages(1, "tag_values") == [["my_app": ["temp": 20, "x": 1]]])
    }

    @Test func foreignTagWriteFromTagValuesIsRefusedAtTheCall() async {  // C81, G17
        let (f, s) = await withHandler(event: TagTests.foreignTagEvent) { app in
            try app.setTag("y", 1)
            try app.setExternalTag(appKey: "other", "a", 3)
        }
        #expect(s.error?.type == "InvokingChannelWriteRejected")
        #expect(f.tags["my_app"]?["y"] == 1)
        #expect(f.tags["other"] == nil)
    }

    @Test func foreignTagWriteWithOverride() async {  // C82
        let (f, s) = await withHandler(event: TagTests.foreignTagEvent) { app in
            try app.setExternalTag(appKey: "other", "a", 3, allowInvokingChannel: true)
        }
        #expect(s.status == .success)
        #expect(f.tags["other"] == ["a": 3])
        #expect(f.logs.messages("write to invoking channel allowed by override").count == 1)
    }

    @Test func committedValuesSurviveCaptureAndRestore() async throws {  // C83 at this layer
        let (f, _) = await withHandler { app in try app.setTag("x", 1.5) }
        let captured = f.state.capture()
        let text = try JSON.encode(.object(captured))
        let g = Fixture(tags: [:])
        guard case .object(let back) = try JSON.parse(text) else { Issue.record("no object"); return }
        try g.state.restore(back)
        #expect(g.tags == ["my_app": ["temp": 20, "x": 1.5]])
    }

    @Test func tagAggregateUpdatesAreBufferedTagWrites() async {  // C84
        let (f, s) = await withHandler { app in
            try app.updateAggregate(channel: "tag_values", patch: ["my_app": ["y": 2]])
            #expect(throws: InvalidArgument.self) { try app.updateAggregate(channel: "tag_values", patch: ["my_app": 5]) }
            #expect(throws: InvalidArgument.self) {
                try app.updateAggregate(channel: "tag_values", patch: ["my_app": ["z": 1]], replace: true)
            }
        }
        #expect(s.status == .success)
        #expect(f.tags["my_app"] == ["temp": 20, "y": 2])
    }

    @Test func tagsBeforeS10() async {
        let f = Fixture()
        var app = Full()
        let seen = Recorder()
        app.preHook = { app, _ in
            seen.add("\(try app.getTag("temp") == 20)")
            do { try app.setTag("x", 1) } catch { seen.add("\(error)") }
            return true
        }
        _ = await f.run(app, Examples.schedule)
        #expect(seen.calls == ["true", "tags are not open yet"])
    }
}

@Suite struct ChannelTests {
    @Test func writeToInvokingChannelIsRefused() async {  // C86, C87, C88
        let (f, s) = await withHandler(event: Examples.messageFlat) { app in
            try app.createMessage(channel: "sensor", data: 1)
        }
        #expect(s.error?.type == "InvokingChannelWriteRejected")
        #expect(s.error?.message == "cannot write to the invoking channel 1/sensor")
        #expect(f.messages(1, "sensor").isEmpty)
        let (g, s2) = await withHandler(event: Examples.messageFlat) { app in
            try app.createMessage(channel: "sensor", data: 1, allowInvokingChannel: true)
            try app.createMessage(channel: "sensor", data: 2, agentId: IDValue(2))
        }
        #expect(s2.status == .success)
        #expect(g.messages(1, "sensor") == [1] && g.messages(2, "sensor") == [2])
        #expect(g.logs.messages("write to invoking channel allowed by override").count == 1)
    }

    @Test func aggregateAndAlarmEventsGuardTheirChannel() async {  // C89
        for event in [Examples.aggregate, Examples.alarm] {
            let (f, s) = await withHandler(event: event) { app in
                #expect(throws: InvokingChannelWriteRejected.self) {
                    try app.updateAggregate(channel: "sensor", patch: ["a": 1])
                }
                try app.updateAggregate(channel: "other", patch: ["a": 1])
            }
            #expect(s.status == .success)
            #expect(f.state.channels.aggregate(of: ChannelAddress(agentId: IDValue(1), name: "other")).data == ["a": 1])
        }
    }

    @Test func scopedWritesToTagValuesChannel() async {  // C90
        let (_, s) = await withHandler(event: Examples.message(channel: "tag_values", data: #"{"x": 1}"#)) { app in
            try app.createMessage(channel: "tag_values", data: ["my_app": ["a": 1]])
            try app.createMessage(channel: "tag_values", data: [:])
            #expect(throws: InvokingChannelWriteRejected.self) {
                try app.createMessage(channel: "tag_values", data: ["my_app": [:], "x": [:]])
            }
        }
        #expect(s.status == .success)
    }

    @Test func selfLoopGuard() async {  // C91, C92, C93, C94
        for agent in ["1", "9"] {
            let f = Fixture()
            let app = Full()
            let s = await f.run(app, Examples.message(agent: agent, channel: "tag_values", data: #"{"my_app": {"temp": 1}}"#))
            #expect(s.skipReason == .tagValuesSelfLoop)
            #expect(!app.recorder.calls.contains("setup"))
            #expect(f.messages(1, "dv-proc-inv-42").count == 1)
        }
        let agg = json(#"{"op": "on_aggregate_update", "d": {"channel": {"agent_id": 1, "name": "tag_values"}, "aggregate": {"data": {}}, "request_data": {"data": {"my_app": {"a": 1}}}}}"#)
        #expect(await Fixture().run(Full(), agg).skipReason == .tagValuesSelfLoop)
        let alarm = json(#"{"op": "on_alarm_trigger", "d": {"channel": {"agent_id": 1, "name": "tag_values"}, "alarm": {"id": 7, "name": "n", "description": "", "enabled": true, "state": "OK", "entered_state_ts": 1}, "old_state": "OK", "new_state": "Alarm", "aggregate": {"data": {}}, "request_data": {"data": {"my_app": 1}}}}"#)
        #expect(await Fixture().run(Full(), alarm).skipReason == .tagValuesSelfLoop)
        for data in [#""my_app""#, "null"] {
            let app = Full()
            let s = await Fixture().run(app, Examples.message(channel: "tag_values", data: data))
            #expect(s.status == .success)
            #expect(app.recorder.count("onMessageCreate") == 1)
        }
    }

    @Test func notification() async {  // C95
        var id = ""
        let f = Fixture()
        var app = Full()
        app.handlerHook = { app in try app.sendNotification("High temperature 41C", title: "Temperature") }
        id = (await f.run(app, Examples.schedule)).invocationId
        #expect(f.messages(1, "notifications") == [.object([
            "message": "High temperature 41C", "title": "Temperature", "app_key": "my_app", "invocation_id": .string(id),
        ])])
    }

    @Test func aggregateMergePatch() async {  // C96
        let (f, _) = await withHandler { app in
            try app.updateAggregate(channel: "state", patch: ["a": 1, "b": ["c": 2]])
            try app.updateAggregate(channel: "state", patch: ["b": ["c": nil, "d": 3]])
        }
        let address = ChannelAddress(agentId: IDValue(1), name: "state")
        #expect(f.state.channels.aggregate(of: address).data == ["a": 1, "b": ["d": 3]])
        #expect(throws: Never.self) {
            try f.state.channels.updateAggregate(address, patch: [1], replace: true, now: 5)
        }
        #expect(f.state.channels.aggregate(of: address).data == [1])
    }

    @Test func invalidChannelName() async {
        let (_, s) = await withHandler { app in try app.createMessage(channel: "..x", data: 1) }
        #expect(s.error?.type == "InvalidArgument")
    }

    @Test func messageStaysAfterAThrow() async {  // C99
        let (f, s) = await withHandler { app in
            try app.createMessage(channel: "log", data: "kept")
            throw E()
        }
        #expect(s.status == .error)
        #expect(f.messages(1, "log") == ["kept"])
    }

    @Test func messageRecordsAndIds() async throws {
        let (f, s) = await withHandler { app in
            let first = try app.createMessage(channel: "c", data: 1)
            let second = try app.createMessage(channel: "c", data: 2)
            #expect(first == IDValue(1) && second == IDValue(2))
        }
        let m = try f.state.channels.messages(of: ChannelAddress(agentId: IDValue(1), name: "c"), limit: 1)
        #expect(m == [.object(["id": "2", "channel": ["agent_id": "1", "name": "c"], "author_id": "1",
                               "timestamp": m[0]["timestamp"]!, "invocation_id": .string(s.invocationId),
                               "data": 2])])
        #expect(f.state.capture()["channels"]?["1/c"] == "2")
    }

    @Test func oversizedMessageIsRefused() throws {
        let store = try ChannelStore(backend: InMemoryChannelBackend(), maxMessageBytes: 1024)
        let big = JSONValue.string(String(repeating: "x", count: 2000))
        #expect(throws: ChannelWriteError.self) {
            try store.append(to: ChannelAddress(agentId: IDValue(1), name: "c"), authorId: IDValue(1), timestamp: 0,
                             invocationId: nil, data: big)
        }
        #expect(throws: ChannelWriteError.self) {
            try store.updateAggregate(ChannelAddress(agentId: IDValue(1), name: "c"), patch: ["a": big],
                                      replace: false, now: 1)
        }
    }

    @Test func restoreRulesForAggregatesAndIds() throws {  // C132 at this layer
        let backend = InMemoryChannelBackend()
        let store = try ChannelStore(backend: backend)
        let state = EventState(channels: store)
        let sensor = ChannelAddress(agentId: IDValue(1), name: "sensor")
        let agg = ChannelAddress(agentId: IDValue(1), name: "state")
        try store.append(to: sensor, authorId: IDValue(1), timestamp: 0, invocationId: nil, data: 1)
        try store.updateAggregate(agg, patch: ["v": 1], replace: false, now: 100)
        try state.restore(["channels": ["1/sensor": "500"],
                           "aggregates": ["1/state": ["data": ["v": 0], "last_updated": 50],
                                          "1/new": ["data": ["n": 1], "last_updated": nil]]])
        #expect(try store.append(to: sensor, authorId: IDValue(1), timestamp: 0, invocationId: nil, data: 2) == IDValue(501))
        #expect(store.aggregate(of: agg).data == ["v": 1])
        #expect(store.aggregate(of: ChannelAddress(agentId: IDValue(1), name: "new")).data == ["n": 1])
        try state.restore(["aggregates": ["1/state": ["data": ["v": 2], "last_updated": 200]]])
        #expect(store.aggregate(of: agg).data == ["v": 2])
        #expect(throws: EventStateError.self) { try state.restore(["tag_values": ["x": 1]]) }
        do throws(EventStateError) {
            try state.restore(["tag_values": ["x": 1]])
        } catch {
            #expect(error.member == "tag_values")
        }
        #expect(state.capture().keys.sorted() == ["aggregates", "channels", "tag_values"])
    }

    @Test func fileBackendLayoutRotationAndRecovery() throws {  // C98, C130, C131 at this layer
        let dir = try TemporaryDirectory()
        let root = dir.path + "/events/channels"
        let backend = FileChannelBackend(root: root)
        let store = try ChannelStore(backend: backend, maxMessageBytes: 4096, channelMaxBytes: 8192)
        let c = ChannelAddress(agentId: IDValue(1), name: "log")
        for i in 0..<300 {
            try store.append(to: c, authorId: IDValue(1), timestamp: Int64(i), invocationId: nil, data: .int(Int64(i)))
        }
        let files = try SystemFileSystem().readDirectory(root + "/1").sorted()
        #expect(files == ["log.jsonl", "log.jsonl.1"])
        let last = try store.messages(of: c, limit: 3).map { $0["data"]! }
        #expect(last == [297, 298, 299])
        let a = ChannelAddress(agentId: IDValue(1), name: "state")
        try store.updateAggregate(a, patch: ["a": 1], replace: false, now: 7)
        #expect(try SystemFileSystem().status(root + "/1/state.aggregate.json") != nil)
        #expect(try SystemFileSystem().status(root + "/1/tag_values.aggregate.json") == nil)
        // A torn tail: a partial line is cut at recovery; ids continue from the last whole line.
        let fd = open(root + "/1/log.jsonl", O_WRONLY | O_APPEND)
        _ = "{\"id\":\"99999\",\"cha".withCString { write(fd, $0, strlen($0)) }
        close(fd)
        let reopened = try ChannelStore(backend: FileChannelBackend(root: root))
        #expect(reopened.aggregate(of: a) == AggregateRecord(data: ["a": 1], lastUpdated: 7))
        #expect(try reopened.append(to: c, authorId: IDValue(1), timestamp: 0, invocationId: nil, data: 1) == IDValue(301))
        #expect(reopened.captureAggregates()["1/state"] == ["data": ["a": 1], "last_updated": 7])
    }
}

@Suite struct ExampleAppTests {
    private func run(_ event: JSONValue, tags: TagMap = [:], config: JSONObject = ["threshold": 40]) async
        -> (Fixture, InvocationSummary)
    {
        let f = Fixture(tags: tags, config: config)
        return (f, await f.run(TemperatureAlertApp(), event))
    }

    @Test func alertAboveThreshold() async {  // C136
        let (f, s) = await run(Examples.message(channel: "sensor", data: #"{"temp": 41.5}"#))
        #expect(s.status == .success)
        #expect(f.tags["my_app"]?["alert"] == true)
        let n = f.messages(1, "notifications")
        #expect(n.count == 1)
        #expect(n.first?["message"] == "temperature 41.5 is above 40")
        #expect(n.first?["title"] == "Temperature alert")
        for data in [#"{"temp": 40}"#, #"{"humidity": 3}"#, "null"] {
            let (g, _) = await run(Examples.message(channel: "sensor", data: data))
            #expect(g.tags["my_app"]?["alert"] == false)
            #expect(g.messages(1, "notifications").isEmpty)
        }
        let (h, _) = await run(Examples.message(channel: "sensor", data: #"{"temp": 41}"#), config: [:])
        #expect(h.tags["my_app"]?["alert"] == true)
        let (_, bad) = await run(Examples.message(channel: "sensor", data: #"{"temp": 41}"#), config: ["threshold": "x"])
        #expect(bad.error?.type == "ConfigError")
        #expect(bad.error?.message.contains("config.threshold") == true)
    }

    @Test func otherOps() async {  // C137
        let (f, s) = await run(Examples.schedule)
        #expect(f.tags["my_app"]?["last_poll"] == .int(s.startedAt))
        let (g, m) = await run(Examples.manual, tags: ["my_app": ["x": 1]])
        #expect(m.status == .success && g.tags == ["my_app": ["x": 1]])
        let (h, _) = await run(Examples.deployment)
        #expect(h.tags["my_app"]?["alert"] == false)
        let (k, _) = await run(Examples.deployment, tags: ["my_app": ["alert": true]])
        #expect(k.tags["my_app"]?["alert"] == true)
        for event in [Examples.aggregate, Examples.alarm, Examples.ingestion] {
            #expect(await run(event).1.skipReason == .noHandler)
        }
    }
}

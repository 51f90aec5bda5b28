import DoryKit
import DoryState
import Testing
@testable import DoryEvents

@Suite struct PipelineRoutingTests {
    @Test func everyExampleRunsItsHandlerOnceAndDeliversTheSummary() async {  // C28
        for (handler, event) in Examples.all {
            let f = Fixture()
            let app = Full()
            let s = await f.run(app, event)
            #expect(s.status == .success, "\(handler): \(String(describing: s.error))")
            #expect(app.recorder.count(handler) == 1)
            #expect(f.messages(1, "dv-proc-inv-42").count == 1)
        }
    }

    @Test func snsWrappedMessageCreateRunsHandlerCommitsTagAndDeliversSuccess() async throws {
        let inner = #"{\"op\": \"on_message_create\", \"token\": \"t\", \"d\": {\"channel\": {\"agent_id\": \"1\", \"name\": \"sensor\"}, \"data\": {\"temp\": 50}}}"#
        let body = json(#"{"Records": [{"EventSource": "aws:sns", "EventSubscriptionArn": "arn:x", "Sns": {"Message": "\#(inner)"}}]}"#)
        guard case .object(let o) = body, case .success(let classified) = Envelope.classify(o) else {
            Issue.record("classification failed")
            return
        }
        #expect(classified.records.count == 1)
        let record = classified.records[0]
        #expect(record.event["token"] == nil)
        let f = Fixture()
        var app = Full()
        app.handlerHook = { app in try app.setTag("seen", true) }
        let s = await f.run(app, .object(record.event),
                            request: InvocationRequest(subscriptionId: record.subscriptionId))
        #expect(s.status == .success)
        #expect(s.subscriptionId == "arn:x")
        #expect(app.recorder.count("onMessageCreate") == 1)
        #expect(f.tags["my_app"]?["seen"] == .bool(true))
        let delivered = f.messages(1, "dv-proc-inv-42")
        #expect(delivered.count == 1)
        #expect(delivered.first?["status"] == "success")
        #expect(delivered.first?["invocation_id"] == .string(s.invocationId))
    }

    @Test func flatAndNestedMessageCreateGiveIdenticalEvents() async {  // C29
        let f = Fixture()
        let app = Full()
        _ = await f.run(app, Examples.messageFlat)
        _ = await f.run(app, Examples.messageNested)
        let events = app.recorder.events.withLock { $0 }
        #expect(events.count == 2)
        #expect(events[0] == events[1])
        guard case .messageCreate(let m) = events[0] else { Issue.record("wrong event"); return }
        #expect(m.message.id == IDValue(7345))
        #expect(m.message.authorId == IDValue(9))
        #expect(m.channel == ChannelRef(agentId: IDValue(1), name: "sensor"))
        #expect(m.message.data == ["temp": 21.5])
        #expect(m.message.attachments.isEmpty)
    }

    @Test func unknownOpIsSkipped() async {  // C30
        let f = Fixture()
        let app = Full()
        let s = await f.run(app, json(#"{"op": "on_message_update", "d": {}}"#))
        #expect(s.status == .skipped && s.skipReason == .unknownOp)
        #expect(s.eventType == "on_message_update")
        #expect(app.recorder.calls.isEmpty)
        #expect(f.messages(1, "dv-proc-inv-42").count == 1)
        #expect(f.runtime.metrics.value("invocations_total", "unknown|skipped") == 1)  // C123
        #expect(f.runtime.metrics.value("skips_total", "unknown_op") == 1)
    }

    @Test func missingOrNonStringOpIsInvalidEvent() async {  // C31
        for event in [json(#"{"d": {}}"#), json(#"{"op": 5, "d": {}}"#), json(#"{"detail": {"op": "on_schedule"}}"#)] {
            let f = Fixture()
            let s = await f.run(Full(), event)
            #expect(s.status == .error && s.error?.type == "InvalidEvent")
            #expect(s.eventType == nil)
            #expect(s.appKey == "my_app" && s.appId == "42" && s.agentId == "1")
            #expect(f.messages(1, "dv-proc-inv-42").count == 1)
        }
    }

    @Test func knownOpWithoutObjectD() async {  // C32
        for event in [json(#"{"op": "on_schedule"}"#), json(#"{"op": "on_schedule", "d": []}"#)] {
            let s = await Fixture().run(Full(), event)
            #expect(s.error?.type == "InvalidEvent")
        }
    }

    @Test func noHandlerSkipsBeforeSetupAndParsing() async {  // C33, C35
        var app = Full()
        app.handlers = [.onSchedule]
        let f = Fixture()
        let s = await f.run(app, Examples.messageFlat)
        #expect(s.skipReason == .noHandler)
        #expect(app.recorder.calls.isEmpty)
        #expect(f.messages(1, "dv-proc-inv-42").count == 1)
        let s2 = await f.run(app, json(#"{"op": "on_message_create", "d": {"data": 1}}"#))
        #expect(s2.skipReason == .noHandler)
    }

    @Test func deploymentRunsWithoutDeclaredHandler() async {  // C34
        var app = Full()
        app.handlers = []
        let s = await Fixture().run(app, Examples.deployment)
        #expect(s.status == .success)
        #expect(app.recorder.count("setup") == 1 && app.recorder.count("close") == 1)
    }

    @Test func ingestionPayloadProblems() async {  // C43, C44, C45
        let f = Fixture()
        let app = Full()
        #expect(await f.run(app, Examples.ingestion).status == .success)
        guard case .ingestionEndpoint(let e)? = app.recorder.events.withLock({ $0.last }) else {
            Issue.record("no ingestion event")
            return
        }
        #expect(e.payload == ["temp": 21])
        #expect(e.invocationUrl == nil && e.contentType == nil)
        let noUpgrade = json(#"{"op": "on_ingestion_endpoint", "d": {"ingestion_id": 12, "payload": "eyJ0ZW1wIjogMjF9", "content_type": "application/json", "invocation_url": "http://x"}}"#)
        #expect(await f.run(app, noUpgrade).status == .success)
        if case .ingestionEndpoint(let e2)? = app.recorder.events.withLock({ $0.last }) {
            #expect(e2.contentType == "application/json" && e2.invocationUrl == "http://x")
        }
        let bad = json(#"{"op": "on_ingestion_endpoint", "d": {"ingestion_id": 12, "payload": "%%%"}}"#)
        let app2 = Full()
        let s = await f.run(app2, bad)
        #expect(s.error?.type == "InvalidPayload")
        #expect(s.error?.message == "d.payload: not valid base64")
        #expect(app2.recorder.calls.isEmpty)
        var plain = Full()
        plain.ingestionParser = { try JSON.parse($0) }
        let s3 = await f.run(plain, json(#"{"op": "on_ingestion_endpoint", "d": {"ingestion_id": 1, "payload": "{\"temp\": 22}"}}"#))
        #expect(s3.status == .success)
        if case .ingestionEndpoint(let e3)? = plain.recorder.events.withLock({ $0.last }) {
            #expect(e3.payload == ["temp": 22])
        }
    }

    @Test func invalidPayloadNamesThePath() async {  // C36, C41
        let f = Fixture()
        let s = await f.run(Full(), json(#"{"op": "on_message_create", "d": {"id": "abc", "channel": {"agent_id": 1, "name": "s"}, "data": 1}}"#))
        #expect(s.error?.type == "InvalidPayload")
        #expect(s.error?.message.hasPrefix("d.id:") == true)
        let nested = await f.run(Full(), json(#"{"op": "on_message_create", "d": {"message": {"id": "abc", "channel": {"agent_id": 1, "name": "s"}, "data": 1}}}"#))
        #expect(nested.error?.message.hasPrefix("d.message.id:") == true)
        let missing = await f.run(Full(), json(#"{"op": "on_message_create", "d": {"channel": {"agent_id": 1}, "data": 1}}"#))
        #expect(missing.error?.message == "d.channel.name: required string missing")
        var alarm = Examples.alarm
        if case .object(var o) = alarm, case .object(var d)? = o["d"] {
            d["new_state"] = "Broken"
            o["d"] = .object(d)
            alarm = .object(o)
        }
        #expect(await f.run(Full(), alarm).error?.type == "InvalidPayload")
    }
}

@Suite struct PipelineOutcomeTests {
    @Test func preHookFilterRejects() async {  // C47
        var app = Full()
        app.preHook = { _, _ in false }
        let f = Fixture()
        let s = await f.run(app, Examples.schedule)
        #expect(s.skipReason == .preHookFilter && s.error == nil)
        #expect(app.recorder.calls == ["preHookFilter"])
        #expect(f.messages(1, "dv-proc-inv-42").count == 1)
        #expect(f.logs.messages("pre-hook filter rejected event").count == 1)
        #expect(f.logs.messages("event skipped").count == 1)
    }

    @Test func preHookFilterThrows() async {  // C48
        var app = Full()
        app.preHook = { _, _ in throw FilterError() }
        let s = await Fixture().run(app, Examples.schedule)
        #expect(s.status == .error && s.error?.type == "FilterError")
    }

    @Test func setupThrowsAfterSettingATag() async {  // C49
        var app = Full()
        app.setupHook = { app in
            try app.setTag("x", 1)
            throw SetupError()
        }
        let f = Fixture()
        let s = await f.run(app, Examples.schedule)
        #expect(s.error == EventErrorInfo(type: "SetupError", message: "boom"))
        #expect(app.recorder.count("onSchedule") == 0)
        #expect(app.recorder.count("close") == 1)
        #expect(f.tags["my_app"]?["x"] == 1)
    }

    @Test func postSetupRejectionDiscardsTags() async {  // C50
        for log in [false, true] {
            var app = Full()
            app.setupHook = { app in try app.setTag("x", 1, log: log) }
            app.postHook = { _, _ in false }
            let f = Fixture()
            let s = await f.run(app, Examples.schedule)
            #expect(s.status == .skipped && s.skipReason == .postSetupFilter)
            #expect(app.recorder.count("onSchedule") == 0 && app.recorder.count("close") == 1)
            #expect(f.tags == ["my_app": ["temp": 20]])
            #expect(f.messages(1, "tag_values").isEmpty)
            #expect(f.writer.commits.load(ordering: .relaxed) == 0)
            #expect(f.runtime.metrics.value("tag_commits_total", "discarded") == 1)
        }
    }

    @Test func throwingHandlerCommitsItsTags() async {  // C51
        var app = Full()
        app.handlerHook = { app in
            try app.setTag("x", 1)
            throw E()
        }
        let f = Fixture()
        let s = await f.run(app, Examples.schedule)
        #expect(s.status == .error && s.error?.type == "E")
        #expect(f.tags["my_app"] == ["temp": 20, "x": 1])
        #expect(f.messages(1, "tag_values") == [["my_app": ["temp": 20, "x": 1]]])
        #expect(app.recorder.count("close") == 1)
        #expect(f.logs.messages("handler failed").count == 1)
    }

    @Test func effectsInOrder() async {  // C52
        var app = Full()
        app.handlerHook = { app in try app.setTag("x", 1) }
        let f = Fixture()
        let probe = Recorder()
        let state = f.state
        app.closeHook = { _ in
            probe.add("close:tags=\(state.tagValues["my_app"]?["x"] == 1)")
            probe.add("close:history=\((try? state.channels.allMessages(of: ChannelAddress(agentId: IDValue(1), name: "tag_values")).count) ?? -1)")
            probe.add("close:summaries=\((try? state.channels.allMessages(of: ChannelAddress(agentId: IDValue(1), name: "dv-proc-inv-42")).count) ?? -1)")
        }
        let s = await f.run(app, Examples.schedule)
        #expect(s.status == .success)
        #expect(probe.calls == ["close:tags=true", "close:history=1", "close:summaries=0"])
        #expect(f.messages(1, "dv-proc-inv-42").count == 1)
    }

    @Test func closeFailuresDoNotChangeTheOutcome() async {  // C53, C54
        var app = Full()
        let seen = Recorder()
        app.closeHook = { app in
            do { try app.setTag("late", 1) } catch { seen.add(String(describing: type(of: error))) }
            throw E()
        }
        let f = Fixture()
        let s = await f.run(app, Examples.schedule)
        #expect(s.status == .success)
        #expect(seen.calls == ["TagsSealed"])
        #expect(f.tags["my_app"]?["late"] == nil)
        #expect(f.logs.messages("app close failed").count == 1)
    }

    @Test func timeoutCancelsTheHandlerAndStillCommitsAndCloses() async {  // C55
        var app = Full()
        app.handlerHook = { app in
            try app.setTag("x", 1)
            try await Task.sleep(for: .seconds(30))
        }
        // 1 s, not less: the limit covers setup too, and on a loaded machine a shorter one expired before the
        // handler had set x.
        let f = Fixture(timeoutSeconds: 1)
        let s = await f.run(app, Examples.schedule)
        #expect(s.error == EventErrorInfo(type: "Timeout", message: "exceeded 1 s"))
        #expect(app.recorder.count("close") == 1)
        #expect(f.tags["my_app"]?["x"] == 1)
        #expect(s.durationMs < 20_000)
    }

    @Test func cancellationErrorFromAppCodeIsAnOrdinaryError() async {
        var app = Full()
        app.handlerHook = { _ in throw CancellationError() }
        let s = await Fixture().run(app, Examples.schedule)
        #expect(s.error?.type == "CancellationError")
    }

    @Test func cancelledCallerAbandonsTheInvocation() async {  // §2.4 shutdown
        var app = Full()
        app.handlerHook = { app in
            try app.setTag("x", 1)
            try await Task.sleep(for: .seconds(30))
        }
        let f = Fixture()
        let task = Task { await runApp(app, event: Examples.schedule, context: InvocationRequest(), runtime: f.runtime) }
        let deadline = ContinuousClock.now + .seconds(10)
        while app.recorder.count("onSchedule") == 0, ContinuousClock.now < deadline { await Task.yield() }
        task.cancel()
        let summary = await task.value
        #expect(summary == nil)
        #expect(app.recorder.count("close") == 1)
        #expect(f.tags["my_app"]?["x"] == nil)
        #expect(f.messages(1, "dv-proc-inv-42").isEmpty)
    }

    @Test func anotherInvocationMayWriteToAFormerInvokingChannel() async {  // C56
        let f = Fixture()
        var app = Full()
        app.handlerHook = { app in
            if try app.invocation.op == "on_schedule" { try app.createMessage(channel: "sensor", data: 1) }
        }
        #expect(await f.run(app, Examples.messageFlat).status == .success)
        #expect(await f.run(app, Examples.schedule).status == .success)
        #expect(f.messages(1, "sensor") == [1])
    }

    @Test func failedSnapshotWriteIsTagCommitError() async {  // C57
        let f = Fixture()
        var app = Full()
        app.handlerHook = { app in
            if try app.invocation.op == "on_schedule" { try app.setTag("x", 1) }
        }
        f.writer.failNext.store(1, ordering: .relaxed)
        let s = await f.run(app, Examples.schedule)
        #expect(s.error?.type == "TagCommitError")
        #expect(f.messages(1, "tag_values").isEmpty)
        var reader = Full()
        let got = Recorder()
        reader.handlerHook = { app in got.add("\(String(describing: try app.getTag("x", default: "none")))") }
        _ = await f.run(reader, Examples.manual)
        #expect(got.calls == [#"Optional(DoryState.JSONValue.string("none"))"#])
    }

    @Test func childTasksSeeTheContextDetachedLateCallsDoNot() async throws {  // C58
        let f = Fixture()
        var app = Full()
        let got = Recorder()
        let late = Recorder()
        app.handlerHook = { app in
            let v = try await withThrowingTaskGroup(of: JSONValue?.self) { group in
                group.addTask { try app.getTag("temp") }
                return try await group.next()!
            }
            got.add("\(v == 20)")
            Task.detached {
                do { try app.setTag("y", 1) } catch { late.add(String(describing: type(of: error))) }
            }
            Task {
                try? await Task.sleep(for: .milliseconds(50))
                do { try app.setTag("y", 1) } catch { late.add(String(describing: type(of: error))) }
            }
        }
        _ = await f.run(app, Examples.schedule)
        #expect(got.calls == ["true"])
        let deadline = ContinuousClock.now + .seconds(10)
        while late.calls.count < 2, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(late.calls == ["NoActiveInvocation", "NoActiveInvocation"])
    }
}


@Suite struct SummaryTests {
    @Test func summaryHasSixteenKeysAndTypes() async {  // C59, C66
        let s = await Fixture().run(Full(), Examples.schedule)
        guard case .object(let o) = json(String(decoding: s.encoded(), as: UTF8.self)) else {
            Issue.record("not an object")
            return
        }
        #expect(o.count == 16)
        #expect(o["agent_id"] == "1" && o["app_id"] == "42")
        if case .int = o["started_at"] {} else { Issue.record("started_at not an integer") }
        if case .int(let d)? = o["duration_ms"] { #expect(d >= 0) } else { Issue.record("duration_ms") }
        #expect(o["skip_reason"] == .null && o["error"] == .null)
        #expect(o["schedule_id"] == "123" && o["ingestion_id"] == .null)
        #expect(o["requestId"] == .string(s.invocationId))
        #expect(o["function_name"] == "my-app" && o["function_version"] == "1.0.0")
        #expect(InvocationSummary(json: .object(o)) == s)
        let keys = String(decoding: s.encoded(), as: UTF8.self)
        #expect(keys.hasPrefix(#"{"app_key":"my_app","app_id":"42","agent_id":"1","event_type":"on_schedule""#))
    }

    @Test func requestIdDefaultsToTheInvocationId() async {  // C19 (summary part)
        let f = Fixture()
        let s = await f.run(Full(), Examples.schedule, request: InvocationRequest(requestId: "abc-123"))
        #expect(s.requestId == "abc-123")
        let lines = f.logs.records.filter { $0["invocation_id"] == .string(s.invocationId) }
        #expect(!lines.isEmpty && lines.allSatisfy { $0["requestId"] == "abc-123" })
    }

    @Test func targetsWithAgentsAndSubstitution() async {  // C60, C61
        let pc = ProcessorConfig(invTargets: [InvocationTarget(channel: "inv-$app_id-x", agentId: IDValue(77)),
                                              InvocationTarget(channel: "plain")])
        let f = Fixture(processorConfig: pc)
        _ = await f.run(Full(), Examples.schedule)
        #expect(f.messages(77, "inv-42-x").count == 1)
        #expect(f.messages(1, "plain").count == 1)
        let none = Fixture(processorConfig: ProcessorConfig(invTargets: []))
        let s = await none.run(Full(), Examples.schedule)
        #expect(s.status == .success)
        #expect(none.messages(1, "dv-proc-inv-42").isEmpty)
        #expect(none.logs.messages("invocation finished").count == 1)
    }

    @Test func upgradeAppIdIntegerBecomesString() async {  // C62
        let f = Fixture()
        let s = await f.run(Full(), json(#"{"op": "on_schedule", "d": {"schedule_id": 1, "upgrade": {"deployment_config": {"APP_ID": 43}}}}"#))
        #expect(s.appId == "43")
        #expect(f.messages(1, "dv-proc-inv-43").count == 1)
    }

    @Test func failedTargetDoesNotStopTheNext() async {  // C63
        let pc = ProcessorConfig(invTargets: [InvocationTarget(channel: "first"), InvocationTarget(channel: "second")])
        let f = Fixture(processorConfig: pc)
        _ = f.backend.failAppends.withLock { $0.insert("1/first") }
        let s = await f.run(Full(), Examples.schedule)
        #expect(s.status == .success)
        #expect(f.messages(1, "second").count == 1)
        #expect(f.runtime.metrics.value("summary_delivery_failures_total", "first") == 1)
        #expect(f.logs.messages("summary delivery failed").count == 1)
    }

    @Test func summaryToTheInvokingChannelIsRefused() async {  // C64
        let f = Fixture()
        let s = await f.run(Full(), Examples.message(channel: "dv-proc-inv-42", data: "1"))
        #expect(s.status == .success)
        #expect(f.messages(1, "dv-proc-inv-42").isEmpty)
        #expect(f.runtime.metrics.value("summary_delivery_failures_total", "dv-proc-inv-42") == 1)
    }

    @Test func badUpgradeLogLevelIsConfigErrorDeliveredToYamlTargets() async {  // C65, G28
        let f = Fixture()
        let s = await f.run(Full(), json(#"{"op": "on_schedule", "d": {"schedule_id": 1, "upgrade": {"deployment_config": {"APP_ID": "99", "dv_proc_config": {"log_level": "verbose"}}}}}"#))
        #expect(s.error?.type == "ConfigError")
        #expect(s.error?.message.contains("trace, debug, info, notice, warning, warn, error, critical") == true)
        #expect(s.appId == "42")
        #expect(f.messages(1, "dv-proc-inv-42").count == 1)
    }

    @Test func longErrorMessagesAreCut() async {  // C67
        struct Long: Error, CustomStringConvertible { var description: String { String(repeating: "é", count: 5000) } }
        var app = Full()
        app.handlerHook = { _ in throw Long() }
        let s = await Fixture().run(app, Examples.schedule)
        #expect(s.error!.message.utf8.count <= 4096)
        #expect(s.error!.message.utf8.count == 4096)
    }
}

@Suite struct UpgradeTests {
    @Test func upgradeExampleGivesTheIdentityAndIgnoresTagValues() async {  // C68
        let f = Fixture()
        let app = Full()
        let info = Recorder()
        var a = app
        a.handlerHook = { app in
            let i = try app.invocation
            info.add("\(i.appKey)/\(i.appId)/\(i.agentId)/\(i.organisationId ?? "nil")")
        }
        let event: JSONValue = .object(["op": "on_schedule", "d": .object(["schedule_id": 1, "upgrade": Examples.upgrade])])
        let s = await f.run(a, event)
        #expect(s.status == .success)
        #expect(info.calls == ["my_app/42/1/2"])
        #expect(f.tags == ["my_app": ["temp": 20]])
    }

    @Test func badUpgradeValues() async {  // C69
        let f = Fixture()
        let s = await f.run(Full(), json(#"{"op": "on_schedule", "d": {"schedule_id": 1, "upgrade": {"agent_id": "x"}}}"#))
        #expect(s.error?.type == "ConfigError")
        #expect(s.error?.message.hasPrefix("d.upgrade.agent_id") == true)
        let ok = await f.run(Full(), json(#"{"op": "on_schedule", "d": {"schedule_id": 1, "upgrade": null}}"#))
        #expect(ok.status == .success)
        let notObject = await f.run(Full(), json(#"{"op": "on_schedule", "d": {"schedule_id": 1, "upgrade": 5}}"#))
        #expect(notObject.error?.type == "ConfigError")
    }

    @Test func configValuesAreShallowMerged() async {  // C70
        let f = Fixture(config: ["threshold": 40, "unit": "C"])
        var app = Full()
        let got = Recorder()
        app.handlerHook = { app in got.add(String(decoding: try JSON.encode(.object(try app.invocation.config), sortedKeys: true), as: UTF8.self)) }
        _ = await f.run(app, json(#"{"op": "on_schedule", "d": {"schedule_id": 1, "upgrade": {"deployment_config": {"threshold": 5}}}}"#))
        #expect(got.calls == [#"{"threshold":5,"unit":"C"}"#])
    }

    @Test func upgradeLogLevelAppliesToThisInvocationOnly() async {  // C100
        let f = Fixture()
        var app = Full()
        app.handlerHook = { app in app.logger.debug("detail") }
        _ = await f.run(app, json(#"{"op": "on_schedule", "d": {"schedule_id": 1, "upgrade": {"deployment_config": {"dv_proc_config": {"log_level": "DEBUG"}}}}}"#))
        #expect(f.logs.messages("detail").count == 1)
        _ = await f.run(app, Examples.schedule)
        #expect(f.logs.messages("detail").count == 1)
        #expect(f.runtime.logStream.threshold == .info)
    }

    @Test func unknownProcessorConfigKeyWarns() async {  // C102
        let f = Fixture()
        let s = await f.run(Full(), json(#"{"op": "on_schedule", "d": {"schedule_id": 1, "upgrade": {"deployment_config": {"dv_proc_config": {"foo": 1}}}}}"#))
        #expect(s.status == .success)
        #expect(f.logs.messages(#"unknown processor config key "foo" ignored"#).count == 1)
    }
}

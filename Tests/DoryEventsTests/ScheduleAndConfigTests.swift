import DoryState
import Testing
@testable import DoryEvents

/// Unix ms of a UTC wall time.
private func utc(_ y: Int64, _ m: Int, _ d: Int, _ h: Int = 0, _ mi: Int = 0) -> Int64 {
    (CivilDate.days(year: y, month: m, day: d) * 86400 + Int64(h * 3600 + mi * 60)) * 1000
}

private func cron(_ text: String) -> CronExpression {
    guard case .success(let c) = CronExpression.parse(text) else { fatalError("bad cron \(text)") }
    return c
}

private func sydney() -> TimeZoneRules {
    guard case .success(let z) = TimeZoneRules.load("Australia/Sydney") else { fatalError("no Sydney") }
    return z
}

@Suite struct ScheduleTests {
    @Test func rates() {
        #expect(ScheduleSpec.parseRate("every 30s") == 30)
        #expect(ScheduleSpec.parseRate("every 5m") == 300)
        #expect(ScheduleSpec.parseRate("every 2h") == 7200)
        #expect(ScheduleSpec.parseRate("every 1d") == 86400)
        for bad in ["every 0s", "every -1s", "every 5", "every s", "each 5s", "every 5 s", "every 5w"] {
            #expect(ScheduleSpec.parseRate(bad) == nil, "\(bad)")
        }
    }

    @Test func cronSyntax() {
        for good in ["* * * * *", "0 2 * * *", "*/15 0-6/2 1,15 JAN-mar sun", "0 0 * * 7", "5 4 * * SUN-SAT"] {
            if case .failure(let e) = CronExpression.parse(good) { Issue.record("\(good): \(e)") }
        }
        for bad in ["0 2 * * * *", "0 2 * *", "? * * * *", "0 0 L * *", "0 0 1W * *", "0 0 * * 1#2", "@daily",
                    "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8", "*/0 * * * *"] {
            if case .success = CronExpression.parse(bad) { Issue.record("accepted \(bad)") }
        }
    }

    @Test func nextFireInUTC() {
        let c = cron("0 2 * * *")
        #expect(c.nextFire(afterMillis: utc(2026, 3, 1, 1, 59), zone: .utc) == utc(2026, 3, 1, 2, 0))
        #expect(c.nextFire(afterMillis: utc(2026, 3, 1, 2, 0), zone: .utc) == utc(2026, 3, 2, 2, 0))
        // Both day fields restricted: either matches (1st of the month or a Monday).
        let either = cron("0 0 1 * MON")
        #expect(either.nextFire(afterMillis: utc(2026, 1, 1, 0, 1), zone: .utc) == utc(2026, 1, 5))  // Monday
        #expect(cron("30 * * * *").nextFire(afterMillis: utc(2026, 1, 1, 10, 45), zone: .utc) == utc(2026, 1, 1, 11, 30))
        #expect(cron("0 0 29 2 *").nextFire(afterMillis: utc(2026, 1, 1), zone: .utc) == utc(2028, 2, 29))
        #expect(cron("0 0 30 2 *").nextFire(afterMillis: utc(2026, 1, 1), zone: .utc) == nil)
        let fixed = TimeZoneRules.fixed(name: "+05:30", offsetSeconds: 19800)
        #expect(c.nextFire(afterMillis: utc(2026, 3, 1), zone: fixed) == utc(2026, 2, 28, 20, 30) + 86_400_000)
    }

    @Test func sydneyAcrossDaylightSaving() {  // C113
        let z = sydney()
        let c = cron("0 2 * * *")
        // A normal winter day: 02:00 AEST (+10) = 16:00 UTC the day before.
        #expect(c.nextFire(afterMillis: utc(2026, 6, 1), zone: z) == utc(2026, 6, 1, 16, 0))
        // 2026-10-04 clocks jump 02:00 → 03:00 AEDT: fires once at 03:00 local = 16:00 UTC on the 3rd.
        let spring = c.nextFire(afterMillis: utc(2026, 10, 3, 12, 0), zone: z)
        #expect(spring == utc(2026, 10, 3, 16, 0))
        #expect(c.nextFire(afterMillis: spring!, zone: z) == utc(2026, 10, 4, 15, 0))  // 02:00 AEDT next day
        // 2026-04-05 02:00–03:00 AEDT repeats 02:00–03:00 AEST: fires once, at the first 02:00 (AEDT, +11).
        let autumn = c.nextFire(afterMillis: utc(2026, 4, 4, 10, 0), zone: z)
        #expect(autumn == utc(2026, 4, 4, 15, 0))
        #expect(c.nextFire(afterMillis: autumn!, zone: z) == utc(2026, 4, 5, 16, 0))
        // 2045: beyond the file's transitions, the footer rule gives the same days (1st Sunday of Oct/Apr).
        #expect(c.nextFire(afterMillis: utc(2045, 9, 30, 12, 0), zone: z) == utc(2045, 9, 30, 16, 0))  // Oct 1 2045 is a Sunday
        #expect(c.nextFire(afterMillis: utc(2045, 9, 30, 17, 0), zone: z) == utc(2045, 10, 1, 15, 0))  // AEDT from Oct 1
        #expect(c.nextFire(afterMillis: utc(2045, 4, 1, 10, 0), zone: z) == utc(2045, 4, 1, 15, 0))  // Apr 2 2045 is a Sunday
        #expect(c.nextFire(afterMillis: utc(2045, 4, 1, 15, 0), zone: z) == utc(2045, 4, 2, 16, 0))  // AEST after
        #expect(z.offset(at: utc(2045, 12, 1) / 1000) == 39600 && z.offset(at: utc(2045, 7, 1) / 1000) == 36000)
    }

    @Test func zoneNames() {  // C115
        for bad in ["Mars/Base", "../UTC", "/UTC", "UTC/", "a b"] {
            if case .success = TimeZoneRules.load(bad) { Issue.record("accepted \(bad)") }
        }
        for good in ["Etc/GMT+5", "America/Argentina/Buenos_Aires", "UTC", "Europe/Berlin"] {
            if case .failure(let e) = TimeZoneRules.load(good) { Issue.record("\(good): \(e)") }
        }
        if case .success(let z) = TimeZoneRules.load("Etc/GMT+5") { #expect(z.offset(at: 0) == -18000) }
    }

    @Test func posixRules() {
        let r = PosixTZRule.parse("AEST-10AEDT,M10.1.0,M4.1.0/3")
        #expect(r?.stdOffset == 36000 && r?.dstOffset == 39600)
        #expect(PosixTZRule.parse("<+0330>-3:30")?.stdOffset == 12600)
        #expect(PosixTZRule.parse("EST5EDT,M3.2.0,M11.1.0")?.offset(at: utc(2030, 7, 1) / 1000) == -14400)
        #expect(PosixTZRule.parse("EST5EDT,M3.2.0,M11.1.0")?.offset(at: utc(2030, 1, 1) / 1000) == -18000)
        #expect(PosixTZRule.parse("garbage!") == nil)
    }

    @Test func fireEventShape() {
        let s = ScheduleSpec(id: "poll", timing: .rate(seconds: 30))
        #expect(JSONValue.object(s.fireEvent(organisationId: "2", scheduledAt: 5))
            == ["op": "on_schedule", "d": ["schedule_id": "poll", "organisation_id": "2", "scheduled_at": 5]])
    }
}

@Suite struct EventsConfigTests {
    private func parse(_ yamlAsJSON: String) throws(EventsConfigError) -> EventsConfig {
        try EventsConfig.parse(json(yamlAsJSON), processorId: "my-app", version: "9.9.9")
    }

    private func error(_ text: String) -> String? {
        do { _ = try parse(text) } catch { return error.description }
        return nil
    }

    @Test func fullSection() throws {
        let c = try parse(#"""
        {"app_key": "my_app", "app_id": 42, "agent_id": "1", "organisation_id": "2", "config": {"threshold": 40},
         "processor_config": {"log_level": "Info", "log_overrides": {"print": "error"}, "inv_targets": [{"channel": "dv-proc-inv-$app_id"}], "foo": 1},
         "schedules": [{"id": "poll", "rate": "every 30s"}, {"id": "nightly", "cron": "0 2 * * *", "time_zone": "Australia/Sydney"}]}
        """#)
        #expect(c.deployment.appId == "42" && c.deployment.agentId == IDValue(1) && c.deployment.organisationId == "2")
        #expect(c.deployment.displayName == "my_app")
        #expect(c.functionName == "my-app" && c.functionVersion == "9.9.9")
        #expect(c.deployment.processorConfig.logLevel == .info)
        #expect(c.deployment.processorConfig.logOverrides == ["print": .error])
        #expect(c.schedules.map(\.id) == ["poll", "nightly"])
        #expect(c.warnings == [#"unknown processor config key "foo" ignored"#])  // C102
    }

    @Test func errorsNameTheKey() {  // C101, C103, C115
        let base = #""app_key": "a", "app_id": "1", "agent_id": 1"#
        #expect(error(#"{"app_id": "1", "agent_id": 1}"#)?.hasPrefix("events.app_key:") == true)
        #expect(error(#"{\#(base), "bogus": 1}"#) == "events.bogus: unknown key")
        #expect(error(#"{"app_key": "a", "app_id": "1", "agent_id": 1.0}"#)?.hasPrefix("events.agent_id:") == true)
        let level = error(#"{\#(base), "processor_config": {"log_level": "verbose"}}"#)
        #expect(level == #"events.processor_config.log_level: invalid log_level "verbose": expected one of trace, debug, info, notice, warning, warn, error, critical (case-insensitive)"#)
        #expect(error(#"{\#(base), "processor_config": {"inv_targets": [{"agent_id": 1}]}}"#)?.hasPrefix("events.processor_config.inv_targets[0].channel") == true)
        #expect(error(#"{\#(base), "processor_config": {"inv_targets": [{"channel": "a/b"}]}}"#)?.hasPrefix("events.processor_config.inv_targets[0].channel") == true)
        #expect(error(#"{\#(base), "schedules": [{"id": "a", "rate": "every 1s"}, {"id": "b", "cron": "0 2 * * * *"}]}"#)?.hasPrefix("events.schedules[1].cron:") == true)
        #expect(error(#"{\#(base), "schedules": [{"id": "a", "rate": "every 0s"}]}"#)?.hasPrefix("events.schedules[0].rate:") == true)
        #expect(error(#"{\#(base), "schedules": [{"id": "a", "rate": "every 1s"}, {"id": "b", "cron": "0 2 * * *", "time_zone": "Mars/Base"}]}"#)
            == #"events.schedules[1].time_zone: unknown time zone "Mars/Base""#)
        #expect(error(#"{\#(base), "schedules": [{"id": "a", "rate": "every 1s", "cron": "* * * * *"}]}"#) != nil)
        #expect(error(#"{\#(base), "schedules": [{"id": "a", "rate": "every 1s"}, {"id": "a", "rate": "every 2s"}]}"#)?.hasPrefix("events.schedules[1].id") == true)
    }

    @Test func nullTargetsMeanTheDefault() throws {  // C104
        let c = try parse(#"{"app_key": "a", "app_id": "1", "agent_id": 1, "processor_config": {"inv_targets": null, "log_overrides": null}}"#)
        #expect(c.deployment.processorConfig.invTargets == ProcessorConfig.defaultTargets)
        #expect(c.deployment.processorConfig.logOverrides.isEmpty)
    }
}

@Suite struct EnvelopeAndModelTests {
    private func classify(_ text: String) -> Result<ClassifiedBody, IntakeRejection> {
        Envelope.classify(bytes: Array(text.utf8))
    }

    @Test func envelopeRules() {  // C05–C12, C14
        guard case .success(let sns) = Envelope.classify(Examples.sns.objectValue!) else { Issue.record("sns"); return }
        #expect(sns.form == .sns && sns.records.first?.subscriptionId == "arn:aws:sns:ap-southeast-2:123456789012:topic:0f1e2d3c")
        let three = #"{"Records": [\#((["A", "B", "C"].map { #"{"EventSource": "aws:sns", "EventSubscriptionArn": "\#($0)", "Sns": {"Message": "{\"op\": \"x\"}"}}"# }).joined(separator: ","))]}"#
        guard case .success(let c3) = classify(three) else { Issue.record("three"); return }
        #expect(c3.records.map(\.subscriptionId) == ["A", "B", "C"])
        #expect(classify(#"{"Records": []}"#) == .failure(IntakeRejection(code: "invalid_envelope", message: "empty Records")))
        #expect(classify(#"{"Records": {}}"#) == .failure(IntakeRejection(code: "invalid_envelope", message: "Records must be an array")))
        let mixed = #"{"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "{}"}}, {"EventSource": "aws:s3"}]}"#
        #expect(classify(mixed) == .failure(IntakeRejection(code: "invalid_envelope", message: "unsupported event source", record: 1)))
        #expect(classify(#"{"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}"#)
            == .failure(IntakeRejection(code: "invalid_envelope", message: "unsupported event source", record: 0)))
        for message in [#""not json""#, #""[1]""#, "5"] {
            #expect(classify(#"{"Records": [{"EventSource": "aws:sns", "Sns": {"Message": \#(message)}}]}"#)
                == .failure(IntakeRejection(code: "invalid_envelope", message: "invalid SNS message", record: 0)))
        }
        #expect(classify(#"{"Records": [{"EventSource": "aws:sns", "EventSubscriptionArn": 5, "Sns": {"Message": "{}"}}]}"#)
            == .failure(IntakeRejection(code: "invalid_envelope", message: "invalid SNS message", record: 0)))
        if case .failure(let e) = classify("[1,2]") { #expect(e.code == "not_an_object") } else { Issue.record("array") }
        if case .failure(let e) = classify("{") { #expect(e.code == "invalid_json") } else { Issue.record("{") }
        guard case .success(let pass) = classify(#"{"detail": {"op": "on_schedule"}, "token": "t"}"#) else { return }
        #expect(pass.form == .passThrough && pass.records[0].event == ["detail": ["op": "on_schedule"]])
        #expect(pass.records[0].subscriptionId == nil)
    }

    @Test func idValues() {  // C38
        #expect(IDValue(json: "007") == IDValue(7))
        #expect(IDValue(json: 7.0) == nil)
        #expect(IDValue(json: .bigInt("9223372036854775808")) == nil)
        #expect(IDValue(json: "9223372036854775808") == nil)
        #expect(IDValue(json: "9223372036854775807")?.decimal == "9223372036854775807")
        #expect(IDValue(json: -1) == nil && IDValue(json: true) == nil && IDValue(json: " 1") == nil && IDValue(json: "") == nil)
    }

    @Test func modelDetails() throws {  // C37, C39, C40, C42, C46
        let m = try ProcessorEvent.parse(op: .onMessageCreate, d: json(#"{"channel": {"agent_id": 1, "name": "s"}, "data": null}"#).objectValue!)
        if case .messageCreate(let e) = m { #expect(e.message.id == nil && e.message.authorId == nil && e.message.data == .null) }
        let a = try ProcessorEvent.parse(op: .onAggregateUpdate, d: json(#"{"channel": {"agent_id": 1, "name": "s"}, "aggregate": {"data": 1, "last_updated": 0}, "request_data": {"data": 2}}"#).objectValue!)
        if case .aggregateUpdate(let e) = a {
            #expect(e.aggregate.lastUpdated == 0 && e.requestData.lastUpdated == nil && e.requestData.attachments.isEmpty)
        }
        let alarmD = json(#"{"channel": {"agent_id": "5551", "name": "s"}, "alarm": {"id": 7, "name": "n", "description": "", "enabled": true, "state": "Alarm", "entered_state_ts": 1, "key": "temperature", "operator": ">"}, "old_state": "AlarmPending", "new_state": "Alarm", "aggregate": {"data": {"temperature": 112.4}}, "request_data": {"data": {}}, "organisation_id": "77"}"#).objectValue!
        if case .alarmTrigger(let e) = try ProcessorEvent.parse(op: .onAlarmTrigger, d: alarmD) {
            #expect(e.channel.agentId == IDValue(5551) && e.isAlarm && !e.isCleared && e.value == 112.4)
            #expect(e.organisationId == "77" && e.alarm.raw["operator"] == ">")
        }
        if case .deployment(let e) = try ProcessorEvent.parse(op: .onDeployment, d: Examples.deployment["d"]!.objectValue!) {
            #expect(e.appId == 42 && e.appKey == "my_app")
        }
        if case .manualInvoke(let e) = try ProcessorEvent.parse(op: .onManualInvoke, d: ["organisation_id": 5, "payload": "run_now"]) {
            #expect(e.organisationId == 5 && e.payload == "run_now")
        }
        #expect(throws: PayloadError.self) { try ProcessorEvent.parse(op: .onManualInvoke, d: ["payload": 1]) }
    }

    @Test func base64() {
        #expect(Base64.decode("eyJ0ZW1wIjogMjF9") == Array(#"{"temp": 21}"#.utf8))
        #expect(Base64.decode("eyJ0 ZW1w\nIjogMjF9") == Array(#"{"temp": 21}"#.utf8))
        #expect(Base64.decode("YQ") == [97] && Base64.decode("YQ==") == [97])
        #expect(Base64.decode("YQ=") == nil && Base64.decode("%%%") == nil && Base64.decode("Y") == nil)
        #expect(Base64.encode([1, 2, 3, 4]) == "AQIDBA==")
    }

    @Test func uuidV7() {
        let a = UUIDv7.make(millis: 0x0193_2c07_8a3b)
        #expect(a.count == 36 && a.hasPrefix("01932c07-8a3b-7"))
        #expect(a != UUIDv7.make(millis: 0x0193_2c07_8a3b))
    }
}

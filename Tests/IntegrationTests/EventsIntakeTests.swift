import DoryHTTP
import DoryState
import Glibc
import Testing

/// `POST /v1/events` answers through the real binary (spec/event-pipeline.md §2.2), `/metrics` (§11), and the
/// configuration refusals of `doryd events` and `doryd demo` (§9.1).
extension EventsTests {
    @Suite struct Intake {
        /// The error code of a JSON error body.
        static func code(_ response: HTTPClient.Response) -> String? { JSON.object(response.body)?["error"]?.string }

        /// Done means (4) and (5) with one daemon: `event_queue_max: 1`, `event_max_bytes: 1024`.
        /// §13 C01, C02, C07, C08, C12, C13, C15 (second half), C16, C10, and the §11 families.
        @Test func intakeCodesAndMetrics() throws {
            try withSandbox { sandbox in
                var launch = EventsLaunch()
                launch.extraYAML = "event_queue_max: 1\nevent_max_bytes: 1024\n"
                let daemon = try sandbox.launchEvents(launch)
                try daemon.waitReady()
                let event = EventBodies.schedule

                // C01: no Authorization → 401 missing_authorization with WWW-Authenticate.
                let missing = try daemon.postEvent(event, authorized: false)
                #expect(missing.status == 401 && Self.code(missing) == "missing_authorization", "\(missing.text)")
                #expect(missing.headers["WWW-Authenticate"] == "Bearer")
                // C02: wrong token → invalid_token; Basic → invalid_authorization_format.
                let wrong = try daemon.postEvent(event, headers: ["Authorization": "Bearer wrong-0123456789ab"])
                #expect(wrong.status == 401 && Self.code(wrong) == "invalid_token", "\(wrong.text)")
                let basic = try daemon.postEvent(event, headers: ["Authorization": "Basic dXNlcjpwYXNz"])
                #expect(basic.status == 401 && Self.code(basic) == "invalid_authorization_format", "\(basic.text)")
                // §8.6: channel reads need the token too.
                #expect(try daemon.get("/v1/channels/dv-proc-inv-42/messages").status == 401)
                // Row 1: GET /v1/events → 405 with Allow.
                let get = try daemon.get("/v1/events", headers: Daemon.controlBearer)
                #expect(get.status == 405 && get.headers["Allow"] == "POST", "\(get.status) \(get.text)")

                // C07, C08, C10, C12: envelope and JSON rules.
                let empty = try daemon.postEvent(#"{"Records": []}"#)
                #expect(empty.status == 400 && Self.code(empty) == "invalid_envelope", "\(empty.text)")
                #expect(JSON.object(empty.body)?["message"]?.string == "empty Records")
                let notArray = try daemon.postEvent(#"{"Records": {}}"#)
                #expect(JSON.object(notArray.body)?["message"]?.string == "Records must be an array", "\(notArray.text)")
                let sqs = try daemon.postEvent(#"{"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}"#)
                #expect(sqs.status == 400 && JSON.object(sqs.body)?["message"]?.string == "unsupported event source"
                        && JSON.object(sqs.body)?["record"]?.int == 0, "\(sqs.text)")
                let array = try daemon.postEvent("[1,2]")
                #expect(array.status == 400 && Self.code(array) == "not_an_object", "\(array.text)")
                let broken = try daemon.postEvent("{")
                #expect(broken.status == 400 && Self.code(broken) == "invalid_json", "\(broken.text)")

                // C13: 415 and 413 (with size_bytes and max_bytes).
                let text = try daemon.postEvent(event, headers: ["Content-Type": "text/plain"])
                #expect(text.status == 415 && Self.code(text) == "unsupported_media_type", "\(text.text)")
                let padding = String(repeating: "x", count: 2000)
                let big = try daemon.postEvent(#"{"op":"on_manual_invoke","d":{"organisation_id":2,"payload":"\#(padding)"}}"#)
                #expect(big.status == 413 && Self.code(big) == "event_too_large", "\(big.status) \(big.text)")
                #expect(JSON.object(big.body)?["max_bytes"]?.int == 1024)
                #expect((JSON.object(big.body)?["size_bytes"]?.int ?? 0) > 1024)

                // C15: with one free slot a two-record SNS body → 429 queue_full with Retry-After, nothing queued.
                let two = EventBodies.sns([(event, "arn:a"), (event, "arn:b")])
                let full = try daemon.postEvent(two)
                #expect(full.status == 429 && Self.code(full) == "queue_full", "\(full.status) \(full.text)")
                #expect(full.headers["Retry-After"] == "1")

                // C16: the on_schedule example with ?wait=true → 200, body = the summary.
                let waited = try daemon.postEvent(event, query: "?wait=true", timeout: .seconds(20))
                #expect(waited.status == 200, "\(waited.status) \(waited.text)")
                let summary = JSON.object(waited.body)
                #expect(summary?["status"]?.string == "success", "\(waited.text)")
                #expect(summary?["schedule_id"]?.string == "123")
                #expect(summary?["ingestion_id"]?.isNull == true)
                #expect(summary?["event_type"]?.string == "on_schedule")
                // Its keys come in the §5.1 order, as `doryd invoke` prints them and the channel stores them.
                let keyOrder = ["app_key", "app_id", "agent_id", "event_type", "subscription_id", "schedule_id",
                                "ingestion_id", "started_at", "duration_ms", "status", "skip_reason", "error",
                                "requestId", "function_name", "function_version", "invocation_id"]
                let positions = keyOrder.compactMap { waited.text.firstRange(of: "\"\($0)\":")?.lowerBound }
                #expect(positions.count == 16 && positions == positions.sorted(), "\(waited.text)")

                // Done means (5): the §11 families and the route-templated HTTP counter.
                let metrics = try daemon.metrics()
                for family in ["dory_event_invocations_total", "dory_event_invocation_duration_seconds",
                               "dory_event_queue_depth", "dory_event_queue_oldest_age_seconds",
                               "dory_event_accepted_total", "dory_event_rejected_total",
                               "dory_event_queue_fsyncs_total", "dory_event_tag_commits_total",
                               "dory_event_replays_total", "dory_event_summary_delivery_failures_total",
                               "dory_event_skips_total", "dory_event_schedule_fires_total"] {
                    #expect(metrics.families[family] != nil, "no # TYPE for \(family)")
                }
                #expect(metrics.value("dory_event_accepted_total", ["source": "http"]) == 1, "only the waited event was queued")
                #expect(metrics.value("dory_event_rejected_total", ["reason": "unauthorized"]) == 3)
                #expect(metrics.value("dory_event_rejected_total", ["reason": "bad_request"]) == 5)
                #expect(metrics.value("dory_event_rejected_total", ["reason": "unsupported_media_type"]) == 1)
                #expect(metrics.value("dory_event_rejected_total", ["reason": "too_large"]) == 1)
                #expect(metrics.value("dory_event_rejected_total", ["reason": "queue_full"]) == 1)
                #expect(metrics.value("dory_event_invocations_total", ["op": "on_schedule", "status": "success"]) == 1)
                #expect((metrics.value("dory_event_queue_fsyncs_total") ?? 0) >= 1)
                #expect(metrics.value("dory_event_queue_depth") == 0)
                #expect(metrics.value("dory_http_requests_total", ["route": "/v1/events", "code": "202"]) == nil)
                #expect(metrics.value("dory_http_requests_total", ["route": "/v1/events", "code": "200"]) == 1)
                #expect(metrics.value("dory_http_requests_total", ["route": "/v1/events", "code": "401"]) == 3)
                #expect(metrics.value("dory_http_requests_total", ["route": "/v1/events", "code": "429"]) == 1)
                #expect(metrics.value("dory_http_requests_total", ["route": "/v1/channels/{name}/messages", "code": "401"]) == 1)
                #expect(try daemon.stop().code == 0)
            }
        }

        /// C03: no control token → POST /v1/events and the channel reads answer 403 `events_disabled`;
        /// `rejected_total{reason="disabled"}` counts the POST; a `rate: every 1s` schedule still fires and runs.
        @Test func withoutControlTokenTheRoutesAreDisabled() throws {
            try withSandbox { sandbox in
                var launch = EventsLaunch()
                launch.unset = ["DORY_CONTROL_TOKEN"]
                launch.eventsSection = EventsLaunch.section(threshold: 30) + "  schedules:\n    - {id: poll, rate: every 1s}\n"
                let daemon = try sandbox.launchEvents(launch)
                try daemon.waitReady()
                let post = try daemon.postEvent(EventBodies.schedule)
                #expect(post.status == 403 && Self.code(post) == "events_disabled", "\(post.status) \(post.text)")
                #expect(JSON.object(post.body)?["message"]?.string == "set DORY_CONTROL_TOKEN to enable /v1/events")
                let read = try daemon.get("/v1/channels/dv-proc-inv-42/messages?agent_id=1", headers: Daemon.controlBearer)
                #expect(read.status == 403 && Self.code(read) == "events_disabled", "\(read.status) \(read.text)")
                #expect(try daemon.metrics().value("dory_event_rejected_total", ["reason": "disabled"]) == 1)
                // C03: schedules still fire (and run) without a token.
                let ran = Poll.until(timeout: .seconds(10), interval: .milliseconds(50)) {
                    ((try? daemon.metrics().value("dory_event_invocations_total", ["op": "on_schedule", "status": "success"])) ?? 0) >= 1
                }
                #expect(ran, "no on_schedule invocation; log:\n\(daemon.logTail)")
                #expect(try daemon.metrics().value("dory_event_schedule_fires_total", ["schedule_id": "poll", "outcome": "queued"]) ?? 0 >= 1)
                #expect(try daemon.stop().code == 0)
            }
        }

        /// Runs a launch expected to refuse its configuration: exit 2, exactly one critical line, containing every
        /// `mentions`; no port bound.
        static func expectRejected(_ sandbox: Sandbox, _ launch: EventsLaunch, mentions: [String],
                                   sourceLocation: SourceLocation = #_sourceLocation) throws {
            var launch = launch
            launch.waitForListening = false
            let daemon = try sandbox.launchEvents(launch)
            let exit = try daemon.waitForExit()
            #expect(exit.code == 2, "\(exit); \(daemon.logTail)", sourceLocation: sourceLocation)
            let critical = daemon.records.filter { $0["level"]?.string == "critical" }
            #expect(critical.count == 1, "\(daemon.logTail)", sourceLocation: sourceLocation)
            let text = critical.first.map { $0["msg"]?.string ?? "" } ?? ""
            for word in mentions {
                #expect(text.contains(word), "the message does not name \(word): \(text)", sourceLocation: sourceLocation)
            }
            #expect(daemon.events("http.listening").isEmpty, sourceLocation: sourceLocation)
        }

        /// Done means (6): an invalid `events:` section → exit 2 naming the key; `doryd demo` with an `events:`
        /// section → exit 2 naming `events`; `--control-token` is an unknown flag (§9.1); no section at all → exit 2.
        @Test func invalidEventsConfigurationExitsTwo() throws {
            try withSandbox { sandbox in
                var missingKey = EventsLaunch()
                missingKey.eventsSection = "  app_id: \"42\"\n  agent_id: \"1\"\n"
                try Self.expectRejected(sandbox, missingKey, mentions: ["events.app_key"])

                var unknownKey = EventsLaunch()
                unknownKey.eventsSection = EventsLaunch.section(threshold: 30) + "  colour: blue\n"
                try Self.expectRejected(sandbox, unknownKey, mentions: ["events.colour"])

                var badCron = EventsLaunch()
                badCron.eventsSection = EventsLaunch.section(threshold: 30) + "  schedules:\n    - {id: a, rate: every 30s}\n    - {id: b, cron: \"@daily\"}\n"
                try Self.expectRejected(sandbox, badCron, mentions: ["events.schedules[1].cron"])

                var noSection = EventsLaunch()
                noSection.eventsSection = nil
                try Self.expectRejected(sandbox, noSection, mentions: ["events"])

                var demo = EventsLaunch()
                demo.subcommand = "demo"
                try Self.expectRejected(sandbox, demo, mentions: ["events"])

                var flag = EventsLaunch()
                flag.arguments = ["--control-token", "tok-0123456789abcdef"]
                try Self.expectRejected(sandbox, flag, mentions: ["control-token"])
            }
        }
    }
}

import DoryHTTP
import DoryState
import Glibc
import Testing

/// §13 acceptance cases that are cheap to check through the real `doryd events` binary with the built-in
/// `TemperatureAlertApp` (which implements on_message_create, on_schedule, on_manual_invoke and on_deployment).
extension EventsTests {
    @Suite struct Cases {
        static func code(_ response: HTTPClient.Response) -> String? { JSON.object(response.body)?["error"]?.string }

        /// C04, C06, C09, C11, C14, C18, C19, C20, C21, C30, C31 with one daemon.
        @Test func acceptanceCasesThroughTheBinary() throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchEvents()
                try daemon.waitReady()
                let manual = #"{"op": "on_manual_invoke", "token": "secret-xyz", "d": {"organisation_id": 2, "payload": {"run": true}}}"#

                // C04 (+ C20: the token is accepted): 202 with a UUID v7; summary success, subscription_id null.
                let accepted = try daemon.postEvent(manual)
                #expect(accepted.status == 202, "\(accepted.text)")
                let id = try #require(JSON.object(accepted.body)?["invocation_id"]?.string, "\(accepted.text)")
                let uuid = Array(id.utf8)
                #expect(uuid.count == 36 && uuid[14] == UInt8(ascii: "7") && id == id.lowercased(), "not a UUID v7: \(id)")
                let summaries = try #require(daemon.waitForSummaries([id]), "log:\n\(daemon.logTail)")
                let c04 = try #require(summaries.first { $0["invocation_id"]?.string == id })
                #expect(c04["status"]?.string == "success" && c04["event_type"]?.string == "on_manual_invoke", "\(c04)")
                #expect(c04["subscription_id"]?.isNull == true)

                // C06 + C18: three SNS records with ?wait=true → 200, an array of summaries in record order, ARNs A, B, C.
                let arns = ["arn:A", "arn:B", "arn:C"]
                let three = EventBodies.sns(arns.map { (EventBodies.schedule, $0) })
                let waited = try daemon.postEvent(three, query: "?wait=1", timeout: .seconds(20))
                #expect(waited.status == 200, "\(waited.status) \(waited.text)")
                let list = (try? JSON.parse(waited.body))?.array ?? []
                #expect(list.compactMap { $0["subscription_id"]?.string } == arns, "\(waited.text)")
                #expect(list.allSatisfy { $0["status"]?.string == "success" })
                let waitedIds = list.compactMap { $0["invocation_id"]?.string }
                #expect(Set(waitedIds).count == 3)
                // Processed in record order: started_at never decreases.
                let starts = list.compactMap { $0["started_at"]?.int }
                #expect(starts == starts.sorted())

                // C09: one bad record rejects the whole body, naming its index; C11: Message not a JSON object.
                let mixed = #"{"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "{\"op\": \"on_schedule\", \"d\": {\"schedule_id\": 1}}"}}, {"EventSource": "aws:s3"}]}"#
                let c09 = try daemon.postEvent(mixed)
                #expect(c09.status == 400 && JSON.object(c09.body)?["message"]?.string == "unsupported event source"
                        && JSON.object(c09.body)?["record"]?.int == 1, "\(c09.text)")
                for message in [#""not json""#, #""[1]""#] {
                    let c11 = try daemon.postEvent(#"{"Records": [{"EventSource": "aws:sns", "Sns": {"Message": \#(message)}}]}"#)
                    #expect(c11.status == 400 && JSON.object(c11.body)?["message"]?.string == "invalid SNS message", "\(c11.text)")
                }

                // C14: no unwrapping of an EventBridge-style object → error/InvalidEvent, event_type null.
                let c14 = try daemon.postEvent(#"{"detail": {"op": "on_schedule"}}"#, query: "?wait=true", timeout: .seconds(20))
                let c14Summary = JSON.object(c14.body)
                #expect(c14.status == 200 && c14Summary?["status"]?.string == "error", "\(c14.text)")
                #expect(c14Summary?["error"]?["type"]?.string == "InvalidEvent")
                #expect(c14Summary?["event_type"]?.isNull == true)

                // C19: X-Request-Id becomes requestId; without it requestId = invocation_id (C04's summary).
                let c19 = try daemon.postEvent(EventBodies.schedule, query: "?wait=true", headers: ["X-Request-Id": "abc-123"],
                                               timeout: .seconds(20))
                #expect(JSON.object(c19.body)?["requestId"]?.string == "abc-123", "\(c19.text)")
                #expect(c04["requestId"]?.string == id)

                // C30: an unknown op → skipped/unknown_op, event_type kept; C31: op missing or 5 → error/InvalidEvent.
                let c30 = try daemon.postEvent(#"{"op": "on_message_update", "d": {}}"#, query: "?wait=true", timeout: .seconds(20))
                #expect(JSON.object(c30.body)?["status"]?.string == "skipped", "\(c30.text)")
                #expect(JSON.object(c30.body)?["skip_reason"]?.string == "unknown_op")
                #expect(JSON.object(c30.body)?["event_type"]?.string == "on_message_update")
                for body in [#"{"d": {}}"#, #"{"op": 5, "d": {}}"#] {
                    let c31 = try daemon.postEvent(body, query: "?wait=true", timeout: .seconds(20))
                    let s = JSON.object(c31.body)
                    #expect(s?["status"]?.string == "error" && s?["error"]?["type"]?.string == "InvalidEvent", "\(c31.text)")
                    #expect(s?["event_type"]?.isNull == true && s?["app_id"]?.string == "42")
                }

                // C20: after a SIGTERM (final save written), the token appears in no queue record, log line, channel
                // message or snapshot.
                #expect(try daemon.stop().code == 0)
                #expect(!daemon.process.stderr.text.contains("secret-xyz"), "the token reached the log")
                let queue = Files.read(daemon.processorDir + "/events/queue.log").map { String(decoding: $0, as: UTF8.self) }
                #expect(queue != nil, "no queue file at \(daemon.processorDir)/events/queue.log")
                #expect(!(queue ?? "").contains("secret-xyz"), "the token reached the queue file")
                let grep = try sandbox.spawn("/bin/grep", ["-r", "-l", "secret-xyz", daemon.stateDir], environment: ["PATH": "/usr/bin:/bin"],
                                             captureStdout: true)
                let grepExit = grep.waitForExit(timeout: .seconds(10))
                #expect(grepExit?.code == 1, "files holding the token: \(grep.stdout?.text ?? "")")
                let snapshot = try daemon.newestSnapshot()
                let snapshotText = String(decoding: (try? JSON.encode(.object(snapshot.envelope))) ?? [], as: UTF8.self)
                #expect(!snapshotText.isEmpty && !snapshotText.contains("secret-xyz"))
            }
        }

        /// CRC-32/IEEE, the queue file's record checksum (§2.4).
        static func crc32(_ bytes: [UInt8]) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in bytes {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
            }
            return ~crc
        }

        /// One queue record line: 8 hex digits, a space, the JSON, LF.
        static func record(_ json: String) -> String {
            let hex = String(crc32(Array(json.utf8)), radix: 16)
            return String(repeating: "0", count: 8 - hex.count) + hex + " " + json + "\n"
        }

        /// C25 + C22 from a prepared file: two durable `enq` records and a torn third line → truncated at the third
        /// line's offset with a WARNING; the two earlier events are processed once each, with their own ids, in order.
        /// A record whose checksum fails ends the log the same way.
        @Test(arguments: [false, true]) func tornQueueTailIsCutAndEarlierEventsRun(badChecksum: Bool) throws {
            try withSandbox { sandbox in
                let ids = ["01932c07-8a3b-7c4e-9a2f-5b6d7e8f9a01", "01932c07-8a3b-7c4e-9a2f-5b6d7e8f9a02"]
                var text = ""
                for (n, id) in ids.enumerated() {
                    text += Self.record(#"{"k":"enq","id":"\#(id)","at":1700000000000,"src":"http","req":"r\#(n)","sub":null,"ev":\#(EventBodies.messageCreate(temp: 45 + n))}"#)
                }
                let cutAt = text.utf8.count
                let third = #"{"k":"enq","id":"01932c07-8a3b-7c4e-9a2f-5b6d7e8f9a03","at":1700000000001,"src":"http","req":null,"sub":null,"ev":{"op":"on_schedule","d":{"schedule_id":"x"}}}"#
                if badChecksum {
                    text += "00000000 " + third + "\n"
                } else {
                    text += String(Self.record(third).dropLast(20))
                }
                sandbox.makeDirectory("state/my-app/events")
                sandbox.write("state/my-app/events/queue.log", text)

                let daemon = try sandbox.launchEvents()
                try daemon.waitReady()
                let warning = daemon.waitForLog { $0["level"]?.string == "warning" && ($0["msg"]?.string ?? "").contains("truncated") }
                #expect(warning?["msg"]?.string?.contains("\(cutAt)") == true, "no WARNING naming byte \(cutAt); log:\n\(daemon.logTail)")
                let all = try #require(daemon.waitForSummaries(ids), "log:\n\(daemon.logTail)")
                #expect(all.compactMap { $0["invocation_id"]?.string } == ids, "\(all)")
                #expect(all.compactMap { $0["requestId"]?.string } == ["r0", "r1"])
                #expect(all.allSatisfy { $0["status"]?.string == "success" })
                #expect(!all.contains { $0["event_type"]?.string == "on_schedule" }, "the torn record ran")
                #expect(try daemon.tagValues()["my_app"]?["alert"]?.bool == true)
                #expect(try daemon.stop().code == 0)
            }
        }
        /// §2.4 replay, one summary per event, from a prepared state (deterministic, unlike a SIGKILL's timing):
        /// A has a durable `start` and its summary already on `dv-proc-inv-42` → marked done without running, no second
        /// summary (`summary_found`); B has a `start` and no summary → runs again with its id (C23, `rerun`); C has
        /// three `start`s → `AttemptsExhausted` without running (C24's last boot, `exhausted`).
        @Test func replaysFindTheirSummaryRerunOrExhaust() throws {
            try withSandbox { sandbox in
                let a = "01932c07-8a3b-7c4e-9a2f-5b6d7e8f9b01"
                let b = "01932c07-8a3b-7c4e-9a2f-5b6d7e8f9b02"
                let c = "01932c07-8a3b-7c4e-9a2f-5b6d7e8f9b03"
                var queue = ""
                for id in [a, b, c] {
                    queue += Self.record(#"{"k":"enq","id":"\#(id)","at":1700000000000,"src":"http","req":null,"sub":null,"ev":\#(EventBodies.messageCreate(temp: 45))}"#)
                }
                for id in [a, b, c, c, c] { queue += Self.record(#"{"k":"start","id":"\#(id)","at":1700000000001}"#) }
                sandbox.makeDirectory("state/my-app/events/channels/1")
                sandbox.write("state/my-app/events/queue.log", queue)
                let delivered = #"{"app_key":"my_app","app_id":"42","agent_id":"1","event_type":"on_message_create","subscription_id":null,"schedule_id":null,"ingestion_id":null,"started_at":1700000000002,"duration_ms":1,"status":"success","skip_reason":null,"error":null,"requestId":"\#(a)","function_name":"my-app","function_version":"0.1.0","invocation_id":"\#(a)"}"#
                sandbox.write("state/my-app/events/channels/1/dv-proc-inv-42.jsonl",
                              #"{"id":"1","channel":{"agent_id":"1","name":"dv-proc-inv-42"},"author_id":"1","timestamp":1700000000003,"invocation_id":"\#(a)","data":\#(delivered)}"# + "\n")

                let daemon = try sandbox.launchEvents()
                try daemon.waitReady()
                let all = try #require(daemon.waitForSummaries([a, b, c]), "log:\n\(daemon.logTail)")
                #expect(all.compactMap { $0["invocation_id"]?.string } == [a, b, c], "one summary each, in order: \(all)")
                #expect(all[0]["started_at"]?.int == 1700000000002, "A ran again")
                #expect(all.count == 3 && all[1]["status"]?.string == "success", "\(all)")
                let exhausted = all.count == 3 ? all[2] : [:]
                #expect(exhausted["status"]?.string == "error", "\(exhausted)")
                #expect(exhausted["error"]?["type"]?.string == "AttemptsExhausted")
                #expect(exhausted["error"]?["message"]?.string == "event started 3 times without completing")
                let metrics = try daemon.metrics()
                #expect(metrics.value("dory_event_replays_total", ["outcome": "summary_found"]) == 1)
                #expect(metrics.value("dory_event_replays_total", ["outcome": "rerun"]) == 1)
                #expect(metrics.value("dory_event_replays_total", ["outcome": "exhausted"]) == 1)
                #expect(metrics.value("dory_event_invocations_total", ["op": "on_message_create", "status": "success"]) == 1,
                        "only B ran")
                // Nothing left pending: a clean restart runs nothing and delivers nothing more.
                #expect(Poll.until(timeout: .seconds(5)) { (try? daemon.metrics().value("dory_event_queue_depth")) == 0 })
                #expect(try daemon.stop().code == 0)
                let again = try sandbox.launchEvents()
                try again.waitReady()
                #expect(try again.channelData().count == 3)
                #expect(try again.metrics().value("dory_event_replays_total", ["outcome": "rerun"]) ?? 0 == 0)
                #expect(try again.stop().code == 0)
            }
        }
    }
}

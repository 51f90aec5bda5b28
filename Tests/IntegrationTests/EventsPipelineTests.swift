import DoryHTTP
import DoryState
import Glibc
import Synchronization
import Testing

/// `doryd events` end to end: SNS intake → handler → tag commit → summary on `dv-proc-inv-42`; tags across a
/// SIGTERM restart; no acknowledged event lost across a SIGKILL (spec/event-pipeline.md §2.4, §5.2, §7, §13).
extension EventsTests {
    @Suite struct Pipeline {
        static let arn = "arn:aws:sns:ap-southeast-2:123456789012:topic:0f1e2d3c"

        /// Done means (1) and (2); §13 C05 (SNS → 202 `invocation_ids`, summary carries the ARN) at the binary level.
        @Test func snsMessageCreateCommitsTagAndSummary_andTagsSurviveRestart() throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchEvents()
                try daemon.waitReady()
                let body = EventBodies.sns([(EventBodies.messageCreate(temp: 45), Self.arn)])
                let response = try daemon.postEvent(body)
                #expect(response.status == 202, "\(response.status) \(response.text)")
                let ids = JSON.object(response.body)?["invocation_ids"]?.array?.compactMap(\.string) ?? []
                try #require(ids.count == 1, "\(response.text)")
                let id = ids[0]

                let all = try #require(daemon.waitForSummaries([id]), "no summary for \(id); log:\n\(daemon.logTail)")
                let mine = all.filter { $0["invocation_id"]?.string == id }
                #expect(mine.count == 1)
                let summary = try #require(mine.first)
                #expect(summary["status"]?.string == "success", "\(summary)")
                #expect(summary["event_type"]?.string == "on_message_create")
                #expect(summary["subscription_id"]?.string == Self.arn)
                #expect(summary["app_key"]?.string == "my_app")
                #expect(summary["app_id"]?.string == "42")
                #expect(summary["agent_id"]?.string == "1")
                #expect(summary["function_name"]?.string == "my-app")
                #expect(summary["requestId"]?.string == id)

                // The tag commit (S14) happens before the summary append (C52 order), so it is visible now.
                let tags = try daemon.tagValues()
                #expect(tags["my_app"]?["alert"]?.bool == true, "\(tags)")
                // The event token is never stored (C20, the channel part).
                let channelText = try daemon.get("/v1/channels/dv-proc-inv-42/messages?agent_id=1",
                                                 headers: Daemon.controlBearer).text
                #expect(!channelText.contains("initial-token"))

                // (2) SIGTERM → clean exit; the restart restores the tag map from the snapshot.
                let exit = try daemon.stop()
                #expect(exit.code == 0, "\(exit); \(daemon.logTail)")
                #expect(try daemon.newestSnapshot().reason == "shutdown")

                let again = try sandbox.launchEvents()
                try again.waitReady()
                let restored = try again.tagValues()
                #expect(restored["my_app"]?["alert"]?.bool == true, "\(restored); log:\n\(again.logTail)")
                // The summary is not delivered a second time after a clean restart.
                let after = try again.channelData().filter { $0["invocation_id"]?.string == id }
                #expect(after.count == 1)
                #expect(try again.stop().code == 0)
            }
        }

        /// Done means (3); §13 C22 at scale: a burst of acknowledged (202) events, SIGKILL, restart → every id has
        /// exactly one summary (processed before the kill or on the restart), none lost, none twice.
        @Test func sigkillDuringBurstLosesNoAcknowledgedEvent() throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchEvents()
                try daemon.waitReady()
                let port = daemon.port
                let threads = 10
                let perThread = 100
                let results = Mutex<(ids: [String], failures: [String])>(([], []))
                let finished = Atomic<Int>(0)
                for t in 0..<threads {
                    Threads.start {
                        for i in 0..<perThread {
                            // Temperatures around the threshold so the tag flips (and commits) every 20th event.
                            let temp = (t * perThread + i) / 20 % 2 == 0 ? 25 : 35
                            let body = EventBodies.messageCreate(temp: temp, id: "\(t * 1000 + i)")
                            do {
                                let r = try HTTPClient.request(
                                    method: "POST", path: "/v1/events",
                                    headers: ["Authorization": "Bearer \(EventsLaunch.controlToken)",
                                              "Content-Type": "application/json"],
                                    body: Array(body.utf8), to: .tcp(host: "127.0.0.1", port: port), timeout: .seconds(10))
                                if r.status == 202, let id = JSON.object(r.body)?["invocation_id"]?.string {
                                    results.withLock { $0.ids.append(id) }
                                } else {
                                    results.withLock { $0.failures.append("\(r.status) \(r.text)") }
                                }
                            } catch {
                                results.withLock { $0.failures.append("\(error)") }
                            }
                        }
                        finished.add(1, ordering: .releasing)
                    }
                }
                let fsyncsBefore = try daemon.metrics().value("dory_event_queue_fsyncs_total") ?? 0
                let burstStart = Poll.now()
                #expect(Poll.until(timeout: .seconds(30), interval: .milliseconds(5)) {
                    finished.load(ordering: .acquiring) == threads
                }, "the burst did not finish")
                let burstSeconds = Poll.seconds(since: burstStart)
                // C26 (loosely): concurrent POSTs share group-commit rounds, so the burst costs fewer fsyncs than
                // acknowledged events (processing adds about one round per event, shared with the intake's).
                let fsyncs = (try daemon.metrics().value("dory_event_queue_fsyncs_total") ?? 0) - fsyncsBefore
                let processedBeforeKill = (try? daemon.channelData().count) ?? 0
                daemon.signal(SIGKILL)
                let exit = try daemon.waitForExit()
                #expect(exit.signal == SIGKILL)
                let (ids, failures) = results.withLock { ($0.ids, $0.failures) }
                #expect(failures.isEmpty, "\(failures.prefix(5))")
                #expect(ids.count == threads * perThread)
                #expect(Set(ids).count == ids.count, "duplicate invocation ids at intake")

                let again = try sandbox.launchEvents()
                try again.waitReady(timeout: .seconds(20))
                let all = try #require(again.waitForSummaries(ids, timeout: .seconds(30)),
                                       "not every acknowledged event got a summary; log:\n\(again.logTail)")
                var counts: [String: Int] = [:]
                for summary in all { if let id = summary["invocation_id"]?.string { counts[id, default: 0] += 1 } }
                let twice = ids.filter { counts[$0, default: 0] != 1 }
                #expect(twice.isEmpty, "ids without exactly one summary: \(twice.prefix(5)) (burst \(burstSeconds) s)")
                let byId = Dictionary(all.map { ($0["invocation_id"]?.string ?? "", $0) }, uniquingKeysWith: { a, _ in a })
                let notSuccess = ids.filter { byId[$0]?["status"]?.string != "success" }
                #expect(notSuccess.isEmpty, "\(notSuccess.prefix(3).map { byId[$0].map { "\($0)" } ?? "-" })")
                // The restart really had work left, or the kill came after the queue drained (either is valid);
                // the recovered count is in the log line `event queue recovered`.
                let recovered = again.records.first { $0["msg"]?.string == "event queue recovered" }?["pending"]
                print("events burst: \(ids.count) acknowledged in \(burstSeconds) s, \(Int(fsyncs)) fsyncs, "
                      + "\(processedBeforeKill) summaries before the kill; pending at restart: \(recovered.map { "\($0)" } ?? "0")")
                #expect(fsyncs < Double(ids.count), "no round sharing: \(fsyncs) fsyncs for \(ids.count) events")
                #expect(try again.stop().code == 0)
            }
        }
    }
}

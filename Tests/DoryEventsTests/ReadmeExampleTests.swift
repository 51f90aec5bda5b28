import DoryState
import Testing
@testable import DoryEvents

/// The "Your own application" example of the README, verbatim, run through the pipeline.
struct Pump: Application {
    var implementedHandlers: Set<EventOp> { [.onMessageCreate, .onSchedule] }
    func onMessageCreate(_ event: MessageCreateEvent) async throws {
        try setTag("last_temp", event.message.data)
    }
    func onSchedule(_ event: ScheduleEvent) async throws {
        _ = try createMessage(channel: "pump", data: ["running": true])
    }
}

@Suite struct ReadmeExampleTests {
    @Test func pumpSetsItsTagAndWritesItsChannel() async {
        let f = Fixture()
        let message = await f.run(Pump(), Examples.messageFlat)
        #expect(message.status == .success)
        #expect(f.tags["my_app"]?["last_temp"] == ["temp": 21.5])
        let schedule = await f.run(Pump(), Examples.schedule)
        #expect(schedule.status == .success)
        #expect(f.messages(1, "pump").count == 1)
        let skipped = await f.run(Pump(), Examples.manual)
        #expect(skipped.skipReason == .noHandler)
    }
}

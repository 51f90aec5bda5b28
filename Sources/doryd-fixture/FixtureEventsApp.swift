import DoryEvents
import DoryKit
import DoryState
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `FIXTURE_APP=events-full doryd-fixture [setting flags]`: runs ``FullApp`` through the public entry point,
/// `DoryEventsApp(configFile: $FIXTURE_CONFIG_FILE, logLevel: $FIXTURE_LOG_LEVEL).run(FullApp.self)`
/// (event-pipeline.md §4.7), so its setting flags are the program's own command line.
enum FixtureEventsMain {
    static var selected: Bool { Fixture.value("FIXTURE_APP") == "events-full" }

    static func start() -> Never {
        let app = DoryEventsApp(configFile: Fixture.value("FIXTURE_CONFIG_FILE"),
                                logLevel: Fixture.value("FIXTURE_LOG_LEVEL"))
        Task { try await app.run(FullApp.self) }
        SignalRouter.parkMainThread()
    }
}

/// An application implementing all seven handlers, driven by the event so tests can make it misbehave.
///
/// Every handler logs `fixture handler` (logger `app`, field `handler`). The handlers of `on_manual_invoke` (its
/// `payload`) and `on_message_create` (its message's `data`) then act on that object, key by key in this order:
/// - `"print": TEXT` — written to standard output as is (`print(TEXT, terminator: "")`, no newline added);
/// - `"stderr": TEXT` — written to descriptor 2 as is;
/// - `"log": {"msg": TEXT, "fields": {…}}` — `logger.info(TEXT)` with each field as call-site metadata;
/// - `"sleep_ms": N` — sleeps N ms, honouring cancellation (a cancelled sleep throws `CancellationError`);
/// - `"print_after": TEXT` — like `print`, after the sleep;
/// - `"throw": TEXT` — throws `FixtureError(TEXT)`.
///
/// Queue, replay and shutdown actions (``actQueueCases(_:)``), applied before `sleep_ms`:
/// - `"set_tag": {KEY: VALUE, …}` — `setTag(KEY, VALUE)` for each member (committed at S14);
/// - `"kill_self": true` — SIGKILLs the own process (a crash inside the handler, §13 C24);
/// - `"wait_ms": N` — sleeps N ms honouring cancellation; when cancelled it logs `fixture wait cancelled` (field
///   `waited_ms`) and throws `CancellationError`.
///
/// `close()` logs `fixture close` (logger `app`).
struct FullApp: Application {
    init() {}

    var implementedHandlers: Set<EventOp> { Set(EventOp.allCases) }

    func onMessageCreate(_ event: MessageCreateEvent) async throws {
        try await act("on_message_create", event.message.data)
    }
    func onAggregateUpdate(_ event: AggregateUpdateEvent) async throws { try await act("on_aggregate_update", nil) }
    func onDeployment(_ event: DeploymentEvent) async throws { try await act("on_deployment", nil) }
    func onSchedule(_ event: ScheduleEvent) async throws { try await act("on_schedule", nil) }
    func onIngestionEndpoint(_ event: IngestionEndpointEvent) async throws {
        try await act("on_ingestion_endpoint", nil)
    }
    func onManualInvoke(_ event: ManualInvokeEvent) async throws { try await act("on_manual_invoke", event.payload) }
    func onAlarmTrigger(_ event: AlarmTriggerEvent) async throws { try await act("on_alarm_trigger", nil) }

    private func act(_ handler: String, _ value: JSONValue?) async throws {
        logger.info("fixture handler", metadata: ["handler": .string(handler)])
        guard case .object(let o)? = value else { return }
        if case .string(let text)? = o["print"] { print(text, terminator: "") }
        if case .string(let text)? = o["stderr"] { FullApp.writeStandardError(text) }
        if case .object(let line)? = o["log"] {
            var metadata: Logger.Metadata = [:]
            if case .object(let fields)? = line["fields"] {
                for (key, field) in fields { metadata[key] = .json(field) }
            }
            logger.info("\(line["msg"]?.stringValue ?? "fixture log")", metadata: metadata)
        }
        try await actQueueCases(o)
        if case .int(let ms)? = o["sleep_ms"] { try await Task.sleep(for: .milliseconds(ms)) }
        if case .string(let text)? = o["print_after"] { print(text, terminator: "") }
        if case .string(let text)? = o["throw"] { throw FixtureError(message: text) }
    }

    // MARK: Queue, replay and shutdown actions (§13 C23, C24, C127–C129, C133)

    func close() async throws {
        logger.info("fixture close")
    }

    /// `set_tag`, `kill_self`, `wait_ms` (see the type's documentation).
    private func actQueueCases(_ o: [String: JSONValue]) async throws {
        if case .object(let tags)? = o["set_tag"] {
            for (key, value) in tags { try setTag(key, value) }
        }
        if case .bool(true)? = o["kill_self"] {
            logger.info("fixture kill_self")
            kill(getpid(), SIGKILL)
        }
        if case .int(let ms)? = o["wait_ms"] {
            let start = ContinuousClock.now
            do {
                try await Task.sleep(for: .milliseconds(ms))
            } catch {
                let waited = ContinuousClock.now - start
                logger.info("fixture wait cancelled", metadata: [
                    "waited_ms": .stringConvertible(waited.components.seconds * 1000
                        + waited.components.attoseconds / 1_000_000_000_000_000),
                ])
                throw error
            }
        }
    }

    // MARK: Helpers

    private static func writeStandardError(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            offset += n
        }
    }
}

extension JSONValue {
    fileprivate var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}

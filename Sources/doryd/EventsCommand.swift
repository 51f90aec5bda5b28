import ArgumentParser
import DoryEvents
import DoryKit

/// `doryd events --config FILE`: the event workload (the built-in example application) under the supervisor.
struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the event pipeline: POST /v1/events, schedules, tags and channels, under the supervisor.",
        discussion: "The YAML file's events: section configures the application; setting flags: "
            + SettingFlags.names(allowEvents: true).joined(separator: " ")
    )

    @Argument(parsing: .allUnrecognized, help: "Setting flags, e.g. --config events.yaml --port 9000")
    var settings: [String] = []

    func run() async throws {
        let flags: [String: String]
        do {
            flags = try SettingFlags.parse(settings, allowEvents: true)
        } catch {
            throw CommandExit(code: DoryRuntime.reportConfigError(error))
        }
        throw CommandExit(code: await EventsHost.run(flags: flags, application: TemperatureAlertApp.self))
    }
}

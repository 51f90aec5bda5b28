#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DoryKit
import DoryState

/// Everything the event workload takes from the configuration (§9.1): the parsed `events` section, the flat
/// settings and where its files live. Built once at start-up (``init(config:processorId:version:)``) or directly
/// (tests, `DoryEventsApp`).
public struct EventSettings: Sendable, Equatable {
    /// The parsed `events:` section: YAML base deployment, function name/version, schedules, warnings.
    public var events: EventsConfig
    /// `<state_dir>/<processor_id>`: the queue lives in `events/`, channels in `events/channels/`.
    public var processorDirectory: String
    /// `event_queue_max` (§2.4).
    public var eventQueueMax: Int
    /// `event_max_bytes` (§2.2 row 5, §8.1, §8.2).
    public var eventMaxBytes: Int
    /// `event_timeout_sec`; 0 = no limit (§4.4).
    public var eventTimeoutSec: Double
    /// `event_max_attempts` (§2.4 poison events).
    public var eventMaxAttempts: Int
    /// `channel_max_bytes` (§8.1 retention).
    public var channelMaxBytes: Int

    public init(events: EventsConfig, processorDirectory: String, eventQueueMax: Int = 10_000,
                eventMaxBytes: Int = 1_048_576, eventTimeoutSec: Double = 300, eventMaxAttempts: Int = 3,
                channelMaxBytes: Int = 4_194_304)
    {
        self.events = events
        self.processorDirectory = processorDirectory
        self.eventQueueMax = eventQueueMax
        self.eventMaxBytes = eventMaxBytes
        self.eventTimeoutSec = eventTimeoutSec
        self.eventMaxAttempts = eventMaxAttempts
        self.channelMaxBytes = channelMaxBytes
    }

    /// Reads the settings from the runtime's configuration: parses `config.eventsSection` (errors name the key
    /// path, exit 2) and takes the flat settings as they are (the loader validated them).
    /// - Parameters:
    ///   - processorId: the resolved processor id (directory name, default `function_name`).
    ///   - version: doryd's version (default `function_version`).
    ///   - zoneDirectory: TZif files for cron time zones.
    public init(config: DoryConfig, processorId: String, version: String,
                zoneDirectory: String = "/usr/share/zoneinfo") throws(EventsConfigError)
    {
        let events = try EventsConfig.parse(config.eventsSection, processorId: processorId, version: version,
                                            zoneDirectory: zoneDirectory)
        self.init(events: events, processorDirectory: config.stateDir + "/" + processorId,
                  eventQueueMax: config.eventQueueMax, eventMaxBytes: config.eventMaxBytes,
                  eventTimeoutSec: config.eventTimeoutSec, eventMaxAttempts: config.eventMaxAttempts,
                  channelMaxBytes: config.channelMaxBytes)
    }

    /// `<processor dir>/events`: `queue.log` lives here.
    public var eventsDirectory: String { processorDirectory + "/events" }
    /// `<processor dir>/events/channels`: the channel files (§8.1).
    public var channelsDirectory: String { eventsDirectory + "/channels" }
}

import DoryHTTP
import DoryState
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Runs one workload under the Supervisor: the whole of spec §2.1 from configuration to exit code.
public enum DoryRuntime {
    /// What the entry point passes in.
    public struct Launch: Sendable {
        /// Flag values keyed by setting name (`health_port` → "9200").
        public var flags: [String: String]
        /// Accept the `events:` section of the YAML file.
        public var allowEvents: Bool
        /// YAML keys of the workload's own settings (see ``ConfigLoader/workloadKeys``).
        public var workloadKeys: Set<String>
        public init(flags: [String: String] = [:], allowEvents: Bool = false, workloadKeys: Set<String> = []) {
            self.flags = flags
            self.allowEvents = allowEvents
            self.workloadKeys = workloadKeys
        }
    }

    /// Logs a configuration error as one critical JSON line and returns exit code 2.
    public static func reportConfigError(_ error: ConfigError) -> Int32 {
        DoryLogging.bootstrap()
        Logger(label: "doryd.config").critical("\(error.description)", metadata: ["event": "config.invalid", "setting": .string(error.setting)])
        DoryLogging.flush()
        return ExitCode.invalidConfiguration
    }

    /// Runs `workload` and returns the exit code (the log is flushed). Call `SignalRouter.install()` first thing in
    /// `main`; this call installs it too if that was not done.
    public static func run(_ workload: any Workload, _ launch: Launch) async -> Int32 {
        await run(launch) { _ in workload }
    }

    /// A workload that needs the resolved settings to be built (the event workload reads its `events:` section).
    /// A `ConfigError` thrown by `makeWorkload` exits 2 like any other configuration error.
    public static func run(_ launch: Launch, makeWorkload: (RuntimeSettings) throws(ConfigError) -> any Workload) async -> Int32 {
        let router = SignalRouter.install()
        let environment = ProcessEnvironment.current()
        let bootId = ProcessEnvironment.uuidV4()
        DoryLogging.bootstrap()
        DoryLogging.setGlobalMetadata(key: "boot_id", value: bootId)
        let logger = Logger(label: "doryd.lifecycle")
        logger.notice("doryd starting", metadata: ["version": .string(DoryKitVersion.version), "event": "lifecycle.start"])

        // (b) configuration, (c) logging settings.
        let config: DoryConfig
        do {
            var loader = ConfigLoader(flags: launch.flags, environment: environment, allowEvents: launch.allowEvents)
            loader.workloadKeys = launch.workloadKeys
            config = try loader.load()
        } catch {
            Logger(label: "doryd.config").critical("\(error.description)", metadata: ["event": "config.invalid", "setting": .string(error.setting)])
            DoryLogging.flush()
            return ExitCode.invalidConfiguration
        }
        DoryLogging.setThreshold(config.logLevel)
        for warning in config.warnings {
            Logger(label: "doryd.config").warning("\(warning)", metadata: ["event": "config.warning"])
        }
        let identity = PodIdentity(environment: environment)
        let processorId: String
        do {
            processorId = try ProcessorID.resolve(configured: config.processorId, environment: environment, podName: identity.podName)
        } catch {
            Logger(label: "doryd.config").critical("\(error.description)", metadata: ["event": "config.invalid", "setting": "processor_id"])
            DoryLogging.flush()
            return ExitCode.invalidConfiguration
        }
        DoryLogging.setGlobalMetadata(key: "processor_id", value: processorId)
        DoryLogging.setGlobalMetadata(key: "pod", value: identity.podName)
        DoryLogging.setGlobalMetadata(key: "namespace", value: identity.namespace)
        var testFault: String?
        #if DEBUG
        if let fault = environment["DORY_TEST_FAULT"], !fault.isEmpty {
            guard (try? FaultRule.parse(fault)) != nil else {
                Logger(label: "doryd.config").critical(
                    "test_fault from DORY_TEST_FAULT=\"\(fault)\": expected <fsync|rename|write|open>@<path-substring>",
                    metadata: ["event": "config.invalid", "setting": "test_fault"])
                DoryLogging.flush()
                return ExitCode.invalidConfiguration
            }
            testFault = fault
        }
        #endif
        let settings = RuntimeSettings(
            config: config, environment: environment, identity: identity, processorId: processorId, bootId: bootId,
            version: DoryKitVersion.version, restartCountOverride: config.restartCountOverride, testFault: testFault)
        let workload: any Workload
        do throws(ConfigError) {
            workload = try makeWorkload(settings)
        } catch {
            Logger(label: "doryd.config").critical("\(error.description)", metadata: ["event": "config.invalid", "setting": .string(error.setting)])
            DoryLogging.flush()
            return ExitCode.invalidConfiguration
        }

        let status = RuntimeStatus(workload: workload)
        let metrics = Metrics()
        let supervisor = Supervisor(settings: settings, workload: workload, status: status, metrics: metrics)
        let listeners = Listeners()
        HardExit.onExit { listeners.close() }
        let code = await supervisor.run { supervisor in
            let service = ProbeService(supervisor: supervisor, status: status, metrics: metrics, settings: settings)
            try listeners.bind(service: service, settings: settings, extraControlRoutes: workload.controlSocketRoutes(),
                               extraTCPRoutes: workload.tcpRoutes())
            @Sendable func dispatch(_ signal: Int32) async {
                if workload.receivedSignal(signal) == .handled {
                    metrics.signal(SignalRouter.name(signal))
                    return
                }
                switch signal {
                case SIGTERM, SIGINT: await supervisor.stopSignal(SignalRouter.name(signal))
                case SIGUSR1: await supervisor.snapshotSignal()
                default: await supervisor.otherSignal(SignalRouter.name(signal))
                }
            }
            // SIGCHLD is handled at once on the signal queue (reaping must not wait behind the actor).
            let early = router.attach { signal in
                if signal == SIGCHLD {
                    _ = workload.receivedSignal(signal)
                    metrics.signal("SIGCHLD")
                    return
                }
                Task { await dispatch(signal) }
            }
            for signal in early { await dispatch(signal) }
        }
        listeners.close()
        DoryLogging.flush()
        return code
    }
}

extension DoryRuntime {
    /// A workload hosting a `Processor` class.
    public static func processorWorkload<P: Processor>(_ type: P.Type) -> any Workload { ProcessorWorkload(type) }

    /// A workload for the function-style API (spec §3.7).
    public static func functionWorkload(
        states: [any AnyStateValue], _ body: @escaping @Sendable (ExecutionContext) async throws -> Void
    ) -> any Workload {
        ClosureWorkload(states: states, body: body)
    }
}

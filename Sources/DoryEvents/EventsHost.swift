import DoryKit
import Logging
import Synchronization

/// Runs the event workload under doryd's runtime, as `doryd events` and ``DoryEventsApp`` do: the configuration of
/// runtime §10 with the `events:` section (an invalid one exits 2), the runtime's lifecycle, signals, probes and
/// snapshots, the HTTP routes of the event pipeline, and captured output (§10.3) from the moment the configuration is
/// read until the runtime ends.
public enum EventsHost {
    /// Runs `application` until the runtime stops and returns the exit code (runtime §5.5). Install the signal
    /// router first thing in `main` (``SignalRouter/install(signals:)``); this call installs it too if needed.
    /// - Parameter flags: setting flags keyed by setting name (``SettingFlags/parse(_:allowEvents:)``).
    public static func run(flags: [String: String], application: any Application.Type) async -> Int32 {
        let capture = CaptureSlot()
        let code = await DoryRuntime.run(DoryRuntime.Launch(flags: flags, allowEvents: true)) { settings throws(ConfigError) in
            let workload = try EventWorkload.hosted(settings: settings, application: application,
                                                    flushCapturedOutput: { capture.value?.flush() })
            capture.value = OutputCapture.startOrWarn(Logger(label: "doryd.events"))
            return workload
        }
        capture.value?.stop()
        return code
    }
}

/// The capture, once started (set in the workload factory, read at each S16).
private final class CaptureSlot: Sendable {
    private let slot = Mutex<OutputCapture?>(nil)
    var value: OutputCapture? {
        get { slot.withLock { $0 } }
        set { slot.withLock { $0 = newValue } }
    }
}

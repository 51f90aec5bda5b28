import DoryEvents
import DoryKit
import DoryState
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The runtime's side of `doryd invoke` (event-pipeline.md §2.6): configuration as `doryd events` reads it, the
/// processor lock for the whole run, the newest valid generation loaded read-only, tag commits written as normal
/// generations (reason `api`, strategy `invoke`, restart count 0), then ``EventInvoke`` for the events themselves.
///
/// It is not a boot: no journal record, no recovery decision, no quarantine, no temp-file sweep, no queue, no port.
enum InvokeHost {
    /// Why the run stops before any event runs, with its exit code (§2.6) and the one-line reason for stderr (nil
    /// when it was already logged: configuration errors are one critical log line, as for `doryd events`).
    struct Refusal: Error {
        let code: Int32
        let reason: String?
    }

    /// Runs `doryd invoke` and returns its exit status. Summary lines go to standard output; a refusal's reason
    /// to standard error; logs to doryd's log stream.
    static func run(input: String, flags: [String: String]) async -> Int32 {
        DoryLogging.bootstrap()
        let code: Int32
        do throws(Refusal) {
            code = try await runChecked(input: input, flags: flags)
        } catch {
            DoryLogging.flush()
            if let reason = error.reason { StandardStreams.writeError("doryd invoke: \(reason)") }
            return error.code
        }
        DoryLogging.flush()
        return code
    }

    private static func runChecked(input: String, flags: [String: String]) async throws(Refusal) -> Int32 {
        let environment = ProcessEnvironment.current()
        let logger = Logger(label: "doryd.invoke")

        // Configuration: flags, DORY_* environment, the YAML file (with its events: section), defaults.
        let config: DoryConfig
        let identity = PodIdentity(environment: environment)
        let processorId: String
        let settings: EventSettings
        do throws(ConfigError) {
            config = try ConfigLoader(flags: flags, environment: environment, allowEvents: true).load()
            processorId = try ProcessorID.resolve(configured: config.processorId, environment: environment,
                                                  podName: identity.podName)
        } catch {
            throw Refusal(code: DoryRuntime.reportConfigError(error), reason: nil)
        }
        DoryLogging.setThreshold(config.logLevel)
        DoryLogging.setGlobalMetadata(key: "processor_id", value: processorId)
        DoryLogging.setGlobalMetadata(key: "pod", value: identity.podName)
        DoryLogging.setGlobalMetadata(key: "namespace", value: identity.namespace)
        for warning in config.warnings {
            Logger(label: "doryd.config").warning("\(warning)", metadata: ["event": "config.warning"])
        }
        do throws(EventsConfigError) {
            settings = try EventSettings(config: config, processorId: processorId, version: DoryKitVersion.version)
        } catch {
            let file = config.configFile.map { " (in \($0))" } ?? ""
            let invalid = ConfigError(setting: "events", source: nil, description: error.description + file)
            throw Refusal(code: DoryRuntime.reportConfigError(invalid), reason: nil)
        }
        for warning in settings.events.warnings { logger.warning("\(warning)") }

        // The processor directory (and `snapshots/`, where tag commits go) and its lock, held until this returns.
        let fileSystem = SystemFileSystem()
        let directory = SnapshotLayout.processorDirectory(stateDir: config.stateDir, processorId: processorId)
        do throws(FileSystemError) {
            try fileSystem.makeDirectories(directory)
            try fileSystem.makeDirectories(SnapshotLayout(processorDirectory: directory).snapshotsDirectory)
        } catch {
            throw Refusal(code: ExitCode.stateError, reason: "state directory unusable: \(error)")
        }
        let lock: ProcessorLock
        do throws(ProcessorLockError) {
            lock = try ProcessorLock.acquire(processorDirectory: directory, fileSystem: fileSystem)
        } catch {
            switch error {
            case .heldByAnotherProcess(let path):
                throw Refusal(code: ExitCode.stateError,
                              reason: "\(path) is held by a running doryd; use POST /v1/events?wait=true instead")
            case .failed(let failure):
                throw Refusal(code: ExitCode.stateError, reason: "state directory unusable: \(failure)")
            }
        }
        defer { lock.release() }

        let store = SnapshotStore(
            processorDirectory: directory, processorID: processorId, keep: config.snapshotKeep,
            compressionLevel: config.snapshotLevel, maxRawBytes: config.snapshotMaxBytes,
            quarantineKeep: config.quarantineKeep, fileSystem: fileSystem)
        let initialState = try loadNewestValid(store.reader, logger: logger)
        try raiseHighWaterMark(store, fileSystem: fileSystem)

        let writer = InvokeGenerationWriter(store: store, identity: identity, logger: Logger(label: "doryd.snapshot"))
        // §10.3: the application's standard output and error go to the log stream while the events run; the
        // summary lines are written after the capture ends, to the restored standard output.
        let capture = OutputCapture.startOrWarn(logger)
        var flushCaptured: (@Sendable () -> Void)?
        if let capture { flushCaptured = { capture.flush() } }
        let invoke = EventInvoke(settings: settings, initialState: initialState, persist: { state in
            try writer.write(state)
        }, flushCapturedOutput: flushCaptured)
        let outcome = await runStoppable(invoke, input: input, logger: logger)
        capture?.stop()
        for line in outcome.summaries { StandardStreams.writeOutput(line) }
        if let error = outcome.error { throw Refusal(code: outcome.exitCode, reason: error) }
        return outcome.exitCode
    }

    // MARK: Pieces

    /// The checks of runtime §6.4, newest first, moving nothing: a damaged (or unreadable) generation is logged and
    /// skipped. No generation → nil (empty state); generations but none valid → exit 4.
    static func loadNewestValid(_ reader: SnapshotReader, logger: Logger) throws(Refusal) -> JSONObject? {
        let generations: [Int64]
        do throws(FileSystemError) {
            generations = try reader.generations()
        } catch where error.errno == ENOENT {
            return nil
        } catch {
            throw Refusal(code: ExitCode.stateError, reason: "state directory unusable: \(error)")
        }
        var skipped = 0
        for generation in generations {
            let report = reader.inspect(generation: generation)
            switch report.result {
            case .valid(let envelope, _):
                logger.info("state loaded", metadata: [
                    "event": "invoke.state_loaded", "generation": .stringConvertible(generation),
                    "skipped": .stringConvertible(skipped),
                ])
                return envelope.state
            case .missing:
                continue
            case .damaged(let defect):
                skipped += 1
                logger.warning("damaged snapshot skipped (left in place)", metadata: [
                    "event": "snapshot.skipped", "file": .string(report.path), "reason": .string(defect.reason),
                    "size": .stringConvertible(report.compressedBytes ?? 0), "detail": .string(defect.message),
                ])
            case .unreadable(let failure):
                skipped += 1
                logger.warning("unreadable snapshot skipped (left in place)", metadata: [
                    "event": "snapshot.skipped", "file": .string(report.path), "reason": "unreadable",
                    "detail": .string(failure.description),
                ])
            }
        }
        if skipped == 0 { return nil }
        throw Refusal(code: ExitCode.stateError,
                      reason: "no valid generation in \(reader.layout.snapshotsDirectory) (\(skipped) damaged; "
                          + "nothing was run; a doryd boot sets damaged files aside)")
    }

    /// Generation numbers (runtime §6.2): 1 + the larger of the journal's high-water mark and the highest number
    /// named under `snapshots/`, `quarantine/` or `archive/`. The journal is only read.
    static func raiseHighWaterMark(_ store: SnapshotStore, fileSystem: any FileSystem) throws(Refusal) {
        do throws(FileSystemError) {
            let records = try RestartJournal.readRecords(path: store.layout.journalPath, fileSystem: fileSystem)
            let history = RestartHistory.analyze(records: records, currentBootID: nil, nowMillis: WallClock.nowMillis(),
                                                 podUID: nil, windowMillis: 0, threshold: Int.max)
            store.raiseHighWaterMark(to: history.generationHighWaterMark)
            try store.scanHighWaterMark()
        } catch {
            throw Refusal(code: ExitCode.stateError, reason: "state directory unusable: \(error)")
        }
    }

    /// Runs the events; SIGTERM or SIGINT cancels the run (the running invocation is abandoned, the summaries of
    /// the finished ones are still printed, exit 1); a second one exits at once.
    private static func runStoppable(_ invoke: EventInvoke, input: String, logger: Logger) async -> EventInvoke.Outcome {
        let task = Task { await invoke.runDetailed(file: input) }
        let stops = Atomic<Int>(0)
        let router = SignalRouter.install()
        let early = router.attach { signal in
            guard signal == SIGTERM || signal == SIGINT else { return }
            if stops.add(1, ordering: .relaxed).newValue > 1 {
                DoryLogging.flush()
                exit(ExitCode.runFailed)
            }
            logger.warning("stopped by \(SignalRouter.name(signal)); the running invocation is abandoned (a second signal exits at once)",
                           metadata: ["event": "invoke.stopped"])
            task.cancel()
        }
        if early.contains(where: { $0 == SIGTERM || $0 == SIGINT }) {
            stops.add(1, ordering: .relaxed)
            task.cancel()
        }
        var outcome = await task.value
        if stops.load(ordering: .relaxed) > 0, outcome.error == nil { outcome.exitCode = ExitCode.runFailed }
        return outcome
    }
}

/// Writes a tag commit's state as a normal generation through the store's §6.3 protocol (retention included), with
/// reason `api`, strategy `invoke` and restart count 0; logs it as the daemon's snapshot coordinator does.
struct InvokeGenerationWriter: Sendable {
    let store: SnapshotStore
    let identity: PodIdentity
    let logger: Logger

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    func write(_ state: JSONObject) throws -> UInt64 {
        let content = SnapshotContent(
            podName: identity.podName, namespace: identity.namespace, reason: "api", restartCount: 0,
            strategy: "invoke", state: state, dorydVersion: DoryKitVersion.version)
        let result: SnapshotWriteResult
        do throws(SnapshotWriteError) {
            result = try store.write(content)
        } catch {
            logger.error("snapshot failed", metadata: [
                "event": "snapshot.failed", "reason": "api", "step": .string(error.step.rawValue),
                "error": .errorValue(type: "save_failed", message: error.errnoText),
            ])
            throw Failure(description: "\(error.step.rawValue): \(error.errnoText)")
        }
        logger.info("snapshot saved", metadata: [
            "event": "snapshot.saved", "generation": .stringConvertible(result.generation), "reason": "api",
            "raw_bytes": .stringConvertible(result.rawBytes), "compressed_bytes": .stringConvertible(result.compressedBytes),
            "duration_ms": .stringConvertible((result.durationMillis * 1000).rounded() / 1000),
        ])
        for failure in result.pruneErrors {
            logger.warning("old snapshot could not be deleted", metadata: [
                "event": "snapshot.prune_failed", "error": .string(failure.description),
            ])
        }
        return UInt64(result.generation)
    }
}

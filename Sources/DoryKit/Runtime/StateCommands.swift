import DoryState

/// `doryd state ls|show|verify|export|import` (spec §6.8): the operator's view of one processor's snapshots.
/// `ls`, `show`, `verify` and `export` take no lock and change no file; `import` takes the processor lock.
public enum StateCommands {
    public enum Command: Sendable {
        case ls(json: Bool)
        case show(generation: Int64?)
        case verify(generation: Int64?)
        case export(generation: Int64?, envelope: Bool)
        case importFile(path: String)
    }

    /// Runs a command; returns the exit code of §6.8.
    public static func run(_ command: Command, flags: [String: String]) -> Int32 {
        let environment = ProcessEnvironment.current()
        let config: DoryConfig
        let processorId: String
        let identity = PodIdentity(environment: environment)
        do throws(ConfigError) {
            config = try ConfigLoader(flags: flags, environment: environment).load()
            processorId = try ProcessorID.resolve(configured: config.processorId, environment: environment, podName: identity.podName)
        } catch {
            return DoryRuntime.reportConfigError(error)
        }
        let directory = SnapshotLayout.processorDirectory(stateDir: config.stateDir, processorId: processorId)
        let fileSystem = SystemFileSystem()
        if case .importFile(let path) = command {
            return importReferenceFile(path, directory: directory, processorId: processorId, identity: identity, config: config)
        }
        guard (try? fileSystem.status(directory)) ?? nil != nil else {
            StandardStreams.writeError("doryd state: no processor directory \(directory)")
            return 1
        }
        let reader = SnapshotReader(processorDirectory: directory, processorID: processorId, maxRawBytes: config.snapshotMaxBytes)
        switch command {
        case .ls(let json): return list(reader, json: json)
        case .show(let generation): return show(reader, generation, whole: true, pretty: true)
        case .export(let generation, let envelope): return show(reader, generation, whole: envelope, pretty: false)
        case .verify(let generation): return verify(reader, generation)
        case .importFile: return 2
        }
    }

    private static func reports(_ reader: SnapshotReader) -> [SnapshotFileReport]? {
        do throws(FileSystemError) {
            return try reader.inspectAll().sorted { $0.generation > $1.generation }
        } catch {
            StandardStreams.writeError("doryd state: \(error)")
            return nil
        }
    }

    private static func list(_ reader: SnapshotReader, json: Bool) -> Int32 {
        guard let reports = reports(reader) else { return 1 }
        let now = WallClock.nowMillis()
        for report in reports {
            if case .missing = report.result { continue }
            let envelope = report.envelope
            let savedAt = envelope.flatMap { WallClock.parseRFC3339($0.savedAt) } ?? report.modifiedMillis ?? now
            let ageSec = max(0, Double(now - savedAt) / 1000)
            var raw: Int?
            if case .valid(_, let rawBytes) = report.result { raw = rawBytes }
            let problem = Self.problem(report)
            if json {
                var object: JSONObject = [
                    "generation": .int(report.generation),
                    "saved_at": envelope.map { .string($0.savedAt) } ?? .null,
                    "reason": envelope.map { .string($0.reason) } ?? .null,
                    "raw_bytes": raw.map { .int(Int64($0)) } ?? .null,
                    "compressed_bytes": report.compressedBytes.map { .int(Int64($0)) } ?? .null,
                    "age_sec": .double((ageSec * 1000).rounded() / 1000),
                ]
                if let problem { object["error"] = .string(problem) }
                StandardStreams.writeOutput(String(decoding: (try? JSON.encode(.object(object))) ?? [], as: UTF8.self))
            } else {
                let what = problem.map { "\($0)" } ?? "\(envelope?.savedAt ?? "-")  \(envelope?.reason ?? "-")"
                StandardStreams.writeOutput(
                    "\(report.generation)  \(what)  raw=\(raw.map(String.init) ?? "-")  compressed=\(report.compressedBytes.map(String.init) ?? "-")  age=\(ageText(ageSec))")
            }
        }
        return 0
    }

    private static func show(_ reader: SnapshotReader, _ generation: Int64?, whole: Bool, pretty: Bool) -> Int32 {
        let report: SnapshotFileReport
        if let generation {
            report = reader.inspect(generation: generation)
        } else {
            guard let reports = reports(reader) else { return 1 }
            guard let newest = reports.first(where: \.isValid) else {
                StandardStreams.writeError("doryd state: no valid generation")
                return 1
            }
            report = newest
        }
        guard let envelope = report.envelope else {
            StandardStreams.writeError("doryd state: generation \(report.generation): \(problem(report) ?? "missing")")
            return 1
        }
        let value: JSONValue = whole ? envelope.jsonValue : .object(envelope.state)
        do throws(JSONEncodeError) {
            StandardStreams.writeOutput(pretty ? try JSON.encodePretty(value) : String(decoding: try JSON.encode(value), as: UTF8.self))
        } catch {
            StandardStreams.writeError("doryd state: \(error.message)")
            return 1
        }
        return 0
    }

    private static func verify(_ reader: SnapshotReader, _ generation: Int64?) -> Int32 {
        let list: [SnapshotFileReport]
        if let generation {
            list = [reader.inspect(generation: generation)]
        } else {
            guard let all = reports(reader) else { return 1 }
            list = all
        }
        var failed = false
        for report in list {
            let problem = problem(report)
            if problem != nil { failed = true }
            StandardStreams.writeOutput("\(report.generation) \(problem ?? "ok")")
        }
        return failed ? 1 : 0
    }

    /// The §6.4 reason of a damaged file, `missing`, or `unreadable: …`; nil when valid.
    static func problem(_ report: SnapshotFileReport) -> String? {
        switch report.result {
        case .valid: nil
        case .damaged(let error): error.reason
        case .missing: "missing"
        case .unreadable(let error): "unreadable: \(error.errnoText)"
        }
    }

    static func ageText(_ seconds: Double) -> String {
        let s = Int(seconds)
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(s % 60)s" }
        if s < 86400 { return "\(s / 3600)h\((s % 3600) / 60)m" }
        return "\(s / 86400)d\((s % 86400) / 3600)h"
    }

    // MARK: import (§6.7)

    private static func importReferenceFile(
        _ path: String, directory: String, processorId: String, identity: PodIdentity, config: DoryConfig
    ) -> Int32 {
        let fileSystem = SystemFileSystem()
        let bytes: [UInt8]
        do throws(FileSystemError) {
            bytes = try fileSystem.readWholeFile(path, maxBytes: config.snapshotMaxBytes)
        } catch {
            StandardStreams.writeError("doryd state import: cannot read \(path): \(error.errnoText)")
            return 4
        }
        let payload: JSONObject
        switch ReferenceStateFile.verify(bytes) {
        case .failure(let message):
            StandardStreams.writeError("doryd state import: \(path): \(message); nothing written")
            return 4
        case .success(let object):
            payload = object
        }
        do {
            try fileSystem.makeDirectories(directory)
            let lock = try ProcessorLock.acquire(processorDirectory: directory, fileSystem: fileSystem)
            defer { lock.release() }
            let store = SnapshotStore(
                processorDirectory: directory, processorID: processorId, keep: config.snapshotKeep,
                compressionLevel: config.snapshotLevel, maxRawBytes: config.snapshotMaxBytes,
                quarantineKeep: config.quarantineKeep, fileSystem: fileSystem)
            _ = try store.prepareDirectories()
            let journalPath = directory + "/boots.jsonl"
            if (try? fileSystem.status(journalPath)) ?? nil != nil {
                let records = (try? RestartJournal.readRecords(path: journalPath, fileSystem: fileSystem)) ?? []
                let hwm = RestartHistory.analyze(records: records, currentBootID: nil, nowMillis: WallClock.nowMillis(), podUID: nil,
                                                 windowMillis: 0, threshold: Int.max).generationHighWaterMark
                store.raiseHighWaterMark(to: hwm)
            }
            _ = try store.scanHighWaterMark()
            let result = try store.write(SnapshotContent(
                podName: identity.podName, namespace: identity.namespace, reason: "transfer", restartCount: 0,
                strategy: "import", state: payload))
            StandardStreams.writeOutput("imported \(path) as generation \(result.generation) (\(result.rawBytes) bytes)")
            return 0
        } catch {
            StandardStreams.writeError("doryd state import: \(error)")
            return 4
        }
    }
}

/// The reference Python SDK's state file: `{"payload": {…}, "metadata": {…}, "checksum": "<sha256 hex>"}` where the
/// checksum covers Python's `json.dumps(payload, sort_keys=True)` (spec §6.7).
public enum ReferenceStateFile {
    public enum Verdict: Sendable {
        case success(JSONObject)
        case failure(String)
    }

    public static func verify(_ bytes: [UInt8]) -> Verdict {
        let parsed: JSONValue
        do throws(JSONParseError) {
            parsed = try JSON.parse(bytes)
        } catch {
            return .failure("not JSON (\(error.message) at byte \(error.offset))")
        }
        guard case .object(let envelope) = parsed else { return .failure("not a JSON object") }
        guard let payloadValue = envelope["payload"] else { return .failure("missing member \"payload\"") }
        guard case .object(let payload) = payloadValue else { return .failure("\"payload\" is not an object") }
        guard envelope["metadata"] != nil else { return .failure("missing member \"metadata\"") }
        guard case .string(let checksum)? = envelope["checksum"] else { return .failure("missing member \"checksum\"") }
        let canonical: String
        do throws(JSONEncodeError) {
            canonical = try JSON.canonicalPythonText(payloadValue)
        } catch {
            return .failure("payload cannot be hashed: \(error.message)")
        }
        let actual = SHA256.hex(Array(canonical.utf8))
        guard actual == checksum.lowercased() else {
            return .failure("checksum mismatch: the file says \(checksum), the payload hashes to \(actual)")
        }
        return .success(payload)
    }
}

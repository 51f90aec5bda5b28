import DoryHTTP
import DoryState
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `doryd prestop` (spec §4.7): `POST /prestop` over the local control socket, for `exec` preStop hooks.
/// Resolves the socket as the daemon does; waits with no limit of its own (the kubelet bounds the hook).
public enum PrestopClient {
    /// Prints the 200 body on standard output and returns 0; otherwise prints the reason on standard error
    /// and returns 1 (2 for a configuration error).
    public static func run(flags: [String: String]) -> Int32 {
        let environment = ProcessEnvironment.current()
        let config: DoryConfig
        let processorId: String
        do throws(ConfigError) {
            config = try ConfigLoader(flags: flags, environment: environment).load()
            processorId = try ProcessorID.resolve(
                configured: config.processorId, environment: environment, podName: PodIdentity(environment: environment).podName)
        } catch {
            StandardStreams.writeError("doryd prestop: \(error.description)")
            return ExitCode.invalidConfiguration
        }
        let directory = SnapshotLayout.processorDirectory(stateDir: config.stateDir, processorId: processorId)
        let address = ControlSocketAddress.resolve(configured: config.controlSocket, processorDirectory: directory)
        let destination: HTTPClient.Destination = switch address {
        case .path(let path): .unix(path: path)
        case .abstract(let name, _): .abstract(name: name)
        }
        do throws(HTTPClientError) {
            let response = try HTTPClient.request(method: "POST", path: "/prestop", to: destination, timeout: .seconds(86_400))
            guard response.status == 200 else {
                StandardStreams.writeError("doryd prestop: HTTP \(response.status): \(response.text)")
                return 1
            }
            StandardStreams.writeOutput(response.text)
            return 0
        } catch {
            StandardStreams.writeError("doryd prestop: cannot reach the control socket \(address): \(error.description)")
            return 1
        }
    }
}

/// Whole-line writes to standard output and error, without Foundation.
public enum StandardStreams {
    public static func writeOutput(_ text: String) { write(1, text) }
    public static func writeError(_ text: String) { write(2, text) }

    /// The text and a newline (unless it ends in one), written whole (``LogStream/writeAll(_:to:)``).
    private static func write(_ fd: Int32, _ text: String) {
        LogStream.writeAll(Array((text.hasSuffix("\n") ? text : text + "\n").utf8), to: fd)
    }
}

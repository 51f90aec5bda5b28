import DoryState
import Glibc
import Testing

/// §12 case 80: a control socket path too long for `sun_path` becomes a Linux abstract socket.
@Suite struct ControlSocketTests {
    // Case 80: DORY_CONTROL_SOCKET set to a 150-byte path → an abstract socket, one INFO line, nothing on disk, and
    // `doryd prestop` with the same setting reaches it; with no doryd running `doryd prestop` → exit 1.
    @Test func case80_longPathBecomesAnAbstractSocket() throws {
        try withSandbox { sandbox in
            let directory = sandbox.path("sockets")
            let longPath = directory + "/" + String(repeating: "s", count: max(1, 150 - directory.utf8.count - 1))
            #expect(longPath.utf8.count == 150)
            let daemon = try sandbox.launch(.demo(["DORY_CONTROL_SOCKET": longPath]))
            try daemon.waitReady()
            let abstract = daemon.events("control.abstract")
            #expect(abstract.count == 1 && abstract.first?["level"]?.string == "info", "\(daemon.logTail)")
            let name = abstract.first?["name"]?.string ?? ""
            #expect(name.hasPrefix("@dory-") && name.count == 38, "abstract name \(name)")
            #expect(!Files.exists(longPath), "a file was created at the long path")
            #expect(daemon.events("control.listening").isEmpty)

            var environment = sandbox.baseEnvironment()
            environment["DORY_CONTROL_SOCKET"] = longPath
            let client = try sandbox.spawn(try Binaries.doryd(), ["prestop", "--state-dir", daemon.stateDir],
                                           environment: environment, captureStdout: true)
            let exit = client.waitForExit(timeout: .seconds(10))
            _ = Poll.until(timeout: .seconds(2)) { client.stdout!.isClosed }
            #expect(exit?.code == 0, "doryd prestop: \(String(describing: exit)); stderr: \(client.stderr.text)")
            #expect(JSON.object(client.stdout!.text.trimmingASCIIWhitespace())?["status"]?.string == "saved")
            #expect(daemon.status("/ready") == 503)
            #expect(try daemon.stop().code == 0)

            let orphan = try sandbox.spawn(try Binaries.doryd(), ["prestop", "--state-dir", daemon.stateDir],
                                           environment: environment, captureStdout: true)
            #expect(orphan.waitForExit(timeout: .seconds(10))?.code == 1)
        }
    }
}

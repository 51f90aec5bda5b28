import DoryState
import Glibc
import Testing

extension RunModeTests {
    /// `doryd run` exit status, exec failures and option errors (spec/supervise.md §4, §2.5, §12 cases 1–12).
    @Suite("Run mode: exit status")
    struct RunModeExitTests {
        struct Case: CustomTestStringConvertible, Sendable {
            let script: String
            var options: [String] = []
            let exit: Int32
            var testDescription: String { "sh -c '\(script)' \(options.joined(separator: " ")) → \(exit)" }
        }

        static let cases: [Case] = [
            Case(script: "exit 0", exit: 0),
            Case(script: "exit 1", exit: 1),
            Case(script: "exit 2", exit: 2),
            Case(script: "exit 127", exit: 127),
            Case(script: "exit 255", exit: 255),
            Case(script: "kill -KILL $$", exit: 137),
            Case(script: "kill -SEGV $$", exit: 139),
            Case(script: "kill -TERM $$", exit: 143),
            Case(script: "kill -TERM $$", options: ["--success-exit-codes=0,143"], exit: 0),
            Case(script: "exit 1", options: ["--success-exit-codes=0,1"], exit: 0),
        ]

        @Test("the child's status is doryd's; a child ending on its own never makes a clean boot", arguments: cases)
        func childStatus(_ c: Case) throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchRun(.sh(c.script, options: c.options))
                let status = try daemon.waitForExit()
                #expect(status.code == c.exit, "\(daemon.logTail)")
                #expect(daemon.lastEndRecord?["clean"]?.bool == false)
                #expect(daemon.exitLine?["source"]?.string == "child")
                #expect(daemon.records.contains { $0["msg"]?.string == "child exited" })
                #expect(!daemon.records.contains { $0["msg"]?.string == "cannot execute command" })
            }
        }

        struct ExecCase: CustomTestStringConvertible, Sendable {
            let name: String
            let exit: Int32
            let errno: Int64
            var testDescription: String { "\(name) → \(exit) (errno \(errno))" }
        }

        @Test("exec failures: 127 when not found, 126 when not executable; one ERROR line, no journal crash loop",
              arguments: [
                  ExecCase(name: "missing path", exit: 127, errno: 2),
                  ExecCase(name: "PATH search", exit: 127, errno: 2),
                  ExecCase(name: "mode 0644", exit: 126, errno: 13),
                  ExecCase(name: "directory", exit: 126, errno: 13),
              ])
        func execFailure(_ c: ExecCase) throws {
            try withSandbox { sandbox in
                let command: String
                switch c.name {
                case "missing path": command = sandbox.path("no/such/file")
                case "PATH search": command = "dory-no-such-command"
                case "mode 0644": command = sandbox.write("plain.sh", "#!/bin/sh\nexit 0\n")
                default: command = sandbox.makeDirectory("adir")
                }
                let daemon = try sandbox.launchRun(RunLaunch([command]))
                let status = try daemon.waitForExit()
                #expect(status.code == c.exit, "\(daemon.logTail)")
                let errors = daemon.records.filter { $0["level"]?.string == "error" }
                #expect(errors.count == 1, "\(errors)")
                let line = try #require(errors.first)
                #expect(line["msg"]?.string == "cannot execute command")
                #expect(line["path"]?.string == command)
                #expect(line["errno"]?.string == "\(c.errno)" || line["errno"]?.int == c.errno)
                #expect(daemon.lastEndRecord?["clean"]?.bool == false)
                #expect(daemon.generations().isEmpty)
            }
        }

        @Test("option errors exit 2 with one line naming the option; nothing spawned, no journal record",
              arguments: [["--ready=maybe"], ["--success-exit-codes=256"], ["--stop-signal=KILL"], ["--restart-budget=0"], ["--no-such-option"]])
        func optionErrors(_ options: [String]) throws {
            try withSandbox { sandbox in
                var launch = RunLaunch(["/bin/sh", "-c", "touch ran"], options: options)
                launch.waitForListening = false
                let daemon = try sandbox.launchRun(launch)
                let status = try daemon.waitForExit()
                #expect(status.code == 2)
                let name = options[0].split(separator: "=")[0]
                #expect(daemon.records.contains { $0["level"]?.string == "critical" && ($0["msg"]?.string ?? "").contains(name) }, "\(daemon.logTail)")
                #expect(!Files.exists(daemon.journalPath))
            }
        }

        @Test("nothing after -- exits 2")
        func noCommand() throws {
            try withSandbox { sandbox in
                var launch = RunLaunch([])
                launch.waitForListening = false
                let daemon = try sandbox.launchRun(launch)
                #expect(try daemon.waitForExit().code == 2)
            }
        }
    }
}

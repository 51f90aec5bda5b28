import DoryState
import Glibc
import Testing

extension RunModeTests {
    /// The journal end record names the last child's status and who decided the exit code, with the same values as
    /// the last log line (spec/supervise.md §4, §8.3); other workloads write neither member.
    @Suite("Run mode: end record child_status and source")
    struct RunModeEndRecordTests {
        /// The end record's and the `doryd exiting` line's `child_status` (nil: null) and `source`.
        static func expectEnd(_ daemon: Daemon, status: Int64?, source: String, sourceLocation: SourceLocation = #_sourceLocation) {
            let end = daemon.lastEndRecord
            let line = daemon.exitLine
            for (what, record) in [("end record", end), ("exit line", line)] {
                #expect(record?["source"]?.string == source, "\(what): \(String(describing: record))", sourceLocation: sourceLocation)
                if let status {
                    #expect(record?["child_status"]?.int == status, "\(what): \(String(describing: record))", sourceLocation: sourceLocation)
                } else {
                    #expect(record?["child_status"]?.isNull == true, "\(what): \(String(describing: record))", sourceLocation: sourceLocation)
                }
            }
        }

        @Test("§4: a child exiting 3 on its own → child_status 3, source child; mapped by --success-exit-codes → still 1")
        func childOnItsOwn() throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchRun(.sh("exit 3"))
                #expect(try daemon.waitForExit().code == 3, "\(daemon.logTail)")
                Self.expectEnd(daemon, status: 3, source: "child")
                #expect(daemon.lastEndRecord?["exit_code"]?.int == 3)
            }
            try withSandbox { sandbox in
                let daemon = try sandbox.launchRun(.sh("exit 1", options: ["--success-exit-codes=0,1"]))
                #expect(try daemon.waitForExit().code == 0, "\(daemon.logTail)")
                Self.expectEnd(daemon, status: 1, source: "child")
            }
        }

        @Test("§4: after a SIGTERM stop the child's status is recorded with source child; the boot is clean")
        func stopSignalled() throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchRun(.sh("trap 'exit 7' TERM; \(Acceptance.idle)"))
                try daemon.waitReady()
                #expect(try daemon.stop().code == 7, "\(daemon.logTail)")
                Self.expectEnd(daemon, status: 7, source: "child")
                #expect(daemon.lastEndRecord?["clean"]?.bool == true)
            }
        }

        @Test("§4: doryd's own codes: 127 for a missing command (no child: null), 3 for a missed readiness deadline")
        func dorydDecides() throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launchRun(RunLaunch([sandbox.path("no/such/file")]))
                #expect(try daemon.waitForExit().code == 127, "\(daemon.logTail)")
                Self.expectEnd(daemon, status: nil, source: "doryd")
            }
            try withSandbox { sandbox in
                let daemon = try sandbox.launchRun(RunLaunch(["sleep", "300"], options: ["--ready=api"], environment: ["DORY_STARTUP_TIMEOUT_SEC": "1"]))
                #expect(try daemon.waitForExit().code == 3, "\(daemon.logTail)")
                Self.expectEnd(daemon, status: 143, source: "doryd")
            }
        }

        @Test("the end record of another workload (doryd demo) has neither child_status nor source")
        func otherWorkloadsWriteNeither() throws {
            try withSandbox { sandbox in
                let daemon = try sandbox.launch()
                try daemon.waitReady()
                #expect(try daemon.stop().code == 0, "\(daemon.logTail)")
                let end = try #require(daemon.lastEndRecord, "\(daemon.journal())")
                #expect(end["child_status"] == nil && end["source"] == nil, "\(end)")
            }
        }
    }
}

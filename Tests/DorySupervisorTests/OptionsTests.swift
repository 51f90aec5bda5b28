import Glibc
import Testing

@testable import DorySupervisor

@Suite("Options (§11) and the in-pod restart policy (§9)")
struct OptionsTests {
    @Test("defaults and a full command line")
    func parse() throws {
        let (defaults, command) = try RunOptions().parsingCommandLine(["--", "sh", "-c", "exit 0"])
        #expect(command == ["sh", "-c", "exit 0"])
        #expect(defaults == RunOptions())
        #expect(defaults.readyMode == .started && defaults.restartBudget == 5 && defaults.restartWindowSeconds == 300)
        let (options, cmd) = try RunOptions().parsingCommandLine([
            "--ready=notify", "--heartbeat-timeout", "2.5", "--signal-child-only", "--forward-usr1=false",
            "--stop-signal=sigquit", "--success-exit-codes=143, 1", "--restart=on-failure", "--restart-budget=2",
            "--restart-window=60", "--workdir=/tmp", "--control-socket=/tmp/c.sock", "--", "prog", "--ready=x",
        ])
        #expect(cmd == ["prog", "--ready=x"])
        #expect(options.readyMode == .notify && options.heartbeatTimeoutMillis == 2500)
        #expect(options.signalChildOnly && !options.forwardUSR1)
        #expect(options.stopSignal == SIGQUIT && options.stopSignal(forReceived: SIGINT) == SIGQUIT)
        #expect(options.successExitCodes.codes == [0, 1, 143])
        #expect(options.restartPolicy == .onFailure && options.restartBudget == 2 && options.restartWindowSeconds == 60)
        #expect(options.workdir == "/tmp" && options.controlSocket == "/tmp/c.sock")
        #expect(RunOptions().stopSignal(forReceived: SIGINT) == SIGINT)
        #expect(SignalNames.number("15") == SIGTERM && SignalNames.number("Term") == SIGTERM && SignalNames.number("65") == nil)
    }

    @Test("invalid options: one line naming the option", arguments: [
        ([], "--"), (["--"], "--"), (["--ready=maybe", "--", "x"], "--ready"),
        (["--success-exit-codes=256", "--", "x"], "--success-exit-codes"), (["--stop-signal=KILL", "--", "x"], "--stop-signal"),
        (["--stop-signal=cont", "--", "x"], "--stop-signal"), (["--restart-budget=0", "--", "x"], "--restart-budget"),
        (["--heartbeat-timeout=0.05", "--", "x"], "--heartbeat-timeout"), (["--heartbeat-timeout=3601", "--", "x"], "--heartbeat-timeout"),
        (["--restart=always", "--", "x"], "--restart"), (["--restart-window=0", "--", "x"], "--restart-window"),
        (["--workdir=/no/such/dir", "--", "x"], "--workdir"), (["--workdir=/etc/hostname", "--", "x"], "--workdir"),
        (["--bogus", "--", "x"], "--bogus"), (["cmd"], "cmd"), (["--ready"], "--ready"),
    ])
    func invalid(arguments: [String], option: String) {
        do {
            _ = try RunOptions().parsingCommandLine(arguments)
            Issue.record("accepted \(arguments)")
        } catch {
            #expect(error.option == option)
            #expect(error.description.hasPrefix(option) && !error.description.contains("\n"))
        }
        #expect(RunOptionError.exitCode == 2)
    }

    @Test("33 success codes are too many; the heartbeat has millisecond resolution")
    func limits() throws {
        var options = RunOptions()
        #expect(throws: RunOptionError.self) {
            try options.set(.successExitCodes, to: (0...32).map(String.init).joined(separator: ","))
        }
        try options.set(.heartbeatTimeout, to: "0.1234", writtenAs: "DORY_HEARTBEAT_TIMEOUT_SEC")
        #expect(options.heartbeatTimeoutMillis == 123)
        #expect(throws: RunOptionError(option: "DORY_READY", message: "invalid value \"x\": expected started, api or notify")) {
            try options.set(.ready, to: "x", writtenAs: "DORY_READY")
        }
    }

    @Test("backoff 1, 2, 4, 8, 16, 30, 30 and the budget")
    func restartPolicy() {
        #expect((0...7).map { RestartPolicy.delay(restartsInWindow: $0) } == [1, 2, 4, 8, 16, 30, 30, 30])
        var policy = RestartPolicy(kind: .onFailure, budget: 2, windowSeconds: 300)
        #expect(policy.decide(.onItsOwn(mappedStatus: 3), now: 0) == .restart(delaySeconds: 1, number: 1, budgetLeft: 1))
        #expect(policy.decide(.onItsOwn(mappedStatus: 3), now: 1) == .restart(delaySeconds: 2, number: 2, budgetLeft: 0))
        #expect(policy.decide(.onItsOwn(mappedStatus: 3), now: 3) == .budgetSpent)
        // Outside the window the budget is back.
        #expect(policy.decide(.onItsOwn(mappedStatus: 1), now: 400) == .restart(delaySeconds: 1, number: 3, budgetLeft: 1))
        #expect(policy.decide(.onItsOwn(mappedStatus: 0), now: 401) == .end)
        #expect(policy.decide(.spawnFailed, now: 402) == .end)
        #expect(policy.decide(.duringStop, now: 403) == .end)
        var never = RestartPolicy(kind: .never)
        #expect(never.decide(.onItsOwn(mappedStatus: 1), now: 0) == .end)
        #expect(RestartPolicy(options: RunOptions()).budget == 5)
    }
}

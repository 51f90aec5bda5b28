import Glibc

/// `--ready=MODE` (spec/supervise.md §7.1).
public enum ReadyMode: String, Sendable, CaseIterable {
    /// Ready once `posix_spawnp` succeeded.
    case started
    /// Ready once the child called `POST /v1/ready`.
    case api
    /// Ready once the child sent `READY=1` to its `NOTIFY_SOCKET`.
    case notify
}

/// `--restart=POLICY` (spec/supervise.md §9).
public enum RestartPolicyKind: String, Sendable, CaseIterable {
    case never
    case onFailure = "on-failure"
}

/// One setting of `doryd run` (spec/supervise.md §11): its flag, its configuration key and its variable.
public enum RunSetting: String, Sendable, CaseIterable {
    case ready, heartbeatTimeout, signalChildOnly, forwardUSR1, stopSignal, successExitCodes
    case restart, restartBudget, restartWindow, workdir, controlSocket

    /// The command-line flag, without a value (`--ready`).
    public var flag: String {
        switch self {
        case .ready: "--ready"
        case .heartbeatTimeout: "--heartbeat-timeout"
        case .signalChildOnly: "--signal-child-only"
        case .forwardUSR1: "--forward-usr1"
        case .stopSignal: "--stop-signal"
        case .successExitCodes: "--success-exit-codes"
        case .restart: "--restart"
        case .restartBudget: "--restart-budget"
        case .restartWindow: "--restart-window"
        case .workdir: "--workdir"
        case .controlSocket: "--control-socket"
        }
    }

    /// The YAML key / setting name (`ready_mode`).
    public var settingName: String {
        switch self {
        case .ready: "ready_mode"
        case .heartbeatTimeout: "heartbeat_timeout_sec"
        case .signalChildOnly: "signal_child_only"
        case .forwardUSR1: "forward_usr1"
        case .stopSignal: "stop_signal"
        case .successExitCodes: "success_exit_codes"
        case .restart: "restart_policy"
        case .restartBudget: "restart_budget"
        case .restartWindow: "restart_window_sec"
        case .workdir: "workdir"
        case .controlSocket: "control_socket"
        }
    }

    /// The environment variable (`DORY_READY`).
    public var environmentVariable: String {
        switch self {
        case .ready: "DORY_READY"
        case .heartbeatTimeout: "DORY_HEARTBEAT_TIMEOUT_SEC"
        case .signalChildOnly: "DORY_SIGNAL_CHILD_ONLY"
        case .forwardUSR1: "DORY_FORWARD_USR1"
        case .stopSignal: "DORY_STOP_SIGNAL"
        case .successExitCodes: "DORY_SUCCESS_EXIT_CODES"
        case .restart: "DORY_RESTART"
        case .restartBudget: "DORY_RESTART_BUDGET"
        case .restartWindow: "DORY_RESTART_WINDOW_SEC"
        case .workdir: "DORY_WORKDIR"
        case .controlSocket: "DORY_CONTROL_SOCKET"
        }
    }

    /// Whether the flag takes no value (`--signal-child-only`); `--flag=true|false` is accepted too.
    public var isSwitch: Bool { self == .signalChildOnly || self == .forwardUSR1 }
}

/// An invalid option of `doryd run`: one line naming it; doryd exits 2 (spec/supervise.md §11, §12 case 12).
public struct RunOptionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The flag, setting or variable as the user wrote it (`--ready`, `DORY_READY`), or `--` for a missing command.
    public let option: String
    public let message: String

    public init(option: String, message: String) {
        self.option = option
        self.message = message
    }

    public var description: String { "\(option): \(message)" }
    /// The exit code for every option error.
    public static let exitCode: Int32 = 2
}

/// The parsed and validated options of `doryd run [options] -- CMD ARGS…` (spec/supervise.md §11).
public struct RunOptions: Sendable, Equatable {
    public var readyMode: ReadyMode = .started
    /// `--heartbeat-timeout` in milliseconds; 0 = off.
    public var heartbeatTimeoutMillis: Int = 0
    public var signalChildOnly = false
    public var forwardUSR1 = false
    /// `--stop-signal`; nil when not set (SIGTERM, and a received SIGINT goes on as SIGINT).
    public var stopSignal: Int32?
    public var successExitCodes = SuccessExitCodes()
    public var restartPolicy: RestartPolicyKind = .never
    public var restartBudget = 5
    public var restartWindowSeconds = 300
    public var workdir: String?
    public var controlSocket: String?

    public init() {}

    /// The heartbeat timeout in seconds (0 = off).
    public var heartbeatTimeoutSeconds: Double { Double(heartbeatTimeoutMillis) / 1000 }

    /// The signal to send for a received SIGTERM or SIGINT (§3.1).
    public func stopSignal(forReceived received: Int32) -> Int32 {
        if let stopSignal { return stopSignal }
        return received == SIGINT ? SIGINT : SIGTERM
    }

    /// Parses the arguments after `run`: options, then `--`, then the command (verbatim, at least one word).
    /// Values given here are applied over `self` (so defaults, YAML and environment can be applied first).
    public func parsingCommandLine(_ arguments: [String]) throws(RunOptionError) -> (options: RunOptions, command: [String]) {
        var options = self
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" {
                let command = Array(arguments[index...])
                guard !command.isEmpty else {
                    throw RunOptionError(option: "--", message: "a command must follow --")
                }
                return (options, command)
            }
            guard argument.hasPrefix("--") else {
                throw RunOptionError(option: argument, message: "unexpected argument; put the command after --")
            }
            let name: String
            var value: String?
            if let eq = argument.firstIndex(of: "=") {
                name = String(argument[..<eq])
                value = String(argument[argument.index(after: eq)...])
            } else {
                name = argument
            }
            guard let setting = RunSetting.allCases.first(where: { $0.flag == name }) else {
                throw RunOptionError(option: name, message: "unknown option")
            }
            if value == nil {
                if setting.isSwitch {
                    value = "true"
                } else {
                    guard index < arguments.count, arguments[index] != "--" else {
                        throw RunOptionError(option: name, message: "a value is required")
                    }
                    value = arguments[index]
                    index += 1
                }
            }
            try options.set(setting, to: value ?? "", writtenAs: name)
        }
        throw RunOptionError(option: "--", message: "a command must follow --")
    }

    /// Applies one setting from its text (a flag value, a variable or a YAML scalar); `writtenAs` names it in errors.
    public mutating func set(_ setting: RunSetting, to text: String, writtenAs: String? = nil) throws(RunOptionError) {
        let label = writtenAs ?? setting.flag
        func fail(_ message: String) -> RunOptionError {
            RunOptionError(option: label, message: "invalid value \"\(text)\": \(message)")
        }
        switch setting {
        case .ready:
            guard let mode = ReadyMode(rawValue: text) else { throw fail("expected started, api or notify") }
            readyMode = mode
        case .heartbeatTimeout:
            guard let seconds = Double(text), seconds.isFinite, seconds == 0 || (0.1...3600).contains(seconds) else {
                throw fail("expected 0 (off) or 0.1 to 3600 seconds")
            }
            heartbeatTimeoutMillis = Int((seconds * 1000).rounded())
        case .signalChildOnly, .forwardUSR1:
            let flag: Bool
            switch text.lowercased() {
            case "true", "1", "yes", "on": flag = true
            case "false", "0", "no", "off": flag = false
            default: throw fail("expected true or false")
            }
            if setting == .signalChildOnly { signalChildOnly = flag } else { forwardUSR1 = flag }
        case .stopSignal:
            guard let number = SignalNames.number(text) else { throw fail("expected a signal name or a number 1-64") }
            let refused: [Int32] = [SIGKILL, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGCONT, SIGCHLD]
            guard !refused.contains(number) else { throw fail("\(SignalNames.name(number)) cannot stop a program") }
            stopSignal = number
        case .successExitCodes:
            let items = text.split(separator: ",", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: " ") }
            guard items.count <= 32 else { throw fail("at most 32 codes") }
            var codes: [Int32] = []
            for item in items {
                guard let code = Int32(item), (0...255).contains(code) else { throw fail("expected integers 0-255") }
                codes.append(code)
            }
            successExitCodes = SuccessExitCodes(codes)
        case .restart:
            guard let policy = RestartPolicyKind(rawValue: text) else { throw fail("expected never or on-failure") }
            restartPolicy = policy
        case .restartBudget:
            guard let n = Int(text), (1...1000).contains(n) else { throw fail("expected an integer 1-1000") }
            restartBudget = n
        case .restartWindow:
            guard let n = Int(text), (1...86400).contains(n) else { throw fail("expected an integer 1-86400") }
            restartWindowSeconds = n
        case .workdir:
            var info = stat()
            guard !text.isEmpty, stat(text, &info) == 0 else {
                throw fail(text.isEmpty ? "empty" : String(cString: strerror(errno)))
            }
            guard info.st_mode & S_IFMT == S_IFDIR else { throw fail("not a directory") }
            workdir = text
        case .controlSocket:
            guard !text.isEmpty else { throw fail("empty") }
            controlSocket = text
        }
    }
}

extension StringProtocol {
    func trimmingCharacters(in character: Character) -> String {
        var slice = self[...]
        while slice.first == character { slice.removeFirst() }
        while slice.last == character { slice.removeLast() }
        return String(slice)
    }
}

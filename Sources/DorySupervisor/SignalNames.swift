import Glibc

/// Linux signal names and numbers, for `--stop-signal` and log lines (spec/supervise.md §3.1, §11).
public enum SignalNames {
    /// Standard signals by number (Linux x86-64 and arm64 numbering).
    static let table: [(name: String, number: Int32)] = [
        ("HUP", SIGHUP), ("INT", SIGINT), ("QUIT", SIGQUIT), ("ILL", SIGILL), ("TRAP", SIGTRAP),
        ("ABRT", SIGABRT), ("IOT", SIGABRT), ("BUS", SIGBUS), ("FPE", SIGFPE), ("KILL", SIGKILL),
        ("USR1", SIGUSR1), ("SEGV", SIGSEGV), ("USR2", SIGUSR2), ("PIPE", SIGPIPE), ("ALRM", SIGALRM),
        ("TERM", SIGTERM), ("STKFLT", SIGSTKFLT), ("CHLD", SIGCHLD), ("CONT", SIGCONT), ("STOP", SIGSTOP),
        ("TSTP", SIGTSTP), ("TTIN", SIGTTIN), ("TTOU", SIGTTOU), ("URG", SIGURG), ("XCPU", SIGXCPU),
        ("XFSZ", SIGXFSZ), ("VTALRM", SIGVTALRM), ("PROF", SIGPROF), ("WINCH", SIGWINCH), ("IO", SIGIO),
        ("POLL", SIGPOLL), ("PWR", SIGPWR), ("SYS", SIGSYS),
    ]

    /// `SIGTERM` for 15, `SIG40` for a real-time signal without a name here.
    public static func name(_ signal: Int32) -> String {
        if let entry = table.first(where: { $0.number == signal }) { return "SIG" + entry.name }
        return "SIG\(signal)"
    }

    /// Parses a name with or without `SIG`, any case (`term`, `SIGTERM`), or a number 1–64.
    public static func number(_ text: String) -> Int32? {
        if let value = Int32(text) { return (1...64).contains(value) ? value : nil }
        var upper = text.uppercased()
        if upper.hasPrefix("SIG") { upper.removeFirst(3) }
        return table.first(where: { $0.name == upper })?.number
    }
}

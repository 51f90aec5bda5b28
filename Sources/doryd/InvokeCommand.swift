import ArgumentParser
import DoryKit

#if canImport(Glibc)
import Glibc
#endif

/// `doryd invoke FILE|- [setting flags]` (event-pipeline.md §2.6): one JSON body run through the built-in example
/// application in this process, under the processor lock, without booting the daemon. The work is ``InvokeHost``.
struct Invoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one event body (a file, or - for standard input) through the event pipeline, in this process.",
        discussion: """
            Prints one JSON summary line per invocation on standard output. Exit 0 all success or skipped, 1 any \
            error, 2 invalid configuration or input, 4 lock held by a running doryd or no valid generation. \
            Setting flags: 
            """ + SettingFlags.names(allowEvents: true).joined(separator: " ")
    )

    @Argument(parsing: .allUnrecognized, help: "FILE or -, then setting flags, e.g. ev.json --config events.yaml")
    var arguments: [String] = []

    func run() async throws {
        let split: InvokeArguments
        do throws(ConfigError) {
            split = try InvokeArguments(arguments)
        } catch {
            throw CommandExit(code: DoryRuntime.reportConfigError(error))
        }
        throw CommandExit(code: await InvokeHost.run(input: split.input, flags: split.flags))
    }
}

/// The command line of `doryd invoke` taken apart: the one positional (`FILE` or `-`) and the setting flags.
struct InvokeArguments: Equatable {
    /// A path, or `-` for standard input.
    let input: String
    /// Setting values keyed by setting name (``SettingFlags/parse(_:allowEvents:)`` with the events settings).
    let flags: [String: String]

    /// - Throws: ``ConfigError`` for an unknown flag (`--control-token` included: the token is read from
    ///   `DORY_CONTROL_TOKEN` or YAML only), a flag without a value, or not exactly one `FILE|-`.
    init(_ arguments: [String]) throws(ConfigError) {
        var settings: [String] = []
        var positionals: [String] = []
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            if argument.hasPrefix("--") {
                settings.append(argument)
                // `--flag value` takes the next word; `--flag=value` does not.
                if !argument.contains("="), i + 1 < arguments.count {
                    settings.append(arguments[i + 1])
                    i += 1
                }
            } else {
                positionals.append(argument)
            }
            i += 1
        }
        flags = try SettingFlags.parse(settings, allowEvents: true)
        guard positionals.count == 1, let input = positionals.first, !input.isEmpty else {
            let got = positionals.isEmpty ? "none" : positionals.map { "\"\($0)\"" }.joined(separator: ", ")
            throw ConfigError(setting: "input", source: nil,
                              description: "doryd invoke takes exactly one FILE or - (standard input); got \(got)")
        }
        self.input = input
    }
}

import ArgumentParser
import DoryKit

/// `doryd state …`: wiring to `StateCommands`.
struct StateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state",
        abstract: "Inspect, verify, export or import snapshots of one processor.",
        subcommands: [List.self, Show.self, Verify.self, Export.self, Import.self]
    )

    /// `--state-dir D`, `--processor-id ID` (alias `--processor`), `--config FILE`.
    static func flags(_ arguments: [String]) throws -> [String: String] {
        do {
            return try SettingFlags.parse(arguments)
        } catch {
            throw CommandExit(code: DoryRuntime.reportConfigError(error))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the generations, newest first.")
        @Flag(help: "One JSON object per line.") var json = false
        @Argument(parsing: .allUnrecognized) var settings: [String] = []
        func run() throws {
            throw CommandExit(code: StateCommands.run(.ls(json: json), flags: try StateCommand.flags(settings)))
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a whole snapshot envelope (default: the newest valid).")
        @Option(help: "Generation number.") var generation: Int64?
        @Argument(parsing: .allUnrecognized) var settings: [String] = []
        func run() throws {
            throw CommandExit(code: StateCommands.run(.show(generation: generation), flags: try StateCommand.flags(settings)))
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check every file (or one generation); exit 1 on any damage.")
        @Option(help: "Generation number.") var generation: Int64?
        @Argument(parsing: .allUnrecognized) var settings: [String] = []
        func run() throws {
            throw CommandExit(code: StateCommands.run(.verify(generation: generation), flags: try StateCommand.flags(settings)))
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the state of a generation as one line of JSON.")
        @Option(help: "Generation number.") var generation: Int64?
        @Flag(help: "Print the whole envelope.") var envelope = false
        @Argument(parsing: .allUnrecognized) var settings: [String] = []
        func run() throws {
            throw CommandExit(code: StateCommands.run(.export(generation: generation, envelope: envelope), flags: try StateCommand.flags(settings)))
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Import a state file of the reference Python SDK as a new generation.")
        @Argument(help: "The SDK's state file ({payload, metadata, checksum}).") var file: String
        @Argument(parsing: .allUnrecognized) var settings: [String] = []
        func run() throws {
            throw CommandExit(code: StateCommands.run(.importFile(path: file), flags: try StateCommand.flags(settings)))
        }
    }
}

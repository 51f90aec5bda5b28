import DoryState
import Testing
@testable import DoryKit

/// §10 **YAML** and §12 case 84, through the loader; and the libyaml binding itself.
@Suite struct YAMLConfigTests {
    @Test func leadingZerosAreDecimal() throws {
        #expect(try loadConfig(yaml: "snapshot_keep: 010\n").snapshotKeep == 10)
    }

    @Test func quotedLogLevelIsMatchedCaseInsensitively() throws {
        #expect(try loadConfig(yaml: "log_level: \"Warning\"\n").logLevel == .warning)
    }

    @Test(arguments: ["0x1F90", "1_000", "0o17", "1e3", "null", "~", "true", "9000.0"])
    func healthPortNonDecimalIsRejected(text: String) {
        let error = configError(yaml: "# comment\nhealth_port: \(text)\n")
        #expect(error?.setting == "health_port")
        #expect(error?.description == "health_port from dory.yaml:2=\"\(text)\": expected an integer in 0...65535")
    }

    @Test func quotedNumberIsReadLikeAnEnvironmentValue() throws {
        #expect(try loadConfig(yaml: "health_port: \"9000\"\n").healthPort == 9000)
    }

    @Test func processorIdOnIsText() throws {
        #expect(try loadConfig(yaml: "processor_id: on\n").processorId == "on")
        #expect(try loadConfig(yaml: "processor_id: yes\n").processorId == "yes")
    }

    @Test func processorIdTildeFailsTheRule() throws {
        let error = configError(yaml: "processor_id: ~\n")
        #expect(error?.setting == "processor_id")
        #expect(error?.description.hasPrefix("processor_id from dory.yaml:1=\"~\": expected 1...253") == true)
        // `null` is just text too, and happens to satisfy the rule.
        #expect(try loadConfig(yaml: "processor_id: null\n").processorId == "null")
    }

    @Test func emptyValueCountsAsUnset() throws {
        let config = try loadConfig(yaml: "health_port:\nstate_dir: ''\nprocessor_id:   # nothing\n")
        #expect(config == { var c = DoryConfig(); c.configFile = "dory.yaml"; return c }())
    }

    @Test func emptyFileAndCommentsOnlyAreFine() throws {
        #expect(try loadConfig(yaml: "").healthPort == 8080)
        #expect(try loadConfig(yaml: "# nothing here\n").healthPort == 8080)
        #expect(try loadConfig(yaml: "---\n").healthPort == 8080)
    }

    @Test func keyGivenTwice() {
        let error = configError(yaml: "health_port: 9000\nsnapshot_keep: 3\nhealth_port: 9001\n")
        #expect(error?.setting == "config_file")
        #expect(error?.description
            == #"config_file from DORY_CONFIG_FILE="dory.yaml": invalid YAML at line 3, column 1: key "health_port" given twice (first at line 1)"#)
    }

    @Test func unknownKeyNamesKeyAndFile() {
        let error = configError(yaml: "health_port: 9000\nhelth_port: 1\n")
        #expect(error?.setting == "helth_port")
        #expect(error?.description == #"unknown setting "helth_port" in dory.yaml:2"#)
    }

    @Test func sequenceOrMappingAsFlatValue() {
        #expect(configError(yaml: "health_port: [1, 2]\n")?.description
            == "health_port from dory.yaml:1: expected a single value, not a sequence")
        #expect(configError(yaml: "state_dir:\n  a: b\n")?.description
            == "state_dir from dory.yaml:1: expected a single value, not a mapping")
    }

    @Test func secondDocument() {
        let error = configError(yaml: "health_port: 9000\n---\nhealth_port: 9001\n")
        #expect(error?.description.contains("a second YAML document") == true)
        #expect(error?.description.contains("line 2") == true)
    }

    @Test func topLevelMustBeAMapping() {
        #expect(configError(yaml: "- a\n- b\n")?.description
            == #"config_file from DORY_CONFIG_FILE="dory.yaml": the top level must be a mapping of settings, not a sequence (line 1)"#)
        #expect(configError(yaml: "just text\n")?.setting == "config_file")
    }

    @Test func syntaxErrorNamesFileAndLine() {
        let error = configError(flags: ["config_file": "c.yaml"], yaml: "health_port: 9000\nstate_dir: [unclosed\n")
        #expect(error?.setting == "config_file")
        #expect(error?.source == .flag("--config"))
        let line = error?.description ?? ""
        #expect(line.hasPrefix(#"config_file from --config="c.yaml": invalid YAML at line "#), "\(line)")
        #expect(!line.contains("\n"))
    }

    @Test func anchorsAndAliasesAreRejected() {
        #expect(configError(yaml: "state_dir: &d /x\ncontrol_socket: *d\n")?.description.contains("anchors") == true)
        #expect(configError(yaml: "health_port: !!int 5\n")?.description.contains("tag") == true)
    }

    @Test func configFileKeyInsideTheFile() {
        #expect(configError(yaml: "config_file: other.yaml\n")?.setting == "config_file")
    }

    // MARK: events:

    @Test func eventsSectionRejectedUnlessAllowed() {
        let error = configError(yaml: "health_port: 9000\nevents:\n  app_key: x\n")
        #expect(error?.setting == "events")
        #expect(error?.description == "events from dory.yaml:2: only doryd events and doryd invoke read an events section")
    }

    @Test func eventsSectionFollowsTheCoreSchema() throws {
        let yaml = """
            events:
              app_key: my_app
              app_id: 42
              agent_id: "1"
              flag: true
              off_word: off
              nothing: ~
              also_null: null
              empty:
              ratio: 0.5
              octal_looking: 010
              hex: 0x1F
              big: 100000000000000000000
              quoted_true: 'true'
              config: {threshold: 40, tags: [a, 2, -3.5e2]}
              schedules:
                - {id: poll, rate: every 30s}
            """
        let config = try loadConfig(yaml: yaml, allowEvents: true)
        let expected: JSONValue = .object([
            "app_key": .string("my_app"), "app_id": .int(42), "agent_id": .string("1"), "flag": .bool(true),
            "off_word": .string("off"), "nothing": .null, "also_null": .null, "empty": .null, "ratio": .double(0.5),
            "octal_looking": .int(10), "hex": .string("0x1F"), "big": .bigInt("100000000000000000000"),
            "quoted_true": .string("true"),
            "config": .object(["threshold": .int(40), "tags": .array([.string("a"), .int(2), .double(-350)])]),
            "schedules": .array([.object(["id": .string("poll"), "rate": .string("every 30s")])]),
        ])
        #expect(config.eventsSection == expected)
    }

    @Test func duplicateKeyInsideEvents() {
        let error = configError(yaml: "events:\n  a: 1\n  a: 2\n", allowEvents: true)
        #expect(error?.description.contains(#"key "a" given twice"#) == true)
    }

    // MARK: The binding

    @Test func scalarsKeepSourceTextStyleAndLine() throws {
        let root = try YAMLDocument.parse("a: 010\nb: 'x'\nc: \"y\"\nd: |\n  text\n")
        guard case .mapping(let entries, _)? = root else {
            Issue.record("not a mapping")
            return
        }
        #expect(entries.map(\.key.text) == ["a", "b", "c", "d"])
        #expect(entries[0].value == .scalar(YAMLScalar(text: "010", style: .plain, line: 1, column: 4)))
        #expect(entries[1].value == .scalar(YAMLScalar(text: "x", style: .singleQuoted, line: 2, column: 4)))
        guard case .scalar(let c) = entries[2].value, case .scalar(let d) = entries[3].value else {
            Issue.record("not scalars")
            return
        }
        #expect(c.isQuoted && !c.isPlain)
        #expect(d.style == .literal && d.text == "text\n" && !d.isQuoted && !d.isPlain)
    }

    @Test func deepNestingIsRefused() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: YAMLError.self) { try YAMLDocument.parse(deep) }
    }

    @Test func invalidUTF8IsASyntaxError() {
        #expect(throws: YAMLError.self) { try YAMLDocument.parse([0x61, 0x3A, 0x20, 0xFF, 0x0A]) }
    }

    @Test func complexKeyIsRefused() {
        #expect(throws: YAMLError.self) { try YAMLDocument.parse("? [a]\n: 1\n") }
    }
}

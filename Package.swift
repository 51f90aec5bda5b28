// swift-tools-version:6.0
import PackageDescription

// Swift 6 language mode (the default for tools 6.0) with strict concurrency everywhere.
let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

let package = Package(
    name: "doryd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "doryd", targets: ["doryd"]),
        .library(name: "DoryKit", targets: ["DoryKit"]),
        .library(name: "DoryEvents", targets: ["DoryEvents"]),
    ],
    dependencies: [
        // CLI parsing for the `doryd` subcommands.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The logging API; doryd supplies its own JSON and journald handlers.
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        .target(name: "CDorySys"),
        .target(name: "DoryHTTP", dependencies: ["CDorySys"], swiftSettings: strict),
        .target(name: "DoryState", dependencies: ["CZlib", "CDorySys"], swiftSettings: strict),
        .target(
            name: "DoryKit",
            dependencies: [
                "DoryHTTP", "DoryState", "CSystemd", "CYAML", "CDorySys",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(name: "DorySupervisor", dependencies: ["DoryKit", "CDorySys"], swiftSettings: strict),
        .target(name: "DoryEvents", dependencies: ["DoryKit", "DoryHTTP", "DoryState"], swiftSettings: strict),
        .executableTarget(
            name: "doryd",
            dependencies: ["DoryKit", "DoryEvents", "DorySupervisor", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict
        ),
        .executableTarget(name: "doryd-fixture", dependencies: ["DoryKit", "DoryEvents"], swiftSettings: strict),
        .executableTarget(name: "doryd-bench", dependencies: ["DoryKit", "DoryEvents", "DoryState"], swiftSettings: strict),
        .testTarget(name: "DoryHTTPTests", dependencies: ["DoryHTTP"], swiftSettings: strict),
        .testTarget(name: "DoryStateTests", dependencies: ["DoryState"], swiftSettings: strict),
        .testTarget(name: "DoryKitTests", dependencies: ["DoryKit"], swiftSettings: strict),
        .testTarget(name: "DorySupervisorTests", dependencies: ["DorySupervisor"], swiftSettings: strict),
        .testTarget(name: "DoryEventsTests", dependencies: ["DoryEvents"], swiftSettings: strict),
        .testTarget(name: "IntegrationTests", dependencies: ["DoryHTTP", "DoryState", "doryd", "doryd-fixture"], swiftSettings: strict),
    ]
)

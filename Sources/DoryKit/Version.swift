public enum DoryKitVersion { public static let version = "0.1.0" }

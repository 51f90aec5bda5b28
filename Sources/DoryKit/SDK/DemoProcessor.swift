/// `doryd demo`: the counter processor (`{"counter": N}`, +1 every 100 ms), restoring its count across restarts.
/// `paddingBytes` > 0 adds a member `padding` of pseudo-random letters and digits, drawn once, so that the encoded
/// state is about that many bytes (benches and the kill test).
public enum DemoWorkload {
    public static func make(paddingBytes: Int = 0, interval: Duration = .milliseconds(100)) -> any Workload {
        let counter = StateValue("counter", 0)
        var states: [any AnyStateValue] = [counter]
        if paddingBytes > 0 {
            states.append(StateValue("padding", randomText(count: max(0, paddingBytes - 32))))
        }
        return ClosureWorkload(states: states) { context in
            context.logger.info("counter running", metadata: ["start": "\(counter.value)"])
            for await _ in context.runLoop(interval: interval) {
                counter.update { $0 += 1 }
            }
        }
    }

    static func randomText(count: Int) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)
        // One system random value seeds a fast generator: drawing from the system once per byte takes seconds
        // for 10 MiB.
        var system = SystemRandomNumberGenerator()
        var seed = system.next() | 1
        var bytes = [UInt8](repeating: 0, count: count)
        for i in 0..<count {
            seed ^= seed << 13
            seed ^= seed >> 7
            seed ^= seed << 17  // xorshift64
            bytes[i] = alphabet[Int((seed >> 32) % UInt64(alphabet.count))]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

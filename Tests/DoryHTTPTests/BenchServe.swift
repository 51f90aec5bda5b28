import Glibc
import Testing

@testable import DoryHTTP

/// Not a test: `DORY_HTTP_BENCH_SECONDS=20 swift test -c release --filter benchServe` serves `/healthz`
/// on `DORY_HTTP_BENCH_PORT` (default 18080) for that long so `wrk` can measure it.
@Test(.enabled(if: getenv("DORY_HTTP_BENCH_SECONDS") != nil))
func benchServe() throws {
    let seconds = Double(String(cString: getenv("DORY_HTTP_BENCH_SECONDS"))) ?? 10
    let port = getenv("DORY_HTTP_BENCH_PORT").flatMap { Int(String(cString: $0)) } ?? 18080
    var configuration = HTTPServerConfiguration()
    configuration.defaultHeaders = ["X-Dory-Version": "0.0.0-bench", "Cache-Control": "no-store"]
    let body = Array(#"{"status":"ok","phase":"running","failed_checks":[]}"#.utf8)
    let server = try HTTPServer(
        configuration: configuration,
        handler: HTTPClosureHandler { _, responder in
            responder(HTTPResponse(status: 200, headers: ["Content-Type": "application/json; charset=utf-8"], body: body))
        })
    try server.listen(.tcp(host: "127.0.0.1", port: port))
    print("bench server on 127.0.0.1:\(port) for \(seconds) s")
    var request = timespec(tv_sec: Int(seconds), tv_nsec: 0)
    nanosleep(&request, nil)
    server.close()
}

import Glibc

/// One accepted connection: reads, parses, dispatches and writes, all on its event loop's thread.
///
/// A connection handles one request at a time; pipelined requests wait in the input buffer and are
/// answered in order. Responses produced during one read are written with one `send`.
final class HTTPConnection: PollTarget, @unchecked Sendable {
    private enum Phase {
        /// Waiting for (the rest of) a request head.
        case awaitingHead
        /// Reading a body the handler admitted.
        case readingBody
        /// The handler has the request; `deliver` ends this phase.
        case awaitingResponse
        /// A last response is queued; the connection closes once it is written.
        case finishing
        /// Write side shut down; reading and dropping until the peer closes (so it gets our answer, not an RST).
        case lingering
        case closed
    }

    let loop: EventLoop
    private let context: ServerContext
    private var fd: Int32
    private let input: ByteBuffer
    private let output: ByteBuffer
    private var parser: HTTPHeadParser
    private var chunkedDecoder = ChunkedBodyDecoder()
    private var phase = Phase.awaitingHead

    // The request in progress.
    private var pendingHead: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyRemaining = 0
    private var bodyLimit = 0
    private var tooLarge: (@Sendable (Int, Int) -> HTTPResponse)?
    private var serial: UInt64 = 0
    private var responseIsHead = false
    private var responseKeepAlive = true
    private var responseHTTP10 = false

    private var inProcessing = false
    private var peerClosed = false

    // Times (monotonic ns).
    /// When the current head began (accept, or the first byte of a later request); 0 while idle between requests.
    private var headStartedAt: UInt64
    /// When the connection was accepted or last answered: the cap evicts the smallest.
    private var idleSince: UInt64
    private var lastProgressAt: UInt64
    private var lingerDeadline: UInt64 = 0

    init(fd: Int32, loop: EventLoop) {
        self.fd = fd
        self.loop = loop
        context = loop.context
        input = ByteBuffer(capacity: 4096)
        output = ByteBuffer(capacity: 4096)
        parser = HTTPHeadParser(limits: loop.context.limits)
        let now = loop.now
        headStartedAt = now
        idleSince = now
        lastProgressAt = now
    }

    // MARK: Poll events

    override func handleEvents(_ revents: UInt32) {
        if revents & SystemCalls.epollOut != 0 {
            flush()
            if phase == .closed { return }
        }
        if revents & SystemCalls.epollIn != 0 {
            onReadable()
        } else if revents & (SystemCalls.epollHup | SystemCalls.epollErr) != 0 {
            close()
        }
    }

    private func onReadable() {
        if phase == .lingering {
            input.clear()
            let count = recv(fd, input.writablePointer, input.writableCount, 0)
            if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) { close() }
            return
        }
        let space = input.reserveWritable(minimum: 1024, maxCapacity: context.maxInputBytes)
        guard space > 0 else {
            updateInterest()
            return
        }
        let count = recv(fd, input.writablePointer, space, 0)
        if count > 0 {
            input.commit(count)
            lastProgressAt = loop.now
            processInput()
        } else if count == 0 {
            peerClosed = true
            switch phase {
            case .awaitingHead, .readingBody, .lingering, .closed:
                // Between requests, or a request that can no longer complete.
                if output.isEmpty { close() } else { phase = .finishing; updateInterest() }
            case .awaitingResponse, .finishing:
                updateInterest()  // answer, then close
            }
        } else {
            let code = errno
            if code != EAGAIN && code != EWOULDBLOCK && code != EINTR { close() }
        }
    }

    // MARK: Processing

    private func processInput() {
        guard !inProcessing, phase != .closed else { return }
        inProcessing = true
        parsing: while true {
            switch phase {
            case .awaitingHead:
                if input.isEmpty { break parsing }
                if headStartedAt == 0 { headStartedAt = loop.now }
                switch parser.parse(input.readable) {
                case .needMore:
                    break parsing
                case .failure(let error):
                    responseIsHead = false
                    answerServerError(error.status, error.code, error.message)
                    break parsing
                case .complete(let head, let length):
                    input.consume(length)
                    parser.reset()
                    beginRequest(head)
                }
            case .readingBody:
                if !readBody() { break parsing }
            case .awaitingResponse, .finishing, .lingering, .closed:
                break parsing
            }
        }
        inProcessing = false
        if peerClosed && phase == .awaitingHead {
            phase = .finishing
        }
        flush()
    }

    private func beginRequest(_ head: HTTPRequestHead) {
        responseIsHead = head.method == "HEAD"
        responseKeepAlive = head.keepAlive && !loop.isStopping
        responseHTTP10 = head.version.minor == 0
        let admission = context.handler.admit(head)
        switch admission {
        case .reject(let response):
            if head.hasBody { responseKeepAlive = false }
            writeResponse(response, origin: .handler)
        case .accept(let limit, let tooLarge):
            if let length = head.contentLength, length > limit {
                responseKeepAlive = false
                if let tooLarge {
                    writeResponse(tooLarge(length, limit), origin: .handler)
                } else {
                    answerServerError(
                        413, "payload_too_large", "request body of \(length) bytes exceeds the limit of \(limit) bytes")
                }
                return
            }
            guard head.hasBody else {
                dispatch(head, body: [])
                return
            }
            if head.version.minor >= 1 && input.isEmpty,
                let expect = head.headers["Expect"], HTTPHeaders.namesEqual(expect, "100-continue")
            {
                output.append("HTTP/1.1 100 Continue\r\n\r\n")
            }
            bodyLimit = limit
            self.tooLarge = tooLarge
            body = []
            if let length = head.contentLength {
                bodyRemaining = length
                body.reserveCapacity(length)
            } else {
                bodyRemaining = 0
                chunkedDecoder = ChunkedBodyDecoder(maxTrailerBytes: context.limits.maxHeaderBytes)
            }
            pendingHead = head
            phase = .readingBody
            lastProgressAt = loop.now
        }
    }

    /// Moves body bytes from the input; true when the request was dispatched and parsing may go on.
    private func readBody() -> Bool {
        guard let head = pendingHead, !input.isEmpty else { return false }
        if !head.isChunked {
            let piece = min(bodyRemaining, input.readableCount)
            body.append(contentsOf: UnsafeRawBufferPointer(rebasing: input.readable[0..<piece]))
            input.consume(piece)
            bodyRemaining -= piece
            guard bodyRemaining == 0 else { return false }
        } else {
            let (consumed, outcome) = chunkedDecoder.decode(input.readable, into: &body, limit: bodyLimit)
            input.consume(consumed)
            switch outcome {
            case .needMore:
                return false
            case .done:
                break
            case .tooLarge(let bytesRead):
                let tooLarge = self.tooLarge  // finishBody() clears it
                finishBody()
                responseKeepAlive = false
                if let tooLarge {
                    writeResponse(tooLarge(bytesRead, bodyLimit), origin: .handler)
                } else {
                    answerServerError(
                        413, "payload_too_large",
                        "chunked request body exceeds the limit of \(bodyLimit) bytes (\(bytesRead) read)")
                }
                return false
            case .malformed(let message):
                finishBody()
                answerServerError(400, "bad_request", "malformed chunked body: \(message)")
                return false
            }
        }
        let request = body
        finishBody()
        dispatch(head, body: request)
        return true
    }

    private func finishBody() {
        pendingHead = nil
        body = []
        tooLarge = nil
    }

    private func dispatch(_ head: HTTPRequestHead, body: [UInt8]) {
        phase = .awaitingResponse
        serial &+= 1
        context.handler.handle(HTTPRequest(head: head, body: body), responder: HTTPResponder(connection: self, serial: serial))
    }

    /// The responder's entry point, on the loop thread.
    func deliver(_ response: HTTPResponse, serial: UInt64) {
        guard phase == .awaitingResponse, serial == self.serial else { return }
        writeResponse(response, origin: .handler)
        if !inProcessing { processInput() }
    }

    private func writeResponse(_ response: HTTPResponse, origin: HTTPResponseOrigin) {
        let close = !responseKeepAlive || loop.isStopping || peerClosed || ResponseEncoder.asksToClose(response)
        if output.isEmpty { lastProgressAt = loop.now }
        ResponseEncoder.encode(
            response, into: output, isHead: responseIsHead, close: close,
            http10KeepAlive: responseHTTP10 && !close, defaultHeaders: context.defaultHeaderBytes)
        context.onResponse?(response.status, origin)
        idleSince = loop.now
        headStartedAt = 0
        phase = close ? .finishing : .awaitingHead
    }

    private func answerServerError(_ status: Int, _ code: String, _ message: String) {
        responseKeepAlive = false
        writeResponse(context.errorResponse(status, code, message), origin: .server)
    }

    // MARK: Writing and closing

    private func flush() {
        while !output.isEmpty {
            let count = send(fd, output.readable.baseAddress, output.readableCount, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            if count > 0 {
                output.consume(count)
                lastProgressAt = loop.now
                continue
            }
            let code = errno
            if count < 0 && code == EINTR { continue }
            if count < 0 && (code == EAGAIN || code == EWOULDBLOCK) {
                updateInterest()
                return
            }
            close()
            return
        }
        output.shrinkIfLarge()
        if phase == .finishing {
            startLingering()
            return
        }
        updateInterest()
    }

    private func startLingering() {
        if peerClosed {
            close()
            return
        }
        shutdown(fd, Int32(SHUT_WR))
        phase = .lingering
        lingerDeadline = loop.now &+ context.lingerNanos
        input.clear()
        updateInterest()
    }

    private func updateInterest() {
        var events: UInt32 = 0
        if !output.isEmpty {
            events = SystemCalls.epollOut
        } else {
            switch phase {
            case .awaitingHead, .readingBody:
                if !peerClosed { events = SystemCalls.epollIn }
            case .awaitingResponse:
                // Keep reading pipelined bytes while there is room; notice a vanished peer via EPOLLHUP.
                if !peerClosed && input.readableCount < context.maxInputBytes { events = SystemCalls.epollIn }
            case .lingering:
                events = SystemCalls.epollIn
            case .finishing, .closed:
                break
            }
        }
        loop.setEvents(self, events)
    }

    private func close() {
        guard phase != .closed else { return }
        phase = .closed
        loop.unregister(self)
        Glibc.close(fd)
        fd = -1
        loop.connectionCount -= 1
        finishBody()
        input.clear()
        output.clear()
    }

    override func closeTarget() { close() }

    override func beginShutdown() {
        switch phase {
        case .awaitingHead where input.isEmpty && output.isEmpty:
            close()
        case .awaitingHead, .readingBody:
            // A request in progress gets its answer (with Connection: close) if it completes in the grace period.
            responseKeepAlive = false
        case .awaitingResponse, .finishing, .lingering, .closed:
            break
        }
    }

    // MARK: Timeouts and eviction

    override func sweep(now: UInt64) {
        switch phase {
        case .awaitingHead:
            if headStartedAt != 0 {
                if now &- headStartedAt >= context.headerTimeoutNanos {
                    if output.isEmpty {
                        responseIsHead = false
                        answerServerError(408, "request_timeout", "request head not received in time")
                        flush()
                    } else {
                        close()
                    }
                }
            } else if now &- idleSince >= context.idleTimeoutNanos {
                close()
            }
        case .readingBody:
            if now &- lastProgressAt >= context.idleTimeoutNanos {
                responseIsHead = false
                finishBody()
                answerServerError(408, "request_timeout", "request body not received in time")
                flush()
            }
        case .awaitingResponse, .finishing:
            if !output.isEmpty && now &- lastProgressAt >= context.idleTimeoutNanos { close() }
        case .lingering:
            if now >= lingerDeadline { close() }
        case .closed:
            break
        }
    }

    override var evictionKey: UInt64? {
        switch phase {
        case .awaitingHead, .readingBody: idleSince
        case .finishing, .lingering: 0
        case .awaitingResponse, .closed: nil
        }
    }
}

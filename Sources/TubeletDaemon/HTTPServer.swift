import Foundation
import Glibc

/// A minimal HTTP/1.1 server for /metrics and /healthz on its own thread: GET (and HEAD) only,
/// requests up to 8 KiB, one connection at a time, each closed after its response. Enough for a
/// Prometheus scraper and a health check; nothing here is meant to face the internet.
public final class HTTPServer: @unchecked Sendable {
    public struct Response: Sendable {
        public var status: Int
        public var contentType: String
        public var body: String
        public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: String) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }
    }

    public typealias Handler = @Sendable (_ path: String) -> Response

    public let port: Int
    private let fd: Int32
    private let handler: Handler
    private let lock = NSLock()
    private var stopping = false
    private var finished = false
    private static let maxRequestBytes = 8192

    /// Binds and listens now (so that a busy port fails at startup).
    public init(listen: HostPort, handler: @escaping Handler) throws {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(listen.host, String(listen.port), &hints, &result)
        guard status == 0, let info = result else {
            throw HTTPServerError("metrics listen address \(listen.host):\(listen.port): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HTTPServerError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, Glibc.listen(fd, 16) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw HTTPServerError("metrics listen address \(listen.host):\(listen.port): \(message)")
        }
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let family = Int32(address.ss_family)
        let port = withUnsafePointer(to: &address) { pointer -> UInt16 in
            if family == AF_INET6 {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
        self.fd = fd
        self.port = Int(port)
        self.handler = handler
    }

    public func start() {
        let thread = Thread { [self] in run() }
        thread.name = "http"
        thread.start()
    }

    public func stop() {
        lock.lock(); stopping = true; lock.unlock()
        for _ in 0..<100 {
            lock.lock(); let done = finished; lock.unlock()
            if done { break }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    private var isStopping: Bool { lock.lock(); defer { lock.unlock() }; return stopping }

    private func run() {
        defer {
            close(fd)
            lock.lock(); finished = true; lock.unlock()
        }
        while !isStopping {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 100) > 0 else { continue }
            let client = accept(fd, nil, nil)
            if client < 0 { continue }
            serve(client)
            close(client)
        }
    }

    private func serve(_ client: Int32) {
        // A slow or silent client gets 2 s, then the connection is closed.
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        let end: [UInt8] = Array("\r\n\r\n".utf8)
        while request.count <= Self.maxRequestBytes {
            let n = recv(client, &buffer, buffer.count, 0)
            if n <= 0 { return }
            request += buffer[0..<n]
            if request.count >= 4, request.suffix(from: max(0, request.count - n - 3)).windows(end) { break }
        }
        guard request.count <= Self.maxRequestBytes else {
            return write(client, Response(status: 431, body: "request too large\n"), head: false)
        }
        let firstLine = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = firstLine.split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else {
            return write(client, Response(status: 400, body: "bad request\n"), head: false)
        }
        let method = parts[0]
        guard method == "GET" || method == "HEAD" else {
            return write(client, Response(status: 405, body: "only GET\n"), head: false)
        }
        let path = String(parts[1].split(separator: "?", maxSplits: 1).first ?? "")
        write(client, handler(path), head: method == "HEAD")
    }

    private func write(_ client: Int32, _ response: Response, head: Bool) {
        let reason = [200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 431: "Request Header Fields Too Large",
                      503: "Service Unavailable"][response.status] ?? "Status"
        let body = Array(response.body.utf8)
        var text = "HTTP/1.1 \(response.status) \(reason)\r\nContent-Type: \(response.contentType)\r\nContent-Length: \(body.count)\r\n"
        if response.status == 405 { text += "Allow: GET, HEAD\r\n" }
        text += "Connection: close\r\n\r\n"
        var bytes = Array(text.utf8)
        if !head { bytes += body }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            offset += n
        }
    }
}

public struct HTTPServerError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

extension ArraySlice where Element == UInt8 {
    fileprivate func windows(_ needle: [UInt8]) -> Bool {
        guard count >= needle.count else { return false }
        var i = startIndex
        while i + needle.count <= endIndex {
            if self[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }
}

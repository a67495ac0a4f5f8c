import CZMQ
import Foundation

/// A libzmq error with the operation that failed.
public struct ZMQError: Error, CustomStringConvertible {
    public var operation: String
    public var code: Int32
    public var description: String { "\(operation): \(String(cString: zmq_strerror(code)))" }

    static func last(_ operation: String) -> ZMQError { ZMQError(operation: operation, code: zmq_errno()) }
}

/// A libzmq context. Sockets must be closed before the context is terminated.
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    public init() {
        handle = zmq_ctx_new()!
    }

    /// Ends blocking calls in other threads (ETERM) and frees the context once all sockets are closed.
    public func terminate() { zmq_ctx_term(handle) }

    /// Makes blocking calls on this context's sockets return ETERM, without freeing it.
    public func shutdown() { zmq_ctx_shutdown(handle) }
}

/// One ZeroMQ socket. Like libzmq's, it must be used by one thread at a time.
public final class ZMQSocket: @unchecked Sendable {
    public enum Kind: Int32, Sendable {
        case pub = 1, sub = 2, rep = 4, xpub = 9, xsub = 10, pair = 0
    }

    let handle: UnsafeMutableRawPointer
    private var closed = false

    public init(_ context: ZMQContext, _ kind: Kind) throws {
        guard let handle = zmq_socket(context.handle, kind.rawValue) else { throw ZMQError.last("zmq_socket") }
        self.handle = handle
    }

    deinit { close() }

    public func close(lingerMilliseconds: Int32? = nil) {
        guard !closed else { return }
        if let lingerMilliseconds { try? set(ZMQ_LINGER, lingerMilliseconds) }
        closed = true
        zmq_close(handle)
    }

    public func set(_ option: Int32, _ value: Int32) throws {
        var value = value
        guard zmq_setsockopt(handle, option, &value, MemoryLayout<Int32>.size) == 0 else {
            throw ZMQError.last("zmq_setsockopt(\(option))")
        }
    }

    public func set(_ option: Int32, _ bytes: [UInt8]) throws {
        let result = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, bytes.count) }
        guard result == 0 else { throw ZMQError.last("zmq_setsockopt(\(option))") }
    }

    public func set(_ option: Int32, _ text: String) throws { try set(option, Array(text.utf8)) }

    public func bind(_ endpoint: String) throws {
        guard zmq_bind(handle, endpoint) == 0 else { throw ZMQError.last("bind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws {
        guard zmq_connect(handle, endpoint) == 0 else { throw ZMQError.last("connect \(endpoint)") }
    }

    /// The endpoint actually bound (resolves `tcp://127.0.0.1:*`).
    public var lastEndpoint: String {
        var buffer = [CChar](repeating: 0, count: 256)
        var size = buffer.count
        _ = zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size)
        return cText(buffer)
    }

    public func subscribe(_ prefix: String) throws { try set(ZMQ_SUBSCRIBE, prefix) }

    /// Client side of CURVE: the server's public key and this client's secret key (Z85).
    public func useCurveClient(serverPublicKey: String, clientSecretKey: String) throws {
        try set(ZMQ_CURVE_SERVERKEY, serverPublicKey)
        try set(ZMQ_CURVE_SECRETKEY, clientSecretKey)
        try set(ZMQ_CURVE_PUBLICKEY, try CurveKeyPair.publicKey(forSecret: clientSecretKey))
    }

    /// Milliseconds between reconnection attempts (libzmq's default is 100).
    public func setReconnectInterval(milliseconds: Int32) throws { try set(ZMQ_RECONNECT_IVL, milliseconds) }
    public func setLinger(milliseconds: Int32) throws { try set(ZMQ_LINGER, milliseconds) }
    /// Messages queued for this socket to read (ZMQ_RCVHWM) and the kernel's receive buffer (ZMQ_RCVBUF).
    public func setReceiveLimits(messages: Int32, kernelBytes: Int32? = nil) throws {
        try set(ZMQ_RCVHWM, messages)
        if let kernelBytes { try set(ZMQ_RCVBUF, kernelBytes) }
    }

    /// Sends all parts as one message. With `dontWait`, false means it would have blocked (high-water mark).
    @discardableResult
    public func send(_ parts: [[UInt8]], dontWait: Bool = true) throws -> Bool {
        for (i, part) in parts.enumerated() {
            var flags: Int32 = dontWait ? ZMQ_DONTWAIT : 0
            if i < parts.count - 1 { flags |= ZMQ_SNDMORE }
            let result = part.withUnsafeBytes { zmq_send(handle, $0.baseAddress, part.count, flags) }
            if result < 0 {
                if zmq_errno() == EAGAIN && i == 0 { return false }
                throw ZMQError.last("zmq_send")
            }
        }
        return true
    }

    /// Receives one whole multipart message, waiting up to `timeoutMilliseconds` (-1: forever, 0: not at all).
    public func receive(timeoutMilliseconds: Int32) throws -> [[UInt8]]? {
        if timeoutMilliseconds != 0 {
            var item = zmq_pollitem_t(socket: handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
            let ready = zmq_poll(&item, 1, Int(timeoutMilliseconds))
            if ready < 0 { throw ZMQError.last("zmq_poll") }
            if ready == 0 { return nil }
        }
        var parts: [[UInt8]] = []
        while true {
            var message = zmq_msg_t()
            zmq_msg_init(&message)
            defer { zmq_msg_close(&message) }
            if zmq_msg_recv(&message, handle, parts.isEmpty ? ZMQ_DONTWAIT : 0) < 0 {
                if parts.isEmpty && zmq_errno() == EAGAIN { return nil }
                throw ZMQError.last("zmq_msg_recv")
            }
            let size = zmq_msg_size(&message)
            if let data = zmq_msg_data(&message), size > 0 {
                parts.append(Array(UnsafeBufferPointer(start: data.assumingMemoryBound(to: UInt8.self), count: size)))
            } else {
                parts.append([])
            }
            if zmq_msg_more(&message) == 0 { return parts }
        }
    }
}

/// CURVE keys in Z85 text (40 characters each).
public struct CurveKeyPair: Sendable, Equatable {
    public var publicKey: String
    public var secretKey: String

    public static func generate() throws -> CurveKeyPair {
        var publicKey = [CChar](repeating: 0, count: 41), secretKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&publicKey, &secretKey) == 0 else { throw ZMQError.last("zmq_curve_keypair (libzmq built without CURVE?)") }
        return CurveKeyPair(publicKey: cText(publicKey), secretKey: cText(secretKey))
    }

    /// The public key that belongs to a Z85 secret key.
    public static func publicKey(forSecret secret: String) throws -> String {
        var publicKey = [CChar](repeating: 0, count: 41)
        guard secret.utf8.count == 40, zmq_curve_public(&publicKey, secret) == 0 else {
            throw ZMQError(operation: "zmq_curve_public: not a 40-character Z85 secret key", code: EINVAL)
        }
        return cText(publicKey)
    }

    /// Reads a key file: the first non-empty, non-comment line holds the Z85 key.
    public static func readKey(file: String) throws -> String {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw ZMQError(operation: "\(file): cannot read the key file", code: ENOENT)
        }
        let key = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .first { !$0.isEmpty && !$0.hasPrefix("#") } ?? ""
        guard key.count == 40 else { throw ZMQError(operation: "\(file): expected a 40-character Z85 key", code: EINVAL) }
        return key
    }

    /// Z85 text to the 32 raw bytes ZAP requests carry.
    public static func decode(z85 text: String) -> [UInt8]? {
        guard text.utf8.count == 40 else { return nil }
        var bytes = [UInt8](repeating: 0, count: 32)
        guard zmq_z85_decode(&bytes, text) != nil else { return nil }
        return bytes
    }
}

/// ZeroMQ's forwarder between an XSUB socket (publishers connect) and an XPUB socket (subscribers
/// connect): `zmq_proxy_steerable`, with an inproc control socket so that `stop()` ends it cleanly.
public final class Forwarder: @unchecked Sendable {
    private let context: ZMQContext
    private let frontend: ZMQSocket
    private let backend: ZMQSocket
    private let control: ZMQSocket
    private let controlEndpoint = "inproc://tubelet-forwarder-control"

    /// Binds both sides now.
    public init(context: ZMQContext, xsubEndpoint: String, xpubEndpoint: String) throws {
        self.context = context
        frontend = try ZMQSocket(context, .xsub)
        backend = try ZMQSocket(context, .xpub)
        control = try ZMQSocket(context, .pair)
        for socket in [frontend, backend, control] { try socket.setLinger(milliseconds: 0) }
        try frontend.bind(xsubEndpoint)
        try backend.bind(xpubEndpoint)
        try control.bind(controlEndpoint)
    }

    /// Forwards until `stop()`; then closes its sockets.
    public func run() throws {
        defer { [frontend, backend, control].forEach { $0.close(lingerMilliseconds: 0) } }
        while true {
            if zmq_proxy_steerable(frontend.handle, backend.handle, nil, control.handle) >= 0 { return }
            let error = zmq_errno()
            if error == ETERM { return }
            if error != EINTR { throw ZMQError(operation: "zmq_proxy_steerable", code: error) }  // a signal: go on
        }
    }

    /// Ends `run()` from any thread.
    public func stop() {
        guard let stopper = try? ZMQSocket(context, .pair) else { return }
        try? stopper.setLinger(milliseconds: 100)
        try? stopper.connect(controlEndpoint)
        _ = try? stopper.send([Array("TERMINATE".utf8)], dontWait: false)
        stopper.close(lingerMilliseconds: 100)
    }
}

/// A NUL-terminated C buffer as a String.
func cText(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

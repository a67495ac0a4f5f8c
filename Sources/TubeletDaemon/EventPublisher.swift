import CZMQ
import Foundation
import Logging

/// Publishes `[topic, JSON]` messages on an XPUB socket from its own thread.
///
/// Producers (capture callbacks, inference threads, the supervisor) only append to a bounded queue and
/// never wait on the network: the socket sends without blocking, and a subscriber past the high-water
/// mark loses messages instead of slowing anyone down. XPUB (rather than PUB) tells us about
/// subscriptions: they are counted for /metrics, and each new one gets the current camera states again
/// (last-value caching), so a late subscriber knows which cameras are up.
public final class EventPublisher: @unchecked Sendable {
    public struct Counters: Sendable {
        public var published: [String: UInt64] = [:]  // by message kind: action, status, daemon
        public var dropped: UInt64 = 0
        public var subscriptions: Int = 0
    }

    public let topicPrefix: String
    /// The bound endpoint (port resolved), if the socket binds.
    public private(set) var boundEndpoint: String?

    private let context: ZMQContext
    private let socket: ZMQSocket
    private let logger: Logger
    private let zap: ZAPHandler?
    private let queueLimit = 10_000
    // Guarded by `condition`:
    private let condition = NSCondition()
    private var queue: [(topic: String, kind: String, body: [UInt8])] = []
    private var sequences: [String: UInt64] = [:]
    private var lastStatus: [String: [UInt8]] = [:]
    private var totals = Counters()
    private var holdUntil: Date
    private var stopping = false
    private var finished = false
    private var thread: Thread?

    /// Binds (and connects) now, so that a bad endpoint fails at startup; sends from `start()` on.
    public init(config: EventsConfig, logger: Logger) throws {
        self.topicPrefix = config.topicPrefix
        self.logger = logger
        context = ZMQContext()
        socket = try ZMQSocket(context, .xpub)
        do {
            try socket.set(ZMQ_SNDHWM, Int32(clamping: config.sendHighWaterMark))
            try socket.set(ZMQ_XPUB_VERBOSER, 1)  // every subscribe and unsubscribe, for the subscription count
            try socket.set(ZMQ_LINGER, 0)
            if let curve = config.curve {
                let secret = try CurveKeyPair.readKey(file: curve.secretKeyFile)
                _ = try CurveKeyPair.publicKey(forSecret: secret)
                try socket.set(ZMQ_CURVE_SERVER, 1)
                try socket.set(ZMQ_CURVE_SECRETKEY, secret)
                try socket.set(ZMQ_ZAP_DOMAIN, "tubelet")
                zap = curve.allowedClients.isEmpty ? nil : try ZAPHandler(context: context, allowed: curve.allowedClients, logger: logger)
            } else {
                zap = nil
            }
            if let endpoint = config.endpoint {
                try socket.bind(endpoint)
                boundEndpoint = socket.lastEndpoint
            }
            for endpoint in config.connect { try socket.connect(endpoint) }
        } catch {
            socket.close(lingerMilliseconds: 0)
            context.terminate()
            throw error
        }
        holdUntil = Date(timeIntervalSinceNow: config.startupGrace)
    }

    public func start() {
        let thread = Thread { [self] in run() }
        thread.name = "events"
        condition.lock()
        self.thread = thread
        condition.unlock()
        thread.start()
        zap?.start()
    }

    /// Sends what is queued (waiting at most `timeout`), then closes the socket and the context.
    public func stop(timeout: Double = 1.5) {
        condition.lock()
        stopping = true
        holdUntil = .distantPast
        condition.broadcast()
        let deadline = Date(timeIntervalSinceNow: timeout)
        while thread != nil && !finished && condition.wait(until: deadline) {}
        let ended = finished || thread == nil
        let neverStarted = thread == nil
        condition.unlock()
        if neverStarted { socket.close(lingerMilliseconds: 0) }
        zap?.stop()
        if ended {
            context.terminate()
        } else {
            logger.warning("event thread did not end in \(timeout) s")
        }
    }

    public var counters: Counters {
        condition.lock(); defer { condition.unlock() }
        return totals
    }

    /// Queues one message; `fields` gain `sequence` (per topic, from 1) and `timestamp` unless given.
    public func publish(topic suffix: String, kind: String, _ fields: [String: Any]) {
        let topic = "\(topicPrefix).\(suffix)"
        condition.lock()
        defer { condition.unlock() }
        let sequence = (sequences[topic] ?? 0) + 1
        sequences[topic] = sequence
        var object = fields
        object["sequence"] = sequence
        if object["timestamp"] == nil { object["timestamp"] = Date().timeIntervalSince1970 }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            logger.error("cannot encode an event for \(topic)")
            return
        }
        let body = [UInt8](data)
        if kind == "status" { lastStatus[topic] = body }
        guard !finished else { return }
        if queue.count >= queueLimit {
            totals.dropped += 1
            return
        }
        queue.append((topic, kind, body))
        condition.broadcast()
    }

    /// A camera that is gone: late subscribers are no longer told its last state.
    public func forgetStatus(topic suffix: String) {
        condition.lock()
        lastStatus["\(topicPrefix).\(suffix)"] = nil
        condition.unlock()
    }

    // MARK: The event thread

    private func run() {
        var subscriptions = 0
        while true {
            // Subscriptions first: a new subscriber gets the current camera states.
            var replay = false
            while let message = try? socket.receive(timeoutMilliseconds: 0), let first = message.first?.first {
                if first == 1 { subscriptions += 1; replay = true } else if first == 0 { subscriptions = max(0, subscriptions - 1) }
            }
            condition.lock()
            totals.subscriptions = subscriptions
            if subscriptions > 0 && holdUntil > Date() {
                holdUntil = .distantPast  // the first subscriber is here: release what was held
                replay = false
            }
            let replayed = replay && holdUntil <= Date() ? lastStatus.sorted { $0.key < $1.key } : []
            let holding = holdUntil > Date()
            let batch = holding ? [] : queue
            if !holding { queue.removeAll(keepingCapacity: true) }
            let done = stopping && queue.isEmpty
            if batch.isEmpty && replayed.isEmpty && !done {
                _ = condition.wait(until: Date(timeIntervalSinceNow: holding ? 0.01 : 0.05))
            }
            condition.unlock()

            var sent: [String: UInt64] = [:]
            var dropped: UInt64 = 0
            for (topic, body) in replayed { _ = try? socket.send([Array(topic.utf8), body]) }
            for message in batch {
                do {
                    if try socket.send([Array(message.topic.utf8), message.body]) {
                        sent[message.kind, default: 0] += 1
                    } else {
                        dropped += 1
                    }
                } catch {
                    dropped += 1
                    logger.warning("event send failed: \(error)")
                }
            }
            if !sent.isEmpty || dropped > 0 {
                condition.lock()
                for (kind, count) in sent { totals.published[kind, default: 0] += count }
                totals.dropped += dropped
                condition.unlock()
            }
            if done { break }
        }
        // Give queued frames a moment on the wire; dead subscribers cannot hold us (linger is bounded).
        socket.close(lingerMilliseconds: 500)
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }
}

/// Answers libzmq's ZAP requests (RFC 27) on inproc://zeromq.zap.01: CURVE clients whose public
/// key is on the allowed list get in, others are refused.
final class ZAPHandler: @unchecked Sendable {
    private let socket: ZMQSocket
    private let allowed: Set<[UInt8]>
    private let logger: Logger
    private let lock = NSLock()
    private var stopping = false
    private var finished = false
    private var thread: Thread?

    init(context: ZMQContext, allowed: [String], logger: Logger) throws {
        var keys: Set<[UInt8]> = []
        for key in allowed {
            guard let bytes = CurveKeyPair.decode(z85: key) else { throw ZMQError(operation: "allowed client key '\(key)' is not Z85", code: EINVAL) }
            keys.insert(bytes)
        }
        self.allowed = keys
        self.logger = logger
        socket = try ZMQSocket(context, .rep)
        try socket.set(ZMQ_LINGER, 0)
        try socket.bind("inproc://zeromq.zap.01")
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "zap"
        self.thread = thread
        thread.start()
    }

    func stop() {
        lock.lock(); stopping = true; lock.unlock()
        for _ in 0..<100 {
            lock.lock(); let done = finished; lock.unlock()
            if done || thread == nil { return }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    private var isStopping: Bool { lock.lock(); defer { lock.unlock() }; return stopping }

    private func run() {
        while !isStopping {
            guard let request = try? socket.receive(timeoutMilliseconds: 100) else { continue }
            // version, request id, domain, address, identity, mechanism, credentials...
            guard request.count >= 6 else { continue }
            let mechanism = String(decoding: request[5], as: UTF8.self)
            let key = request.count > 6 ? request[6] : []
            let ok = mechanism == "CURVE" && allowed.contains(key)
            if !ok { logger.warning("refused a subscriber (\(mechanism)) from \(String(decoding: request[3], as: UTF8.self))") }
            let reply: [[UInt8]] = [Array("1.0".utf8), request[1], Array((ok ? "200" : "400").utf8),
                                    Array((ok ? "OK" : "client key not allowed").utf8), [], []]
            _ = try? socket.send(reply, dontWait: false)
        }
        socket.close(lingerMilliseconds: 0)
        lock.lock(); finished = true; lock.unlock()
    }
}

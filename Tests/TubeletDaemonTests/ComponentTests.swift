import Foundation
import TubeletDaemon
import Logging
import XCTest

/// The publisher, the HTTP server and the notify client, in process.
final class ComponentTests: XCTestCase {
    let logger = Logger(label: "test")

    func publisher(_ change: (inout EventsConfig) -> Void = { _ in }) throws -> EventPublisher {
        var config = EventsConfig()
        config.endpoint = "tcp://127.0.0.1:*"
        config.startupGrace = 2
        change(&config)
        return try EventPublisher(config: config, logger: logger)
    }

    func testMessagesAreTopicAndJSONWithPerTopicSequences() throws {
        let events = try publisher()
        let subscriber = try Subscriber(connect: events.boundEndpoint!)
        events.start()
        defer { events.stop() }
        events.publish(topic: "daemon", kind: "daemon", ["type": "started", "pid": 1, "host": "h", "config": "c", "cameras": [String](), "models": [String]()])
        for state in ["connecting", "streaming"] {
            events.publish(topic: "cam.status", kind: "status", ["camera": "cam", "state": state, "source": "s"])
        }
        XCTAssertTrue(waitUntil(timeout: 5) { subscriber.drain(for: 0.05); return subscriber.events.count == 3 },
                      "held until the subscriber is there, then delivered")
        XCTAssertEqual(subscriber.events.map(\.topic), ["tubelet.daemon", "tubelet.cam.status", "tubelet.cam.status"])
        XCTAssertEqual(subscriber.events.map(\.sequence), [1, 1, 2])
        XCTAssertEqual(subscriber.schemaErrors, [])
        XCTAssertEqual(events.counters.published["status"], 2)
        XCTAssertEqual(events.counters.subscriptions, 1)

        // A late subscriber gets each camera's latest status again (same sequence).
        let late = try Subscriber(connect: events.boundEndpoint!, topics: ["tubelet.cam."])
        let replay = late.waitFor(timeout: 5) { $0.isStatus }
        XCTAssertEqual(replay?.state, "streaming")
        XCTAssertEqual(replay?.sequence, 2)
        XCTAssertTrue(waitUntil(timeout: 2) { events.counters.subscriptions == 2 })
    }

    /// A subscriber that never reads cannot slow the publisher: libzmq drops what is past its high-water
    /// mark (silently, for PUB sockets), and publishing stays a queue append.
    func testASlowSubscriberNeverBlocksPublishing() throws {
        let events = try publisher { $0.sendHighWaterMark = 10; $0.startupGrace = 0 }
        let stuck = try Subscriber(connect: events.boundEndpoint!, receiveLimit: 1)
        events.start()
        XCTAssertTrue(waitUntil(timeout: 5) { events.counters.subscriptions == 1 })
        let padding = String(repeating: "x", count: 5000)
        let count = 2000  // 10 MB: more than the socket buffers between us and the stuck subscriber hold
        let started = Date()
        for i in 0..<count {
            events.publish(topic: "cam.action", kind: "action", ["i": i, "padding": padding])
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 5, "publish only encodes and queues")
        XCTAssertTrue(waitUntil(timeout: 10) { (events.counters.published["action"] ?? 0) + events.counters.dropped == UInt64(count) },
                      "the event thread got through everything: \(events.counters)")
        let stopStarted = Date()
        events.stop()
        XCTAssertLessThan(Date().timeIntervalSince(stopStarted), 2.5, "stopping does not wait for the stuck subscriber")
        stuck.drain(for: 1)
        XCTAssertGreaterThan(stuck.events.count, 0)
        XCTAssertLessThan(stuck.events.count, count, "the stuck subscriber lost messages instead of holding us up")
    }

    func testCurveAllowsListedClientsOnly() throws {
        let server = try CurveKeyPair.generate(), allowed = try CurveKeyPair.generate(), stranger = try CurveKeyPair.generate()
        let keyFile = DaemonFixtures.scratch("curve").appendingPathComponent("server.key").path
        try "# tubeletd server secret key\n\(server.secretKey)\n".write(toFile: keyFile, atomically: true, encoding: .utf8)
        let events = try publisher {
            $0.startupGrace = 0
            $0.curve = CurveConfig(secretKeyFile: keyFile, allowedClients: [allowed.publicKey])
        }
        let good = try Subscriber(connect: events.boundEndpoint!, curve: (server.publicKey, allowed.secretKey))
        let bad = try Subscriber(connect: events.boundEndpoint!, curve: (server.publicKey, stranger.secretKey))
        let plain = try Subscriber(connect: events.boundEndpoint!)
        // A client with an allowed key pair that has the wrong idea of the server's key (a man in the middle's).
        let wrongServer = try Subscriber(connect: events.boundEndpoint!, curve: (try CurveKeyPair.generate().publicKey, allowed.secretKey))
        events.start()
        defer { events.stop() }
        XCTAssertTrue(waitUntil(timeout: 5) { events.counters.subscriptions >= 1 })
        Thread.sleep(forTimeInterval: 0.3)
        events.publish(topic: "cam.status", kind: "status", ["camera": "cam", "state": "streaming", "source": "s"])
        XCTAssertNotNil(good.waitFor(timeout: 3) { $0.isStatus }, "an allowed key receives")
        bad.drain(for: 0.5)
        plain.drain(for: 0.1)
        wrongServer.drain(for: 0.1)
        XCTAssertEqual(bad.events.count, 0, "an unknown key is refused")
        XCTAssertEqual(plain.events.count, 0, "a client without CURVE gets nothing")
        XCTAssertEqual(wrongServer.events.count, 0, "a handshake against another server key fails")
        XCTAssertEqual(events.counters.subscriptions, 1)
    }

    /// `tubelet events` as a CURVE client: with an allowed key it prints; with another it gets nothing.
    func testEventsCommandSpeaksCurve() throws {
        let server = try CurveKeyPair.generate(), client = try CurveKeyPair.generate(), stranger = try CurveKeyPair.generate()
        let dir = DaemonFixtures.scratch("curve-cli")
        let serverKey = dir.appendingPathComponent("server.key").path, clientKey = dir.appendingPathComponent("client.key").path
        let strangerKey = dir.appendingPathComponent("stranger.key").path
        try server.secretKey.write(toFile: serverKey, atomically: true, encoding: .utf8)
        try client.secretKey.write(toFile: clientKey, atomically: true, encoding: .utf8)
        try stranger.secretKey.write(toFile: strangerKey, atomically: true, encoding: .utf8)
        let events = try publisher {
            $0.startupGrace = 0
            $0.curve = CurveConfig(secretKeyFile: serverKey, allowedClients: [client.publicKey])
        }
        events.start()
        defer { events.stop() }
        let tubelet = try Repo.binary("tubelet")
        let publishing = Thread {
            for _ in 0..<40 {
                events.publish(topic: "cam.status", kind: "status", ["camera": "cam", "state": "streaming", "source": "s"])
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
        publishing.start()
        let allowed = try runProgram(tubelet, ["events", "--connect", events.boundEndpoint!, "--server-key", server.publicKey,
                                               "--client-secret-key-file", clientKey, "--count", "2", "--timeout", "3"])
        XCTAssertEqual(allowed.status, 0, allowed.stderr)
        XCTAssertEqual(allowed.stdout.split(separator: "\n").count, 2, allowed.stdout)
        XCTAssertTrue(allowed.stdout.hasPrefix("tubelet.cam.status {"), allowed.stdout)
        let refused = try runProgram(tubelet, ["events", "--connect", events.boundEndpoint!, "--server-key", server.publicKey,
                                               "--client-secret-key-file", strangerKey, "--count", "1", "--timeout", "1"])
        XCTAssertEqual(refused.stdout, "", "a key that is not allowed receives nothing")
    }

    func testBindFailureIsReportedAtStartup() throws {
        let first = try publisher()
        defer { first.stop() }
        XCTAssertThrowsError(try publisher { $0.endpoint = first.boundEndpoint }) {
            XCTAssertTrue("\($0)".contains("Address already in use"), "\($0)")
        }
    }

    func testHTTPServer() throws {
        let server = try HTTPServer(listen: HostPort("127.0.0.1:0")!) { path in
            path == "/metrics" ? .init(status: 200, body: "tubelet_up 1\n") : .init(status: 404, body: "no\n")
        }
        server.start()
        defer { server.stop() }
        let ok = try httpGet(port: server.port, "/metrics?x=1")
        XCTAssertEqual(ok.status, 200)
        XCTAssertEqual(ok.body, "tubelet_up 1\n")
        XCTAssertEqual(try httpGet(port: server.port, "/nope").status, 404)
        XCTAssertEqual(try httpGet(port: server.port, "/metrics", method: "POST").status, 405)
        XCTAssertEqual(try httpGet(port: server.port, "/metrics", method: "HEAD").body, "")
        XCTAssertEqual(try httpGet(port: server.port, "", raw: "garbage\r\n\r\n").status, 400)
        let huge = "GET /metrics HTTP/1.1\r\nX: " + String(repeating: "a", count: 20_000) + "\r\n\r\n"
        XCTAssertEqual(try httpGet(port: server.port, "", raw: huge).status, 431)
        XCTAssertEqual(try httpGet(port: server.port, "/metrics").status, 200, "still serving after bad requests")
    }

    func testPrometheusText() {
        var text = PrometheusText()
        text.describe("tubelet_x_total", "counter", "X.")
        text.sample("tubelet_x_total", [("camera", "a\"b")], 3)
        var histogram = Histogram(bounds: [0.1, 1])
        histogram.observe(0.05)
        histogram.observe(0.5)
        histogram.observe(5)
        text.histogram("tubelet_l_seconds", [("camera", "a")], histogram)
        XCTAssertEqual(text.text, """
        # HELP tubelet_x_total X.
        # TYPE tubelet_x_total counter
        tubelet_x_total{camera="a\\"b"} 3
        tubelet_l_seconds_bucket{camera="a",le="0.1"} 1
        tubelet_l_seconds_bucket{camera="a",le="1"} 2
        tubelet_l_seconds_bucket{camera="a",le="+Inf"} 3
        tubelet_l_seconds_sum{camera="a"} 5.55
        tubelet_l_seconds_count{camera="a"} 3

        """)
    }

    func testNotifySocketProtocol() throws {
        let socket = try NotifySocket()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "\(getpid())"])
        XCTAssertEqual(notifier.watchdogInterval, 2)
        notifier.ready(status: "1 camera")
        XCTAssertTrue(socket.waitFor("READY=1", timeout: 1))
        XCTAssertTrue(socket.messages[0].contains("STATUS=1 camera"))
        notifier.reloading()
        XCTAssertTrue(socket.waitFor("RELOADING=1", timeout: 1))
        XCTAssertTrue(socket.messages[1].contains("MONOTONIC_USEC="))
        notifier.stopping()
        XCTAssertTrue(socket.waitFor("STOPPING=1", timeout: 1))
        XCTAssertNil(SystemdNotifier(environment: ["WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"]).watchdogInterval, "another process's watchdog")
        XCTAssertFalse(SystemdNotifier(environment: [:]).notify(["READY=1"]), "no socket: a no-op")
    }

    /// A manager that does not read its socket (the datagram queue fills after a few messages) must not stall the daemon.
    func testNotifyNeverBlocks() throws {
        let path = DaemonFixtures.scratch("notify").appendingPathComponent("deaf.sock").path
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd); unlink(path) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": path])
        let started = Date()
        // More than any datagram queue length (net.unix.max_dgram_qlen: 10 in a bare container, 512 under systemd).
        let sent = (0..<2000).filter { _ in notifier.notify(["WATCHDOG=1"]) }.count
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
        XCTAssertLessThan(sent, 2000, "the full queue refused some instead of blocking")
    }

    func testStderrIsJournalOnlyWhenTheStreamMatches() {
        XCTAssertFalse(StderrLogHandler.stderrIsJournal(environment: [:]))
        XCTAssertFalse(StderrLogHandler.stderrIsJournal(environment: ["JOURNAL_STREAM": "1:2"]))
        // The stream that is stderr's own (device:inode, as systemd sets it) is recognised; a neighbour's is not.
        var own = stat()
        XCTAssertEqual(fstat(STDERR_FILENO, &own), 0)
        XCTAssertTrue(StderrLogHandler.stderrIsJournal(environment: ["JOURNAL_STREAM": "\(own.st_dev):\(own.st_ino)"]))
        XCTAssertFalse(StderrLogHandler.stderrIsJournal(environment: ["JOURNAL_STREAM": "\(own.st_dev):\(own.st_ino &+ 1)"]))
        XCTAssertEqual(StderrLogHandler(label: "x", level: .info, journald: true).journald, true)
    }
}

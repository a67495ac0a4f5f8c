import Foundation
import TubeletStreaming
import XCTest

/// Capture from a real RTSP server (GStreamer) on loopback: streaming, a killed server, a hung
/// server, a server that is not there yet, UDP transport.
final class RTSPCaptureTests: XCTestCase {
    override func setUpWithError() throws {
        try RTSPTestServer.skipUnlessAvailable()
    }

    private func rtspOptions(_ url: String) -> CaptureOptions {
        var options = makeOptions(url)
        options.stallTimeout = 2
        options.readTimeout = 2
        options.connectTimeout = 3
        options.backoffFirst = 0.2
        options.backoffCap = 1
        return options
    }

    /// Reads frames until `count` arrived or `timeout` passed; returns their timestamps.
    private func read(_ reader: FrameRingReader, count: Int, timeout: Double) -> [Double] {
        var timestamps: [Double] = []
        var frame = Frame()
        let deadline = Date(timeIntervalSinceNow: timeout)
        while timestamps.count < count, Date() < deadline {
            if reader.next(into: &frame, timeout: 0.2) { timestamps.append(frame.timestamp) }
        }
        return timestamps
    }

    func testKilledServerGoesOfflineAndStreamingResumesWhenItReturns() throws {
        let threadsBefore = ProcessResources.threadCount
        let descriptorsBefore = ProcessResources.openDescriptorCount
        let server = RTSPTestServer(file: try TestMedia.longH264(seconds: 30))
        try server.start()
        let states = StateRecorder()
        let url = server.url(credentials: "admin:hunter2")
        let source = CaptureSource(options: rtspOptions(url), onStateChange: states.record)
        let reader = source.ring.makeReader()
        source.start()
        XCTAssertNotNil(states.waitFor("streaming", timeout: 10))
        var timestamps = read(reader, count: 25, timeout: 5)
        XCTAssertEqual(timestamps.count, 25)

        // Kill the server mid-stream: offline well within the stall timeout (the socket closes).
        let killedAt = CaptureClock.now()
        server.kill()
        let offline = try XCTUnwrap(states.waitFor("offline", after: 2, timeout: 2 + 2))
        XCTAssertLessThan(offline.timestamp - killedAt, 2 + 1)
        print("server killed: \(offline.state) after \(String(format: "%.2f", offline.timestamp - killedAt)) s")
        // While it is gone the source keeps retrying (connection refused) instead of exiting.
        let attempts = source.counters.connectAttempts
        XCTAssertTrue(waitUntil(timeout: 5) { source.counters.connectAttempts >= attempts + 2 })
        XCTAssertTrue(source.isRunning)
        guard case .offline = source.state else { return XCTFail("expected offline, got \(source.state)") }

        // Restart it: streaming resumes, timestamps keep increasing.
        let restartedAt = CaptureClock.now()
        try server.start()
        let resumed = try XCTUnwrap(states.waitFor("streaming", after: 3, timeout: 10))
        print("server restarted: streaming again after \(String(format: "%.2f", resumed.timestamp - restartedAt)) s")
        reader.skipToNewest()
        timestamps += read(reader, count: 25, timeout: 5)
        XCTAssertEqual(timestamps.count, 50)
        XCTAssertTrue(zip(timestamps, timestamps.dropFirst()).allSatisfy { $0 < $1 }, "timestamps must be monotonic")
        XCTAssertEqual(source.counters.reconnects, 1)
        XCTAssertEqual(source.counters.decodeErrors, 0)

        // Credentials never appear in what the source reports.
        XCTAssertEqual(source.name, "rtsp://***@127.0.0.1:\(server.port)/stream")
        XCTAssertFalse(states.all.contains { "\($0)".contains("hunter2") })

        XCTAssertTrue(source.stop(timeout: 2))
        server.kill()
        XCTAssertTrue(waitUntil(timeout: 3) { ProcessResources.threadCount <= threadsBefore },
                      "threads: \(ProcessResources.threadCount) now, \(threadsBefore) before")
        XCTAssertTrue(waitUntil(timeout: 3) { ProcessResources.openDescriptorCount <= descriptorsBefore },
                      "descriptors: \(ProcessResources.openDescriptorCount) now, \(descriptorsBefore) before")
    }

    func testHungServerIsDetectedAsStalledThenRecovers() throws {
        let server = RTSPTestServer(file: try TestMedia.longH264(seconds: 30))
        try server.start()
        let states = StateRecorder()
        let source = CaptureSource(options: rtspOptions(server.url()), onStateChange: states.record)
        source.start()
        XCTAssertNotNil(states.waitFor("streaming", timeout: 10))
        XCTAssertTrue(waitUntil(timeout: 5) { source.counters.framesConverted >= 10 })

        // Freeze the server: the TCP connection stays up but nothing arrives.
        let pausedAt = CaptureClock.now()
        server.pause()
        let stalled = try XCTUnwrap(states.waitFor("stalled", timeout: 2 + 2))
        XCTAssertEqual(stalled.state, .stalled(reason: "no frame for 2 s"))
        XCTAssertLessThan(stalled.timestamp - pausedAt, 2 + 1, "stall_timeout is 2 s")
        XCTAssertGreaterThan(stalled.timestamp - pausedAt, 1.5)
        // The stalled stream is torn down; reconnecting to a frozen server times out: offline.
        let offline = try XCTUnwrap(states.waitFor("offline", timeout: 3 + 3))
        XCTAssertEqual(offline.state, .offline(reason: "connect timed out after 3 s"))
        print("hung server: \(stalled.state), then \(offline.state)")

        server.resume()
        XCTAssertNotNil(states.waitFor("streaming", after: 2, timeout: 10))
        XCTAssertEqual(states.names.prefix(5), ["connecting", "streaming", "stalled", "connecting", "offline"])
        XCTAssertTrue(source.stop(timeout: 2))
    }

    func testServerMissingAtStartupIsRetriedUntilItAppears() throws {
        let server = RTSPTestServer(file: try TestMedia.longH264(seconds: 30))
        let states = StateRecorder()
        let source = CaptureSource(options: rtspOptions(server.url()), onStateChange: states.record)
        source.start()
        let offline = try XCTUnwrap(states.waitFor("offline", timeout: 5))
        XCTAssertTrue("\(offline.state)".contains("Connection refused"), "\(offline.state)")
        try server.start()
        XCTAssertNotNil(states.waitFor("streaming", timeout: 10))
        XCTAssertEqual(source.counters.reconnects, 0, "first streaming is not a reconnect")
        XCTAssertTrue(source.stop(timeout: 2))
    }

    func testUDPTransport() throws {
        let server = RTSPTestServer(file: try TestMedia.longH264(seconds: 30))
        try server.start()
        var options = rtspOptions(server.url())
        options.transport = .udp
        options.sampling = .fps(5)
        let source = CaptureSource(options: options)
        let reader = source.ring.makeReader()
        source.start()
        var frame = Frame()
        var timestamps: [Double] = []
        let deadline = Date(timeIntervalSinceNow: 10)
        while timestamps.count < 6, Date() < deadline {
            if reader.next(into: &frame, timeout: 0.5) { timestamps.append(frame.timestamp) }
        }
        XCTAssertEqual(timestamps.count, 6)
        // 5 of the stream's 25 fps.
        XCTAssertEqual((timestamps.last! - timestamps.first!) / 5, 0.2, accuracy: 0.03)
        XCTAssertEqual(source.state, .streaming)
        XCTAssertTrue(source.stop(timeout: 2))
    }
}

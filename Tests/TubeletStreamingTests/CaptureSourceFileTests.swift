import Foundation
import TubeletStreaming
import XCTest

final class CaptureSourceFileTests: XCTestCase {
    func testFileIsDecodedIntoTheRingThenGoesOfflineAtTheEnd() throws {
        let states = StateRecorder()
        let source = CaptureSource(options: makeOptions(try TestMedia.h264()), onStateChange: states.record)
        let reader = source.ring.makeReader()
        source.start()
        XCTAssertNotNil(states.waitFor("offline", timeout: 20))
        XCTAssertTrue(waitUntil(timeout: 5) { !source.isRunning })
        XCTAssertEqual(states.all.map(\.state), [.connecting, .streaming, .offline(reason: "end of file")])
        XCTAssertEqual(states.all.last?.previous, .streaming)
        let counters = source.counters
        XCTAssertEqual(counters.framesDecoded, 50)
        XCTAssertEqual(counters.framesSampled, 50)
        XCTAssertEqual(counters.framesConverted, 50)
        XCTAssertEqual(counters.decodeErrors, 0)
        var timestamps: [Double] = []
        while let frame = reader.next(timeout: 0.1) {
            XCTAssertEqual(frame.rgb.count, 64 * 48 * 3)
            timestamps.append(frame.timestamp)
        }
        XCTAssertEqual(timestamps.count, 50)
        // Media time mapped onto the capture clock: 40 ms apart, starting about now.
        for (a, b) in zip(timestamps, timestamps.dropFirst()) { XCTAssertEqual(b - a, 0.04, accuracy: 0.001) }
        XCTAssertEqual(timestamps[0], CaptureClock.now(), accuracy: 30)
    }

    func testFrameStrideAndFPSSampling() throws {
        for (sampling, expected) in [(CaptureOptions.Sampling.frameStride(5), 10...10), (.fps(10), 19...21)] {
            var options = makeOptions(try TestMedia.h264())
            options.sampling = sampling
            let states = StateRecorder()
            let source = CaptureSource(options: options, onStateChange: states.record)
            let reader = source.ring.makeReader()
            source.start()
            XCTAssertNotNil(states.waitFor("offline", timeout: 20))
            XCTAssertEqual(source.counters.framesDecoded, 50)
            XCTAssertTrue(expected.contains(Int(source.counters.framesSampled)), "\(sampling): \(source.counters.framesSampled)")
            var timestamps: [Double] = []
            while let frame = reader.next(timeout: 0.1) { timestamps.append(frame.timestamp) }
            XCTAssertEqual(timestamps.count, Int(source.counters.framesSampled))
            if case .frameStride = sampling {
                for (a, b) in zip(timestamps, timestamps.dropFirst()) { XCTAssertEqual(b - a, 0.2, accuracy: 0.001) }
            } else {
                let span = timestamps.last! - timestamps.first!
                XCTAssertEqual(Double(timestamps.count - 1) / span, 10, accuracy: 1)
            }
        }
    }

    func testLoopedFileKeepsTimestampsMonotonicAndStopsPromptly() throws {
        var options = makeOptions(try TestMedia.h264())
        options.loop = true
        let threadsBefore = ProcessResources.threadCount
        let descriptorsBefore = ProcessResources.openDescriptorCount
        let source = CaptureSource(options: options)
        let reader = source.ring.makeReader()
        source.start()
        var timestamps: [Double] = []
        var frame = Frame()
        while timestamps.count < 180, reader.next(into: &frame, timeout: 5) { timestamps.append(frame.timestamp) }
        XCTAssertEqual(timestamps.count, 180, "three passes over a 50-frame file")
        XCTAssertTrue(zip(timestamps, timestamps.dropFirst()).allSatisfy { $0 < $1 }, "timestamps must increase across loops")
        // The loop joins seamlessly: one frame interval at the seam too.
        XCTAssertEqual(timestamps[50] - timestamps[49], 0.04, accuracy: 0.001)
        XCTAssertEqual(source.state, .streaming)
        let start = Date()
        XCTAssertTrue(source.stop())
        XCTAssertLessThan(Date().timeIntervalSince(start), 1)
        XCTAssertFalse(source.isRunning)
        XCTAssertTrue(waitUntil(timeout: 2) { ProcessResources.threadCount <= threadsBefore })
        XCTAssertEqual(ProcessResources.openDescriptorCount, descriptorsBefore)
    }

    func testRealtimeFileIsPacedAtItsFrameRateOnTheWallClock() throws {
        var options = makeOptions(try TestMedia.h264())
        options.realtime = true
        let source = CaptureSource(options: options)
        let reader = source.ring.makeReader()
        let start = Date()
        source.start()
        var frame = Frame()
        var lags: [Double] = []
        var count = 0
        while reader.next(into: &frame, timeout: 2) {
            lags.append(CaptureClock.now() - frame.timestamp)
            count += 1
        }
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertEqual(count, 50)
        XCTAssertEqual(elapsed - 2, 2, accuracy: 0.5, "50 frames at 25 fps take 2 s (plus the 2 s read timeout at the end)")
        // Each frame is delivered when its timestamp comes due, not before and not much later.
        XCTAssertTrue(lags.allSatisfy { $0 > -0.01 && $0 < 0.15 }, "\(lags)")
        source.stop()
    }

    func testSourceThatFailsAtStartupKeepsRetryingUntilTheFileAppears() throws {
        let path = TestMedia.directory.appendingPathComponent("appears-later-\(UUID().uuidString).mp4").path
        let states = StateRecorder()
        let source = CaptureSource(options: makeOptions(path), onStateChange: states.record)
        source.start()
        let offline = try XCTUnwrap(states.waitFor("offline", timeout: 5))
        XCTAssertTrue("\(offline.state)".contains("No such file"), "\(offline.state)")
        XCTAssertTrue(waitUntil(timeout: 5) { source.counters.connectAttempts >= 3 })
        XCTAssertTrue(source.isRunning)
        try FileManager.default.copyItem(atPath: try TestMedia.h264(), toPath: path)
        XCTAssertNotNil(states.waitFor("streaming", timeout: 5))
        XCTAssertNotNil(states.waitFor("offline", after: 2, timeout: 10))
        XCTAssertEqual(states.all.last?.state, .offline(reason: "end of file"))
        source.stop()
    }

    func testMaxAttemptsGivesUp() throws {
        var options = makeOptions("/nonexistent/camera.mp4")
        options.maxAttempts = 2
        let states = StateRecorder()
        let source = CaptureSource(options: options, onStateChange: states.record)
        source.start()
        XCTAssertTrue(waitUntil(timeout: 5) { !source.isRunning })
        XCTAssertEqual(source.counters.connectAttempts, 2)
        guard case .offline(let reason) = source.state else { return XCTFail("\(source.state)") }
        XCTAssertTrue(reason.hasPrefix("gave up after 2 attempts"), reason)
    }

    func testCorruptedFileCountsDecodeErrorsAndGoesOn() throws {
        let states = StateRecorder()
        let path = try TestMedia.corrupted(try TestMedia.mjpegAVI(), name: "corrupt.avi")
        let source = CaptureSource(options: makeOptions(path), onStateChange: states.record)
        source.start()
        XCTAssertNotNil(states.waitFor("offline", timeout: 20))
        let counters = source.counters
        XCTAssertGreaterThan(counters.decodeErrors, 0)
        XCTAssertEqual(counters.framesDecoded + counters.decodeErrors, 50)
        XCTAssertEqual(states.all.last?.state, .offline(reason: "end of file"))
    }

    func testResolutionChangeIsCountedAndFramesKeepTheirGeometry() throws {
        let states = StateRecorder()
        let source = CaptureSource(options: makeOptions(try TestMedia.resolutionChange()), onStateChange: states.record)
        let reader = source.ring.makeReader()
        source.start()
        XCTAssertNotNil(states.waitFor("offline", timeout: 20))
        XCTAssertEqual(source.counters.framesConverted, 50)
        XCTAssertEqual(source.counters.resolutionChanges, 1)
        var count = 0
        while let frame = reader.next(timeout: 0.1) {
            XCTAssertEqual(frame.width * frame.height * 3, frame.rgb.count)
            count += 1
        }
        XCTAssertEqual(count, 50)
    }

    func testTruncatedFileEndsCleanly() throws {
        let states = StateRecorder()
        let source = CaptureSource(options: makeOptions(try TestMedia.truncatedH264()), onStateChange: states.record)
        source.start()
        XCTAssertNotNil(states.waitFor("offline", timeout: 20))
        XCTAssertEqual(states.all.last?.state, .offline(reason: "end of file"))
        XCTAssertGreaterThan(source.counters.framesConverted, 10)
        XCTAssertLessThan(source.counters.framesConverted, 50)
    }

    /// A consumer that stops reading for 10 s: the source keeps decoding (a looped file, as fast
    /// as it can), the ring overwrites, the reader's drops are counted, and memory stays flat.
    func testStalledConsumerDoesNotRaiseMemoryAndDropsAreCounted() throws {
        var options = makeOptions(try TestMedia.h264(), geometry: .kinetics)
        options.loop = true
        options.ringCapacity = 32
        let source = CaptureSource(options: options)
        let reader = source.ring.makeReader()
        source.start()
        var frame = Frame()
        XCTAssertTrue(reader.next(into: &frame, timeout: 5))  // warmed up, ring full soon
        Thread.sleep(forTimeInterval: 1)
        let residentBefore = ProcessResources.residentBytes
        let producedBefore = source.ring.producedCount
        Thread.sleep(forTimeInterval: 10)  // the consumer is not reading
        let residentAfter = ProcessResources.residentBytes
        let produced = source.ring.producedCount - producedBefore
        source.stop()
        var read = 0
        while reader.next(into: &frame, timeout: 0.05) { read += 1 }
        let growth = residentAfter - residentBefore
        print("slow consumer: \(produced) frames produced in 10 s, \(read) read afterwards, "
              + "\(reader.droppedCount) dropped, resident memory change \(growth / 1024) KiB")
        XCTAssertGreaterThan(produced, 500, "the producer must have kept going")
        XCTAssertLessThanOrEqual(read, 32)
        XCTAssertEqual(UInt64(read) + reader.droppedCount, source.ring.producedCount - 1)
        XCTAssertEqual(source.counters.framesDroppedByReaders, reader.droppedCount)
        // An unbounded queue would have grown by produced * 147 KiB (> 70 MiB here).
        XCTAssertLessThan(growth, 8 << 20)
    }
}

final class CapturePacingTests: XCTestCase {
    func testSourceKindFollowsTheURL() {
        XCTAssertEqual(CaptureOptions(url: "rtsp://u:p@cam/1").kind, .network)
        XCTAssertEqual(CaptureOptions(url: "HTTPS://cam/video.mjpg").kind, .network)
        XCTAssertEqual(CaptureOptions(url: "/videos/a.mp4").kind, .file)
        XCTAssertEqual(CaptureOptions(url: "file:///videos/a.mp4").kind, .file)
        XCTAssertEqual(CaptureOptions(url: "/dev/video2").kind, .v4l2(devicePath: "/dev/video2"))
        XCTAssertEqual(CaptureOptions(url: "v4l2:///dev/video0").kind, .v4l2(devicePath: "/dev/video0"))
    }
}

final class ReconnectBackoffTests: XCTestCase {
    func testDelaysDoubleUpToTheCapAndResetAfterSuccess() {
        var backoff = ReconnectBackoff(first: 0.5, cap: 4, jitter: 0)
        XCTAssertEqual((0..<6).map { _ in backoff.nextDelay() }, [0.5, 1, 2, 4, 4, 4])
        backoff.reset()
        XCTAssertEqual(backoff.nextDelay(), 0.5)
    }

    func testJitterStaysWithinItsFractionAndVaries() {
        var backoff = ReconnectBackoff(first: 1, cap: 1, jitter: 0.2)
        let delays = (0..<200).map { _ in backoff.nextDelay() }
        XCTAssertTrue(delays.allSatisfy { $0 >= 0.8 && $0 <= 1.2 })
        XCTAssertGreaterThan(Set(delays).count, 100, "jitter spreads reconnects of many cameras apart")
    }

    func testLoopingAFileIsNotAReconnectAndStopWorksFromTheCallback() throws {
        var options = makeOptions(try TestMedia.h264())
        options.loop = true
        let holder = SourceHolder()
        let source = CaptureSource(options: options) { change in
            if change.state == .streaming { XCTAssertFalse(holder.source!.stop()) }
        }
        holder.source = source
        let reader = source.ring.makeReader()
        source.start()
        XCTAssertTrue(waitUntil(timeout: 5) { !source.isRunning }, "stop() from the callback ends the thread")
        XCTAssertLessThanOrEqual(source.counters.framesConverted, 1)
        _ = reader

        var looping = makeOptions(try TestMedia.h264())
        looping.loop = true
        let looped = CaptureSource(options: looping)
        looped.start()
        XCTAssertTrue(waitUntil(timeout: 10) { looped.counters.framesDecoded > 120 })
        XCTAssertTrue(looped.stop())
        XCTAssertEqual(looped.counters.reconnects, 0)
    }
}

private final class SourceHolder: @unchecked Sendable {
    var source: CaptureSource?
}

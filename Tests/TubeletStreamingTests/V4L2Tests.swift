import Foundation
import TubeletStreaming
import XCTest

/// V4L2 negotiation and buffer cycling against the fake device layer, plus a test on a real
/// camera that runs only where /dev/video* exists.
final class V4L2CameraTests: XCTestCase {
    private let path = "/dev/video7"

    func testNegotiatesTheFirstPreferredFormatTheDeviceOffersAndTheGrantedSize() throws {
        let device = FakeV4L2Device()
        let options = V4L2Options(width: 1280, height: 720, fps: 60, pixelFormats: ["MJPG", "NV12", "YUYV"], bufferCount: 4)
        let camera = try V4L2Camera(devicePath: path, options: options, io: device)
        XCTAssertEqual(camera.format.fourcc, "NV12")
        XCTAssertEqual(camera.format.width, 640, "the driver clamps the size; the camera reports what was granted")
        XCTAssertEqual(camera.format.height, 480)
        XCTAssertEqual(camera.frameRate, 30)
        XCTAssertEqual(camera.bufferCount, 4)
        XCTAssertEqual(device.callLog, [
            "open", "VIDIOC_QUERYCAP", "VIDIOC_ENUM_FMT", "VIDIOC_S_FMT NV12 1280x720", "VIDIOC_S_FMT", "VIDIOC_S_PARM",
            "VIDIOC_REQBUFS 4", "VIDIOC_REQBUFS", "mmap 0", "mmap 1", "mmap 2", "mmap 3",
            "VIDIOC_QBUF 0", "VIDIOC_QBUF 1", "VIDIOC_QBUF 2", "VIDIOC_QBUF 3", "VIDIOC_STREAMON",
        ])
        camera.close()
    }

    func testBuffersCycleAndAreReleasedOnClose() throws {
        let device = FakeV4L2Device()
        let camera = try V4L2Camera(devicePath: path, options: V4L2Options(width: 64, height: 48, pixelFormats: ["YUYV"]), io: device)
        XCTAssertEqual(device.queuedCount, 4)
        var sizes: [Int] = []
        for _ in 0..<10 {
            let size = try camera.withNextBuffer(timeout: 1) { bytes, buffer -> Int in
                // While the caller has it, the buffer is out of the driver's queue.
                XCTAssertEqual(device.queuedCount, 3)
                return bytes.count
            }
            sizes.append(try XCTUnwrap(size))
            XCTAssertEqual(device.queuedCount, 4, "each buffer goes back to the driver after use")
        }
        XCTAssertEqual(sizes, Array(repeating: 64 * 48 * 2, count: 10))
        XCTAssertEqual(device.dequeued, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
        // A failing consumer still returns the buffer.
        struct Failure: Error {}
        XCTAssertThrowsError(try camera.withNextBuffer(timeout: 1) { _, _ in throw Failure() })
        XCTAssertEqual(device.queuedCount, 4)

        camera.close()
        XCTAssertEqual(device.mappedCount, 0)
        XCTAssertFalse(device.opened)
        XCTAssertEqual(Array(device.callLog.suffix(8)), [
            "VIDIOC_STREAMOFF", "munmap 0", "munmap 1", "munmap 2", "munmap 3", "VIDIOC_REQBUFS 0", "VIDIOC_REQBUFS", "close",
        ])
    }

    func testNoFrameWithinTheTimeoutReturnsNil() throws {
        let device = FakeV4L2Device()
        device.update { $0.delivering = false }
        let camera = try V4L2Camera(devicePath: path, options: V4L2Options(width: 64, height: 48), io: device)
        XCTAssertNil(try camera.withNextBuffer(timeout: 0.05) { _, _ in 1 })
    }

    func testMissingFormatErrorNamesTheDeviceAndWhatItOffers() {
        let device = FakeV4L2Device()
        XCTAssertThrowsError(try V4L2Camera(devicePath: path, options: V4L2Options(pixelFormats: ["MJPG", "H264"]), io: device)) {
            XCTAssertEqual("\($0)", "V4L2 device /dev/video7: offers none of MJPG, H264; it offers: YUYV (YUYV 4:2:2), NV12 (Y/CbCr 4:2:0)")
        }
        XCTAssertFalse(device.opened, "the device is closed again after a failed negotiation")
    }

    func testBusyDeviceErrorNamesTheDevice() {
        for operation in ["open", "VIDIOC_S_FMT", "VIDIOC_REQBUFS", "VIDIOC_STREAMON"] {
            let device = FakeV4L2Device(.init(busyOperation: operation))
            XCTAssertThrowsError(try V4L2Camera(devicePath: path, options: V4L2Options(), io: device)) {
                XCTAssertTrue("\($0)".hasPrefix("V4L2 device /dev/video7: is busy: another process is using it"), "\($0)")
            }
            XCTAssertFalse(device.opened)
            XCTAssertEqual(device.mappedCount, 0)
        }
    }

    func testMissingDeviceAndNonCaptureDevice() {
        XCTAssertThrowsError(try V4L2Camera(devicePath: path, options: V4L2Options(), io: FakeV4L2Device(.init(exists: false)))) {
            XCTAssertEqual("\($0)", "V4L2 device /dev/video7: does not exist (no such device)")
        }
        XCTAssertThrowsError(try V4L2Camera(devicePath: path, options: V4L2Options(), io: FakeV4L2Device(.init(canCapture: false)))) {
            XCTAssertEqual("\($0)", "V4L2 device /dev/video7: is not a video capture device (driver fake, card Fake Camera)")
        }
    }

    func testCaptureSourceStreamsRawFormatsFromTheDevice() throws {
        // YUV (81, 90, 240) is pure red in BT.601 limited range.
        for fourcc in ["YUYV", "NV12"] {
            let device = FakeV4L2Device()
            var options = makeOptions("v4l2://\(path)", geometry: .kinetics)
            options.v4l2 = V4L2Options(width: 320, height: 240, pixelFormats: [fourcc])
            let source = CaptureSource(options: options, deviceIO: { device })
            let reader = source.ring.makeReader()
            source.start()
            var timestamps: [Double] = []
            var frame = Frame()
            while timestamps.count < 10, reader.next(into: &frame, timeout: 2) {
                timestamps.append(frame.timestamp)
                let centre = (112 * 224 + 112) * 3
                XCTAssertEqual(Int(frame.rgb[centre]), 255, accuracy: 8, fourcc)
                XCTAssertEqual(Int(frame.rgb[centre + 1]), 0, accuracy: 8, fourcc)
                XCTAssertEqual(Int(frame.rgb[centre + 2]), 0, accuracy: 8, fourcc)
            }
            XCTAssertEqual(timestamps.count, 10, fourcc)
            XCTAssertTrue(zip(timestamps, timestamps.dropFirst()).allSatisfy { $0 < $1 })
            XCTAssertEqual(timestamps.last!, CaptureClock.now(), accuracy: 1, "device time is mapped to the capture clock")
            XCTAssertEqual(source.state, .streaming)
            XCTAssertTrue(source.stop(timeout: 1))
            XCTAssertFalse(device.opened)
            XCTAssertEqual(device.mappedCount, 0)
        }
    }

    func testCaptureSourceDecodesMJPEGFromTheDevice() throws {
        let jpegPath = try TestMedia.file("blue.jpg", ["-f", "lavfi", "-i", "color=c=0x2060C0:size=320x240", "-frames:v", "1"])
        let jpeg = [UInt8](try Data(contentsOf: URL(fileURLWithPath: jpegPath)))
        let device = FakeV4L2Device(.init(formats: [V4L2FormatDescription(fourcc: "MJPG", description: "Motion-JPEG")], jpeg: jpeg))
        var options = makeOptions(path, geometry: .kinetics)
        options.v4l2 = V4L2Options(width: 320, height: 240, pixelFormats: ["MJPG"])
        let source = CaptureSource(options: options, deviceIO: { device })
        let reader = source.ring.makeReader()
        source.start()
        let frame = try XCTUnwrap(reader.next(timeout: 3))
        let centre = (112 * 224 + 112) * 3
        for (c, expected) in [0x20, 0x60, 0xC0].enumerated() {
            XCTAssertEqual(Int(frame.rgb[centre + c]), expected, accuracy: 10)
        }
        XCTAssertTrue(source.stop(timeout: 1))
        XCTAssertEqual(source.counters.decodeErrors, 0)
    }

    func testDeviceThatStopsDeliveringIsStalledThenRecovers() throws {
        let device = FakeV4L2Device()
        var options = makeOptions(path)
        options.stallTimeout = 1
        options.v4l2 = V4L2Options(width: 64, height: 48, pixelFormats: ["YUYV"])
        let states = StateRecorder()
        let source = CaptureSource(options: options, onStateChange: states.record, deviceIO: { device })
        source.start()
        XCTAssertNotNil(states.waitFor("streaming", timeout: 3))
        let stoppedAt = CaptureClock.now()
        device.update { $0.delivering = false }
        let stalled = try XCTUnwrap(states.waitFor("stalled", timeout: 3))
        XCTAssertEqual(stalled.timestamp - stoppedAt, 1, accuracy: 0.5)
        XCTAssertEqual(stalled.state, .stalled(reason: "no frame for 1 s"))
        device.update { $0.delivering = true }
        XCTAssertNotNil(states.waitFor("streaming", after: 2, timeout: 3))
        XCTAssertEqual(source.counters.reconnects, 1)
        XCTAssertTrue(source.stop(timeout: 1))
        XCTAssertFalse(device.opened)
    }

    func testDeviceMissingAtStartupIsRetriedUntilItIsPluggedIn() throws {
        let device = FakeV4L2Device(.init(exists: false))
        var options = makeOptions(path)
        options.v4l2 = V4L2Options(width: 64, height: 48, pixelFormats: ["YUYV"])
        let states = StateRecorder()
        let source = CaptureSource(options: options, onStateChange: states.record, deviceIO: { device })
        source.start()
        let offline = try XCTUnwrap(states.waitFor("offline", timeout: 3))
        XCTAssertEqual(offline.state, .offline(reason: "does not exist (no such device)"))
        XCTAssertTrue(waitUntil(timeout: 3) { source.counters.connectAttempts >= 3 })
        device.update { $0.exists = true }
        XCTAssertNotNil(states.waitFor("streaming", timeout: 3))
        XCTAssertTrue(source.stop(timeout: 1))
    }

    /// The real libv4l2 layer on paths that are not cameras: the errors still name the device.
    func testLibV4L2ErrorsForMissingAndNonVideoDevices() {
        XCTAssertThrowsError(try V4L2Camera(devicePath: "/dev/video-missing", options: V4L2Options(), io: LibV4L2DeviceIO())) {
            XCTAssertEqual("\($0)", "V4L2 device /dev/video-missing: does not exist (no such device)")
        }
        XCTAssertThrowsError(try V4L2Camera(devicePath: "/dev/null", options: V4L2Options(), io: LibV4L2DeviceIO())) {
            XCTAssertTrue("\($0)".hasPrefix("V4L2 device /dev/null: is not a V4L2 device"), "\($0)")
        }
    }

    /// Runs on a machine with a camera; elsewhere it is skipped and says so.
    func testRealDeviceWhenPresent() throws {
        let devices = ((try? FileManager.default.contentsOfDirectory(atPath: "/dev")) ?? [])
            .filter { $0.hasPrefix("video") }.sorted().map { "/dev/\($0)" }
        guard let devicePath = devices.first else {
            throw XCTSkip("SKIPPED: no /dev/video* device on this machine; V4L2 was exercised only through the fake device layer")
        }
        var options = makeOptions(devicePath, geometry: .kinetics)
        options.v4l2 = V4L2Options(width: 640, height: 480, fps: 30, pixelFormats: ["MJPG", "YUYV", "NV12", "YU12"])
        options.stallTimeout = 5
        let states = StateRecorder()
        let source = CaptureSource(options: options, onStateChange: states.record)
        let reader = source.ring.makeReader()
        source.start()
        var frames = 0
        var frame = Frame()
        let deadline = Date(timeIntervalSinceNow: 8)
        while frames < 10, Date() < deadline { if reader.next(into: &frame, timeout: 0.5) { frames += 1 } }
        source.stop(timeout: 2)
        XCTAssertEqual(frames, 10, "\(devicePath): \(states.all.map { "\($0.state)" })")
    }
}

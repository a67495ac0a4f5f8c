import Foundation
import TubeletStreaming
import XCTest

final class DecodeVideoFramesTests: XCTestCase {
    func testH264MP4KeepsEveryStrideFrameAtTheModelGeometry() throws {
        let clip = try decodeVideoClip(path: try TestMedia.h264(), geometry: .kinetics, frameCount: 16, frameStride: 2)
        XCTAssertEqual(clip.frames.count, 16)
        XCTAssertEqual(clip.paddedFrameCount, 0)
        XCTAssertNil(clip.warning)
        for (i, frame) in clip.frames.enumerated() {
            XCTAssertEqual(frame.width, 224)
            XCTAssertEqual(frame.height, 224)
            XCTAssertEqual(frame.rgb.count, 224 * 224 * 3)
            XCTAssertEqual(frame.sequence, UInt64(i))
            // 25 fps, every 2nd frame: 80 ms apart.
            XCTAssertEqual(frame.timestamp, Double(i) * 0.08, accuracy: 0.002)
        }
        // testsrc2 moves: consecutive kept frames differ.
        XCTAssertNotEqual(clip.frames[0].rgb, clip.frames[1].rgb)
    }

    func testStartFrameSkipsTheBeginning() throws {
        let all = try decodeVideoClip(path: try TestMedia.h264(), geometry: .stretch(width: 64, height: 48), frameCount: 20, frameStride: 1)
        let later = try decodeVideoClip(path: try TestMedia.h264(), geometry: .stretch(width: 64, height: 48),
                                        frameCount: 4, frameStride: 3, startFrame: 5)
        XCTAssertEqual(later.frames.map(\.rgb), [5, 8, 11, 14].map { all.frames[$0].rgb })
        XCTAssertEqual(later.frames[0].pts!, all.frames[5].pts!, accuracy: 1e-9)
    }

    func testH265MP4Decodes() throws {
        let frames = try decodeVideoFrames(path: try TestMedia.h265(), geometry: .stretch(width: 160, height: 120),
                                           frameCount: 8, frameStride: 4)
        XCTAssertEqual(frames.count, 8)
        XCTAssertEqual(frames[7].timestamp, 7 * 0.16, accuracy: 0.002)
        XCTAssertTrue(frames.allSatisfy { $0.rgb.count == 160 * 120 * 3 })
    }

    func testMJPEGAVIDecodes() throws {
        let clip = try decodeVideoClip(path: try TestMedia.mjpegAVI(), geometry: .kinetics, frameCount: 50, frameStride: 1)
        XCTAssertEqual(clip.paddedFrameCount, 0)
        XCTAssertEqual(clip.decodeErrors, 0)
    }

    func testColoursSurviveConversion() throws {
        let h264 = try TestMedia.solid(color: "red", codec: ["-c:v", "libx264", "-pix_fmt", "yuv420p"], name: "red.mp4")
        let mjpeg = try TestMedia.solid(color: "0x2060C0", codec: ["-c:v", "mjpeg", "-pix_fmt", "yuvj420p"], name: "blue.avi")
        for (path, expected) in [(h264, [255, 0, 0]), (mjpeg, [0x20, 0x60, 0xC0])] {
            let frame = try decodeVideoFrames(path: path, geometry: .kinetics, frameCount: 1, frameStride: 1)[0]
            let centre = (112 * 224 + 112) * 3
            for c in 0..<3 {
                XCTAssertEqual(Int(frame.rgb[centre + c]), expected[c], accuracy: 10, "\(path) channel \(c)")
            }
        }
    }

    func testShortFileIsPaddedWithTheLastFrameAndSaysSo() throws {
        // 50 frames, stride 4 keeps frames 0, 4, ..., 48: 13 frames, 3 padded.
        let path = try TestMedia.h264()
        let clip = try decodeVideoClip(path: path, geometry: .kinetics, frameCount: 16, frameStride: 4)
        XCTAssertEqual(clip.frames.count, 16)
        XCTAssertEqual(clip.paddedFrameCount, 3)
        XCTAssertEqual(clip.frames[15].rgb, clip.frames[12].rgb)
        XCTAssertTrue(clip.warning?.contains(path) ?? false, clip.warning ?? "no warning")
        XCTAssertTrue(zip(clip.frames, clip.frames.dropFirst()).allSatisfy { $0.timestamp < $1.timestamp })
    }

    func testMissingFileErrorNamesTheFile() throws {
        XCTAssertThrowsError(try decodeVideoFrames(path: "/nonexistent/clip.mp4", geometry: .kinetics, frameCount: 1, frameStride: 1)) {
            XCTAssertTrue("\($0)".contains("/nonexistent/clip.mp4"), "\($0)")
        }
    }

    func testFileWithoutVideoIsRejected() throws {
        let path = try TestMedia.audioOnly()
        XCTAssertThrowsError(try decodeVideoFrames(path: path, geometry: .kinetics, frameCount: 1, frameStride: 1)) {
            XCTAssertEqual($0 as? CaptureError, .noVideoStream(source: path))
        }
    }

    func testTruncatedFileYieldsWhatItHasThenPads() throws {
        let clip = try decodeVideoClip(path: try TestMedia.truncatedH264(), geometry: .kinetics, frameCount: 50, frameStride: 1)
        let decoded = 50 - clip.paddedFrameCount
        XCTAssertGreaterThan(decoded, 10)
        XCTAssertLessThan(decoded, 50)
        XCTAssertNotNil(clip.warning)
    }

    func testCorruptedMJPEGPacketsAreCountedAndSkipped() throws {
        let path = try TestMedia.corrupted(try TestMedia.mjpegAVI(), name: "corrupt.avi")
        let clip = try decodeVideoClip(path: path, geometry: .kinetics, frameCount: 50, frameStride: 1)
        XCTAssertGreaterThan(clip.decodeErrors, 0)
        let decoded = 50 - clip.paddedFrameCount
        // The damaged frames are skipped, the rest decode: the stream went on past the damage.
        XCTAssertGreaterThanOrEqual(decoded, 40)
        XCTAssertLessThan(decoded, 50)
    }

    func testCorruptedH264PacketsAreCountedAndTheStreamGoesOn() throws {
        let path = try TestMedia.corrupted(try TestMedia.h264(), name: "corrupt.mp4", spans: 3)
        let clip = try decodeVideoClip(path: path, geometry: .kinetics, frameCount: 50, frameStride: 1)
        XCTAssertGreaterThan(clip.decodeErrors, 0)
        let decoded = 50 - clip.paddedFrameCount
        // The damaged pictures fail and are skipped; decoding carries on after them.
        XCTAssertGreaterThanOrEqual(decoded, 10)
        XCTAssertLessThan(decoded, 50)
        print("corrupted H.264: \(decoded) of 50 frames decoded, \(clip.decodeErrors) decode errors")
    }

    func testResolutionChangeMidStreamKeepsTheOutputGeometry() throws {
        let clip = try decodeVideoClip(path: try TestMedia.resolutionChange(), geometry: .kinetics, frameCount: 50, frameStride: 1)
        XCTAssertEqual(clip.paddedFrameCount, 0)
        XCTAssertTrue(clip.frames.allSatisfy { $0.width == 224 && $0.height == 224 && $0.rgb.count == 224 * 224 * 3 })
    }
}

final class FrameGeometryTests: XCTestCase {
    func testKineticsCropOf1080pMatchesTorchvisionsRecipe() {
        // torchvision: resize to 455x256, crop 224 at left 116 (round(115.5)), top 16.
        // In source pixels (scale 1080/256 = 4.21875): x 489 -> even 488, y 67.5 -> 68, size 945.
        let rect = FrameGeometry.kinetics.sourceRect(sourceWidth: 1920, sourceHeight: 1080)
        XCTAssertEqual(rect, SourceRect(x: 488, y: 68, width: 945, height: 945))
        XCTAssertEqual(FrameGeometry.kinetics.width, 224)
        XCTAssertEqual(FrameGeometry.kinetics.byteCount, 224 * 224 * 3)
    }

    func testPortraitCropIsCentredVertically() {
        let rect = FrameGeometry.shortSideCenterCrop(shortSide: 256, crop: 224).sourceRect(sourceWidth: 256, sourceHeight: 512)
        XCTAssertEqual(rect, SourceRect(x: 16, y: 144, width: 224, height: 224))
    }

    func testStretchUsesTheWholePicture() {
        let geometry = FrameGeometry.stretch(width: 171, height: 128)
        XCTAssertEqual(geometry.sourceRect(sourceWidth: 640, sourceHeight: 480), SourceRect(x: 0, y: 0, width: 640, height: 480))
        XCTAssertEqual(geometry.byteCount, 171 * 128 * 3)
    }
}

final class RedactionTests: XCTestCase {
    func testUserInfoIsRedacted() {
        XCTAssertEqual(redactCredentials("rtsp://admin:s3cr%40t@10.0.0.5:554/Streaming/Channels/101"),
                       "rtsp://***@10.0.0.5:554/Streaming/Channels/101")
        XCTAssertEqual(redactCredentials("rtsps://user:p@ss@cam.local/live"), "rtsps://***@cam.local/live")
        XCTAssertEqual(redactCredentials("http://cam/video?user=admin&password=hunter2&res=hd"),
                       "http://cam/video?user=***&password=***&res=hd")
    }

    func testURLsWithoutSecretsAreUnchanged() {
        for url in ["rtsp://10.0.0.5/stream", "/dev/video0", "/tmp/a@b.mp4", "file:///tmp/clip.mp4", "http://cam/a?res=hd#x"] {
            XCTAssertEqual(redactCredentials(url), url)
        }
    }
}

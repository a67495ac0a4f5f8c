import Foundation
import TubeletStreaming
import XCTest

/// Regions of the picture: the geometry of crop / pad / stretch, and a capture that decodes each picture
/// once and converts it once per region into its own ring.
final class RegionCaptureTests: XCTestCase {
    let leftThird = RegionRect(x: 0, y: 0, width: 1.0 / 3, height: 1)

    func testRegionGeometry() {
        XCTAssertEqual(leftThird.pixels(sourceWidth: 1280, sourceHeight: 720), SourceRect(x: 0, y: 0, width: 427, height: 720))
        // crop: the largest centred square inside the region.
        let crop = FrameGeometry.region(leftThird, fit: .crop, width: 224, height: 224)
        XCTAssertEqual(crop.sourceRect(sourceWidth: 1280, sourceHeight: 720), SourceRect(x: 0, y: 146, width: 427, height: 427))
        XCTAssertEqual(crop.destinationRect(sourceWidth: 1280, sourceHeight: 720), SourceRect(x: 0, y: 0, width: 224, height: 224))
        // pad: all of the region, letterboxed.
        let pad = FrameGeometry.region(leftThird, fit: .pad, width: 224, height: 224)
        XCTAssertEqual(pad.sourceRect(sourceWidth: 1280, sourceHeight: 720), SourceRect(x: 0, y: 0, width: 427, height: 720))
        XCTAssertEqual(pad.destinationRect(sourceWidth: 1280, sourceHeight: 720), SourceRect(x: 45, y: 0, width: 133, height: 224))
        let wide = FrameGeometry.region(.full, fit: .pad, width: 32, height: 32)
        XCTAssertEqual(wide.destinationRect(sourceWidth: 1280, sourceHeight: 720), SourceRect(x: 0, y: 7, width: 32, height: 18))
        // stretch: all of the region, to the output's size.
        let stretch = FrameGeometry.region(leftThird, fit: .stretch, width: 224, height: 224)
        XCTAssertEqual(stretch.sourceRect(sourceWidth: 1280, sourceHeight: 720), SourceRect(x: 0, y: 0, width: 427, height: 720))
        XCTAssertEqual(stretch.destinationRect(sourceWidth: 1280, sourceHeight: 720), SourceRect(x: 0, y: 0, width: 224, height: 224))
        // Pixels outside the picture, or no area: nothing.
        XCTAssertNil(RegionRect(x: 1200, y: 0, width: 200, height: 100, units: .pixels).pixels(sourceWidth: 1280, sourceHeight: 720))
        XCTAssertEqual(RegionRect(x: 1000, y: 100, width: 200, height: 100, units: .pixels).pixels(sourceWidth: 1280, sourceHeight: 720),
                       SourceRect(x: 1000, y: 100, width: 200, height: 100))
        XCTAssertNil(RegionRect(x: 0.5, y: 0.5, width: 0, height: 0.2).pixels(sourceWidth: 1280, sourceHeight: 720))
    }

    /// 1280x720: the left third red, the rest blue. Two regions from one decode: the left third cropped
    /// (all red) and the whole picture padded (black bars above and below, red then blue across).
    func testOneDecodeConvertsEveryRegion() throws {
        let video = try TestMedia.file("thirds.mp4", ["-f", "lavfi", "-i", "color=red:size=426x720:rate=25:duration=1",
                                                      "-f", "lavfi", "-i", "color=blue:size=854x720:rate=25:duration=1",
                                                      "-filter_complex", "hstack", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "ultrafast"])
        let left = FrameGeometry.region(leftThird, fit: .crop, width: 32, height: 32)
        let whole = CaptureOutput(geometry: .region(.full, fit: .pad, width: 32, height: 32), capacity: 64)
        let outside = CaptureOutput(geometry: .region(RegionRect(x: 1200, y: 0, width: 200, height: 100, units: .pixels), fit: .crop,
                                                      width: 32, height: 32), capacity: 64)
        var options = makeOptions(video, geometry: left)
        options.ringCapacity = 64
        let problems = NSLock()
        nonisolated(unsafe) var reported: [(Int, String)] = []
        let states = StateRecorder()
        let source = CaptureSource(options: options, extraOutputs: [whole, outside], onStateChange: states.record) { index, problem in
            problems.withLock { reported.append((index, problem)) }
        }
        source.start()
        XCTAssertNotNil(states.waitFor("offline", timeout: 20))
        XCTAssertEqual(source.counters.framesDecoded, 25, "each picture decoded once")
        XCTAssertEqual(source.ring.producedCount, 25)
        XCTAssertEqual(whole.ring.producedCount, 25)
        XCTAssertEqual(outside.ring.producedCount, 0, "a region outside the picture gets nothing")
        problems.withLock {
            XCTAssertEqual(reported.map(\.0), [2], "reported once")
            XCTAssertTrue(reported.first?.1.contains("does not fit the 1280x720 picture") ?? false, "\(reported)")
        }

        func pixel(_ frame: Frame, _ x: Int, _ y: Int) -> (Int, Int, Int) {
            let i = (y * 32 + x) * 3
            return (Int(frame.rgb[i]), Int(frame.rgb[i + 1]), Int(frame.rgb[i + 2]))
        }
        func isRed(_ p: (Int, Int, Int)) -> Bool { p.0 > 200 && p.1 < 60 && p.2 < 60 }
        func isBlue(_ p: (Int, Int, Int)) -> Bool { p.0 < 60 && p.1 < 60 && p.2 > 200 }
        var frame = Frame()
        XCTAssertTrue(source.ring.makeReader(startingAt: .oldest).next(into: &frame, timeout: 1))
        for y in stride(from: 0, to: 32, by: 5) { for x in stride(from: 0, to: 32, by: 5) {
            XCTAssertTrue(isRed(pixel(frame, x, y)), "left third, (\(x), \(y)): \(pixel(frame, x, y))")
        }}
        XCTAssertTrue(whole.ring.makeReader(startingAt: .oldest).next(into: &frame, timeout: 1))
        XCTAssertEqual(pixel(frame, 16, 2).0 + pixel(frame, 16, 2).1 + pixel(frame, 16, 2).2, 0, "black bar above")
        XCTAssertEqual(pixel(frame, 16, 29).0 + pixel(frame, 16, 29).1 + pixel(frame, 16, 29).2, 0, "black bar below")
        XCTAssertTrue(isRed(pixel(frame, 4, 16)), "\(pixel(frame, 4, 16))")
        XCTAssertTrue(isBlue(pixel(frame, 26, 16)), "\(pixel(frame, 26, 16))")
    }
}

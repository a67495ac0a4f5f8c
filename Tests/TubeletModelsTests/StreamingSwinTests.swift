import Foundation
import XCTest
import TubeletKernels
import TubeletModels

/// The streaming engine against itself: a stream pushed hop by hop (cached key/value tiles) must give
/// the logits of the same stream pushed at once, with tile memory bounded by the receptive field.
final class StreamingSwinTests: XCTestCase {
    static let config = VideoSwinConfig(patchSize: [2, 4, 4], embedDim: 16, depths: [2, 2, 3], numHeads: [2, 4, 4],
                                        windowSize: [4, 4, 4], patchNorm: false, numClasses: 5, streaming: true)

    func randomModel(seed: UInt64) throws -> VideoSwin {
        try VideoSwin(config: Self.config, weights: randomWeights(seed: seed))
    }

    func randomFrames(_ count: Int, height: Int, width: Int, seed: UInt64) -> Tensor {
        var generator = SplitMix64(seed: seed)
        let frames = Tensor(uninitialized: [3, count, height, width])
        for i in 0..<frames.count { frames[i] = Float.random(in: -2...2, using: &generator) }
        return frames
    }

    /// frames[:, start..<end] as its own tensor.
    func frameRange(_ frames: Tensor, _ range: Range<Int>) -> Tensor {
        let (c, t, h, w) = (frames.shape[0], frames.shape[1], frames.shape[2], frames.shape[3])
        let out = Tensor(uninitialized: [c, range.count, h, w])
        for channel in 0..<c {
            (out.data + channel * range.count * h * w).update(from: frames.data + (channel * t + range.lowerBound) * h * w,
                                                              count: range.count * h * w)
        }
        return out
    }

    func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
              let pages = Int(text.split(separator: " ")[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    func testHopByHopEqualsWholeStreamOverAThousandClips() throws {
        let model = try randomModel(seed: 7)
        let (clipTokens, hopTokens, clips) = (8, 2, 1000)
        let slices = clipTokens + hopTokens * (clips - 1)
        let (height, width) = (28, 36)  // odd token grids: 7x9, then 4x5 and 2x3 (clamped)
        let frames = randomFrames(2 * slices, height: height, width: width, seed: 11)

        let whole = SwinStream(model: model, keptSlices: slices)
        whole.push(frames)

        let incremental = SwinStream(model: model, keptSlices: clipTokens)
        incremental.push(frameRange(frames, 0..<2 * clipTokens))
        var worst: Float = 0
        var tileCounts: [Int] = []
        var memoryAtClip100 = 0
        for clip in 0..<clips {
            if clip > 0 {
                let end = 2 * (clipTokens + clip * hopTokens)
                incremental.push(frameRange(frames, (end - 2 * hopTokens)..<end))
            }
            let end = clipTokens + clip * hopTokens
            let streamed = incremental.clipLogits(clipTokens: clipTokens)
            let reference = whole.clipLogits(clipTokens: clipTokens, endTime: end)
            var largest: Float = 0
            for i in 0..<reference.count { largest = max(largest, abs(reference[i])) }
            for i in 0..<reference.count { worst = max(worst, abs(streamed[i] - reference[i]) / max(largest, 1e-3)) }
            let top = { (t: Tensor) in (0..<t.count).max { t[$0] < t[$1] }! }
            XCTAssertEqual(top(streamed), top(reference), "clip \(clip): top-1 differs")
            tileCounts.append(incremental.cachedSlices)
            if clip == 100 { memoryAtClip100 = residentBytes() }
        }
        XCTAssertLessThanOrEqual(worst, 1e-5, "max relative |Δlogit| over \(clips) clips")
        // Each of the 7 blocks keeps at most Wt - 1 = 3 old slices between hops.
        XCTAssertLessThanOrEqual(tileCounts.max()!, 7 * 3)
        XCTAssertEqual(Set(tileCounts.suffix(500)).count <= 2, true, "tile count should be periodic, got \(Set(tileCounts.suffix(500)))")
        XCTAssertLessThan(residentBytes() - memoryAtClip100, 8 << 20, "resident memory grew over 900 clips")
    }

    func testFutureFramesDoNotChangePastFeatures() throws {
        let model = try randomModel(seed: 3)
        let frames = randomFrames(24, height: 16, width: 16, seed: 5)
        let altered = frames.copy()
        // Change every frame from 16 on (token time 8 on).
        for c in 0..<3 { for i in (c * 24 + 16) * 256..<(c * 24 + 24) * 256 { altered[i] += 1 } }
        var first: Tensor?, second: Tensor?
        SwinStream(model: model, keptSlices: 12).push(frames) { first = $0.copy() }
        SwinStream(model: model, keptSlices: 12).push(altered) { second = $0.copy() }
        let before = first!.count / 12 * 8
        let (a, b) = (first!.array, second!.array)
        XCTAssertEqual(Array(a.prefix(before)), Array(b.prefix(before)), "slices before the change must be bitwise equal")
        XCTAssertNotEqual(Array(a.dropFirst(before)), Array(b.dropFirst(before)))
    }

    func testWindowsAreAnchoredToAbsoluteTime() throws {
        // The same frames at another absolute start time fall into other temporal windows.
        let model = try randomModel(seed: 9)
        let frames = randomFrames(16, height: 16, width: 16, seed: 1)
        let atZero = SwinStream(model: model, startTokenTime: 0, keptSlices: 8)
        atZero.push(frames)
        let atOne = SwinStream(model: model, startTokenTime: 1, keptSlices: 8)
        atOne.push(frames)
        let atFour = SwinStream(model: model, startTokenTime: 4, keptSlices: 8)
        atFour.push(frames)
        XCTAssertNotEqual(atZero.clipLogits(clipTokens: 8).array, atOne.clipLogits(clipTokens: 8).array)
        // Shifting by a whole period of both window grids (Wt = 4, shift 2) changes nothing.
        XCTAssertEqual(atZero.clipLogits(clipTokens: 8).array, atFour.clipLogits(clipTokens: 8).array)
    }
}

import Foundation
import XCTest
import TubeletKernels
import TubeletLoading
import TubeletModels
import TubeletStreaming

/// UniFormer in the scheduler on real ffmpeg-encoded video. Its first patch embedding reads one frame
/// before each two-frame unit (kernel 3, stride 2, padding 1 in time), so `exact` reuses every unit's
/// embedding computed against its real previous frame and embeds only the clip's first unit again
/// (against the clip's zero padding): bit for bit what `none` computes.
final class UniFormerSchedulerTests: XCTestCase {
    /// 96x72 testsrc2, H.264, made once per test run.
    func encodeVideo(seconds: Int) throws -> String {
        try TestMedia.file("testsrc2-96x72-\(seconds)s.mp4", TestMedia.testsrc(size: "96x72", seconds: Double(seconds)) + ["-c:v", "libx264", "-pix_fmt", "yuv420p"])
    }

    func writeModel(_ config: UniFormerConfig, crop: Int) throws -> TubeletModel {
        let random = randomWeights(seed: 21)
        let weights = try config.parameterShapes().map { name, shape in (name: name, tensor: try random(name, shape)) }
        let recipe = Preprocessing(frames: 8, frameStride: 2, resizeShortSide: crop, cropSize: crop, pixelScale: 1.0 / 255,
                                   mean: [0.45, 0.45, 0.45], std: [0.225, 0.225, 0.225])
        let path = TestMedia.directory.appendingPathComponent("uniformer-\(UUID().uuidString).safetensors").path
        try ModelFile.write(architecture: UniFormer.architecture, configJSON: try ModelFile.encodeConfig(config), weights: weights,
                            preprocessing: recipe, labels: (0..<config.numClasses).map { "action\($0)" }, source: "test", to: path)
        return try ModelFile.load(path: path)
    }

    func testExactEqualsNoneBitForBitOnEveryClipOfARealVideo() throws {
        let config = UniFormerConfig(embedDims: [16, 16, 24, 32], depths: [1, 1, 1, 1], headDim: 8, split: true, numClasses: 5)
        let model = try writeModel(config, crop: 48)
        let geometry = ClipScheduler.geometry(for: model)
        guard let uniformer = model.network as? UniFormer else { return XCTFail("not a UniFormer") }
        let unitGflop = uniformer.embedFlops(tokens: (48 / 4) * (48 / 4)) / 1e9
        let reader = try VideoFileReader(path: try encodeVideo(seconds: 4), geometry: geometry, frameStride: 2)
        var video: [Frame] = []
        while let frame = try reader.next() { video.append(frame) }  // 50 sampled frames
        for (clipFrames, hop) in [(8, 2), (16, 6)] {
            let none = try ClipScheduler(model: model, settings: WindowSettings(clipFrames: clipFrames, frameStride: 2, hop: hop, reuse: .none))
            let exact = try ClipScheduler(model: model, settings: WindowSettings(clipFrames: clipFrames, frameStride: 2, hop: hop, reuse: .exact))
            var clips = 0, distinct = Set<[Float]>()
            for frame in video {
                let a = none.push(frame: frame), b = exact.push(frame: frame)
                XCTAssertEqual(a == nil, b == nil)
                guard let a, let b else { continue }
                XCTAssertEqual(a.logits, b.logits, "\(clipFrames) frames, hop \(hop), clip \(a.sequence): exact must equal none bit for bit")
                XCTAssertEqual(a.gflopComputed, a.gflopFullClip, accuracy: 1e-9, "none computes the whole clip")
                if a.sequence > 0 {
                    // exact embeds hop/2 new units and the clip's first unit again instead of clip/2 units.
                    let saved = Double(clipFrames / 2 - hop / 2 - 1) * unitGflop
                    XCTAssertEqual(b.gflopComputed, a.gflopComputed - saved, accuracy: 1e-9, "clip \(a.sequence)")
                }
                distinct.insert(a.logits)
                clips += 1
            }
            XCTAssertEqual(clips, (video.count - clipFrames) / hop + 1)
            XCTAssertGreaterThanOrEqual(distinct.count, clips / 2, "the logits depend on the video")
        }

        // none equals the model on the whole clip at once (one GEMM for every token of the stem, so
        // up to rounding), and the exact embedding of a unit against its previous frame is what the
        // whole clip computes for that unit.
        let clip = Tensor(uninitialized: [3, 8, geometry.height, geometry.width])
        for t in 0..<8 { video[t].rgb.withUnsafeBufferPointer { model.preprocessing.normalise(frame: $0, into: clip, at: t) } }
        let fresh = try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 8, frameStride: 2, hop: 2, reuse: .none))
        var first: ClipResult?
        for frame in video.prefix(8) { first = fresh.push(frame: frame) ?? first }
        let whole = model.logits(clip).array, scheduled = try XCTUnwrap(first).logits
        let scale = max(1, whole.map(abs).max()!)
        for (a, b) in zip(scheduled, whole) { XCTAssertEqual(a, b, accuracy: 1e-5 * scale) }
    }

    func testUniFormerRefusesKVAndOddHopsInExact() throws {
        let model = try writeModel(UniFormerConfig(embedDims: [8, 8, 8, 8], depths: [1, 0, 1, 0], headDim: 8, numClasses: 3), crop: 32)
        XCTAssertThrowsError(try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 8, hop: 2, reuse: .kv))) {
            XCTAssertTrue("\($0)".contains("uniformer"), "\($0)")
        }
        XCTAssertThrowsError(try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 8, hop: 3, reuse: .exact))) {
            XCTAssertTrue("\($0)".contains("2-frame"), "\($0)")
        }
        XCTAssertNoThrow(try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 7, hop: 3, reuse: .none)))
    }
}

import Foundation
import XCTest
import TubeletKernels
import TubeletLoading
import TubeletModels
import TubeletStreaming

/// ViViT Model 2 (factorised encoder) in the scheduler on real ffmpeg-encoded video: `exact` reuses
/// every tubelet's spatial-encoder output and reruns only the temporal encoder, bit for bit what
/// `none` computes.
final class ScenicSchedulerTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("tubelet-scenic-scheduler-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    func encodeVideo(seconds: Int) throws -> String {
        let path = scratch.appendingPathComponent("testsrc2-\(seconds).mp4").path
        let ffmpeg = Process()
        ffmpeg.executableURL = URL(fileURLWithPath: "/usr/bin/ffmpeg")
        ffmpeg.arguments = ["-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=96x72:rate=25", "-t", "\(seconds)",
                            "-c:v", "libx264", "-pix_fmt", "yuv420p", path]
        try ffmpeg.run()
        ffmpeg.waitUntilExit()
        XCTAssertEqual(ffmpeg.terminationStatus, 0)
        return path
    }

    func writeModel(_ config: ScenicViViTConfig) throws -> TubeletModel {
        let random = randomWeights(seed: 11)
        let weights = try config.parameterShapes().map { name, shape in (name: name, tensor: try random(name, shape)) }
        let recipe = Preprocessing(frames: config.numFrames, frameStride: 1, resizeShortSide: config.imageSize, cropSize: config.imageSize,
                                   pixelScale: 1.0 / 255, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25])
        let path = scratch.appendingPathComponent("vivit2-\(UUID().uuidString).safetensors").path
        try ModelFile.write(architecture: ScenicViViT.architecture, configJSON: try ModelFile.encodeConfig(config), weights: weights,
                            preprocessing: recipe, labels: (0..<config.numClasses).map { "action\($0)" }, source: "test", to: path)
        return try ModelFile.load(path: path)
    }

    func testModel2ExactEqualsNoneBitForBitAndRerunsOnlyTheTemporalEncoder() throws {
        let config = ScenicViViTConfig(variant: .factorisedEncoder, imageSize: 48, numFrames: 16, tubeletSize: [2, 8, 8], hiddenSize: 48,
                                       numClasses: 6, encoder: .init(layers: 3, heads: 4, mlpDim: 96),
                                       temporal: .init(layers: 1, heads: 4, mlpDim: 96))
        let model = try writeModel(config)
        let geometry = ClipScheduler.geometry(for: model)
        let reader = try VideoFileReader(path: try encodeVideo(seconds: 6), geometry: geometry, frameStride: 2)
        var video: [Frame] = []
        while let frame = try reader.next() { video.append(frame) }  // 75 sampled frames
        // Quarter-clip hop: 4 of 16 frames (2 of 8 tubelets).
        let none = try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 16, frameStride: 2, hop: 4, reuse: .none))
        let exact = try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 16, frameStride: 2, hop: 4, reuse: .exact))
        var clips = 0, distinct = Set<[Float]>()
        for frame in video {
            let a = none.push(frame: frame), b = exact.push(frame: frame)
            XCTAssertEqual(a == nil, b == nil)
            guard let a, let b else { continue }
            XCTAssertEqual(a.logits, b.logits, "clip \(a.sequence): exact must equal none bit for bit")
            XCTAssertEqual(a.gflopFullClip, b.gflopFullClip)
            XCTAssertEqual(a.gflopComputed, a.gflopFullClip, accuracy: 1e-9, "none computes the whole clip")
            if a.sequence > 0 {
                XCTAssertLessThanOrEqual(b.gflopComputed, 0.35 * a.gflopComputed, "clip \(a.sequence): exact must cost ≤ 0.35x of none")
            }
            distinct.insert(a.logits)
            clips += 1
        }
        XCTAssertEqual(clips, (video.count - 16) / 4 + 1)
        XCTAssertGreaterThanOrEqual(distinct.count, 10, "the logits depend on the video")

        // none equals the model run on the whole clip at once.
        let clip = Tensor(uninitialized: [3, 16, geometry.height, geometry.width])
        for t in 0..<16 { video[t].rgb.withUnsafeBufferPointer { model.preprocessing.normalise(frame: $0, into: clip, at: t) } }
        let fresh = try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 16, frameStride: 2, hop: 4, reuse: .none))
        var first: ClipResult?
        for frame in video.prefix(16) { first = fresh.push(frame: frame) ?? first }
        XCTAssertEqual(try XCTUnwrap(first).logits, model.logits(clip).array)
    }

    /// Models 3 and 4 reuse per-tubelet embeddings only (their attention mixes time): still bit for bit.
    func testModels3And4ExactEqualsNone() throws {
        let reader = try VideoFileReader(path: try encodeVideo(seconds: 3), geometry: .shortSideCenterCrop(shortSide: 32, crop: 32), frameStride: 2)
        var video: [Frame] = []
        while let frame = try reader.next() { video.append(frame) }
        for variant in [ScenicViViTConfig.Variant.factorisedSelfAttention, .factorisedDotProduct] {
            let config = ScenicViViTConfig(variant: variant, imageSize: 32, numFrames: 8, tubeletSize: [2, 8, 8], hiddenSize: 32,
                                           numClasses: 4, encoder: .init(layers: 2, heads: 4, mlpDim: 64))
            let model = try writeModel(config)
            let none = try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 8, frameStride: 2, hop: 2, reuse: .none))
            let exact = try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 8, frameStride: 2, hop: 2, reuse: .exact))
            var clips = 0
            for frame in video {
                let a = none.push(frame: frame), b = exact.push(frame: frame)
                guard let a, let b else { continue }
                XCTAssertEqual(a.logits, b.logits, "Model \(variant.rawValue), clip \(a.sequence)")
                clips += 1
            }
            XCTAssertEqual(clips, (video.count - 8) / 2 + 1)
        }
    }
}

import Foundation
import XCTest
import TubeletKernels
import TubeletLoading
import TubeletModels
import TubeletStreaming

/// The scheduler's reuse modes on real ffmpeg-encoded video: `exact` is bit-for-bit `none`, and `kv`
/// on a streaming-native model equals the whole stream computed at once.
final class SchedulerTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("tubelet-scheduler-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    /// An H.264 file of moving test patterns made by ffmpeg.
    func encodeVideo(seconds: Int, size: String = "96x72", pattern: String = "testsrc2") throws -> String {
        let path = scratch.appendingPathComponent("\(pattern)-\(seconds).mp4").path
        let ffmpeg = Process()
        ffmpeg.executableURL = URL(fileURLWithPath: "/usr/bin/ffmpeg")
        ffmpeg.arguments = ["-loglevel", "error", "-y", "-f", "lavfi", "-i", "\(pattern)=size=\(size):rate=25", "-t", "\(seconds)",
                            "-c:v", "libx264", "-pix_fmt", "yuv420p", path]
        try ffmpeg.run()
        ffmpeg.waitUntilExit()
        XCTAssertEqual(ffmpeg.terminationStatus, 0)
        return path
    }

    /// A model file with seeded random weights.
    func writeModel(_ config: VideoSwinConfig, crop: Int, subtractFrameMean: Bool = false) throws -> TubeletModel {
        let random = randomWeights(seed: 42)
        let weights = try config.parameterShapes().map { name, shape in (name: name, tensor: try random(name, shape)) }
        let recipe = Preprocessing(frames: 16, frameStride: 1, resizeShortSide: crop, cropSize: crop, pixelScale: 1.0 / 255,
                                   mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], subtractFrameMean: subtractFrameMean)
        let path = scratch.appendingPathComponent("model-\(UUID().uuidString).safetensors").path
        try ModelFile.write(videoSwin: config, weights: weights, preprocessing: recipe, labels: (0..<config.numClasses).map { "action\($0)" },
                            source: "test", to: path)
        return try ModelFile.load(path: path)
    }

    func frames(_ path: String, geometry: FrameGeometry, stride: Int) throws -> [Frame] {
        let reader = try VideoFileReader(path: path, geometry: geometry, frameStride: stride)
        var frames: [Frame] = []
        while let frame = try reader.next() { frames.append(frame) }
        return frames
    }

    func testExactEqualsNoneBitForBitOnEveryClipOfARealVideo() throws {
        let config = VideoSwinConfig(embedDim: 16, depths: [2, 2], numHeads: [2, 4], windowSize: [4, 4, 4], numClasses: 6)
        let model = try writeModel(config, crop: 48)
        let geometry = ClipScheduler.geometry(for: model)
        let video = try frames(try encodeVideo(seconds: 6), geometry: geometry, stride: 2)  // 75 sampled frames
        let none = try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 16, frameStride: 2, hop: 4, reuse: .none))
        let exact = try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 16, frameStride: 2, hop: 4, reuse: .exact))
        var clips = 0
        for frame in video {
            let a = none.push(frame: frame), b = exact.push(frame: frame)
            XCTAssertEqual(a == nil, b == nil)
            guard let a, let b else { continue }
            XCTAssertEqual(a.logits, b.logits, "clip \(a.sequence): exact must equal none bit for bit (same GEMM shapes)")
            XCTAssertEqual(a.clipStart, b.clipStart)
            if a.sequence > 0 {  // the first clip has no earlier tubelets to reuse
                XCTAssertLessThan(b.gflopComputed, a.gflopComputed, "exact must compute less")
            }
            XCTAssertEqual(a.gflopFullClip, b.gflopFullClip)
            clips += 1
        }
        XCTAssertEqual(clips, (video.count - 16) / 4 + 1)
        // The logits really depend on the video: consecutive clips differ.
        XCTAssertGreaterThanOrEqual(clips, 10)
    }

    func testKVOnAStreamingNativeModelEqualsTheWholeStream() throws {
        let config = VideoSwinConfig(embedDim: 16, depths: [2, 3], numHeads: [2, 4], windowSize: [4, 4, 4], patchNorm: false,
                                     numClasses: 5, streaming: true)
        let model = try writeModel(config, crop: 32, subtractFrameMean: true)
        guard let swin = model.network as? VideoSwin else { return XCTFail() }
        let geometry = ClipScheduler.geometry(for: model)
        let video = try frames(try encodeVideo(seconds: 8), geometry: geometry, stride: 1)  // 200 frames
        let kv = try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 16, hop: 4, reuse: .kv))
        let none = try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 16, hop: 4, reuse: .none))

        // Reference: the whole stream through the model at once, from the same normalised frames.
        let usable = video.count / 2 * 2
        let all = Tensor(uninitialized: [3, usable, geometry.height, geometry.width])
        for t in 0..<usable { video[t].rgb.withUnsafeBufferPointer { model.preprocessing.normalise(frame: $0, into: all, at: t) } }
        let whole = SwinStream(model: swin, keptSlices: usable / 2)
        whole.push(all)

        var clips = 0, agreeWithScratch = 0
        var ratios: [Double] = []
        for (index, frame) in video.prefix(usable).enumerated() {
            let fromScratch = none.push(frame: frame)
            guard let result = kv.push(frame: frame) else { continue }
            let endToken = (index + 1) / 2
            let reference = whole.clipLogits(clipTokens: 8, endTime: endToken).array
            let largest = reference.map(abs).max()!
            for (a, b) in zip(result.logits, reference) {
                XCTAssertLessThanOrEqual(abs(a - b), 1e-5 * max(largest, 1), "clip \(result.sequence)")
            }
            if let fromScratch {
                if fromScratch.top[0].index == result.top[0].index { agreeWithScratch += 1 }
                ratios.append(result.gflopComputed / fromScratch.gflopComputed)
            }
            clips += 1
        }
        XCTAssertEqual(clips, (usable - 16) / 4 + 1)
        // kv computes about a quarter of a clip per label at a quarter-clip hop.
        XCTAssertLessThan(ratios.dropFirst().max()!, 0.40, "kv GFLOP per label vs a clip from scratch")
        XCTAssertGreaterThan(agreeWithScratch, 0)
    }

    func testClipsOfTwoCamerasDueTogetherShareOneForwardPass() throws {
        let config = VideoSwinConfig(embedDim: 16, depths: [2, 2], numHeads: [2, 4], windowSize: [4, 4, 4], numClasses: 6)
        let model = try writeModel(config, crop: 48)
        let geometry = ClipScheduler.geometry(for: model)
        let cameras = [try frames(try encodeVideo(seconds: 3, pattern: "testsrc2"), geometry: geometry, stride: 2),
                       try frames(try encodeVideo(seconds: 3, pattern: "mandelbrot"), geometry: geometry, stride: 2)]
        let settings = WindowSettings(clipFrames: 16, frameStride: 2, hop: 4, reuse: .exact)
        let alone = try cameras.map { _ in try ClipScheduler(model: model, settings: settings) }
        let batched = try cameras.map { _ in try ClipScheduler(model: model, settings: settings) }
        var passes = 0
        for index in 0..<min(cameras[0].count, cameras[1].count) {
            let separate = (0..<2).compactMap { alone[$0].push(frame: cameras[$0][index]) }
            let due = (0..<2).compactMap { batched[$0].pushDeferred(frame: cameras[$0][index]) }
            XCTAssertEqual(separate.count, due.count)
            guard !due.isEmpty else { continue }
            var sizes: [Int] = []
            let results = ClipScheduler.evaluate(due, passSizes: &sizes)
            XCTAssertEqual(sizes, [due.count], "both cameras' clips in one forward pass")
            passes += 1
            for (one, together) in zip(separate, results) {
                let largest = one.logits.map(abs).max()!
                for (a, b) in zip(one.logits, together.logits) {
                    XCTAssertEqual(a, b, accuracy: 1e-5 * max(largest, 1), "clip \(one.sequence)")
                }
                XCTAssertEqual(one.sequence, together.sequence)
                XCTAssertEqual(one.clipEnd, together.clipEnd)
                XCTAssertEqual(one.gflopComputed, together.gflopComputed, accuracy: 1e-9)
            }
            // The two cameras really see different things.
            XCTAssertNotEqual(results[0].logits, results[1].logits)
        }
        XCTAssertGreaterThanOrEqual(passes, 5)
    }

    /// The stale-token approximation: refresh clips are exact, the others cheaper and only approximately equal.
    func testApproximateKVOnAClipTrainedModel() throws {
        let config = VideoSwinConfig(embedDim: 16, depths: [2, 2], numHeads: [2, 4], windowSize: [4, 4, 4], numClasses: 6)
        let model = try writeModel(config, crop: 48)
        let video = try frames(try encodeVideo(seconds: 6), geometry: ClipScheduler.geometry(for: model), stride: 2)
        func run(_ refresh: Int?) throws -> [(approximate: ClipResult, reference: ClipResult)] {
            let approximate = try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 16, frameStride: 2, hop: 4, reuse: .kv,
                                                                                       refresh: refresh, approximate: true))
            let none = try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 16, frameStride: 2, hop: 4, reuse: .none))
            return video.compactMap { frame in
                let a = approximate.push(frame: frame), b = none.push(frame: frame)
                XCTAssertEqual(a == nil, b == nil)
                return a.map { ($0, b!) }
            }
        }
        func maxRelativeDelta(_ a: ClipResult, _ b: ClipResult) -> Float {
            let largest = max(b.logits.map(abs).max()!, 1e-3)
            return zip(a.logits, b.logits).map { abs($0 - $1) / largest }.max()!
        }
        // Refreshing every label is the exact computation.
        for (a, b) in try run(1) { XCTAssertLessThanOrEqual(maxRelativeDelta(a, b), 1e-5, "refresh 1, clip \(a.sequence)") }
        // Refresh every 2 labels: labels 0, 2, 4, … exact; the others approximate and cheaper.
        let pairs = try run(2)
        XCTAssertGreaterThanOrEqual(pairs.count, 10)
        var approximateDeltas: [Float] = []
        for (a, b) in pairs {
            if a.sequence % 2 == 0 {
                XCTAssertLessThanOrEqual(maxRelativeDelta(a, b), 1e-5, "refresh clip \(a.sequence)")
            } else {
                approximateDeltas.append(maxRelativeDelta(a, b))
                XCTAssertLessThan(a.gflopComputed, 0.45 * b.gflopComputed, "an approximate label computes about hop/clip")
                XCTAssertTrue(a.logits.allSatisfy(\.isFinite))
            }
        }
        // Stale tokens really are an approximation: not equal, but not garbage either.
        XCTAssertGreaterThan(approximateDeltas.max()!, 1e-4)
        XCTAssertLessThan(approximateDeltas.max()!, 1.0)
    }

    func testApproximateFlagsAreChecked() throws {
        let clipTrained = try writeModel(VideoSwinConfig(embedDim: 16, depths: [2], numHeads: [2], windowSize: [4, 4, 4], numClasses: 3), crop: 32)
        XCTAssertThrowsError(try ClipScheduler(model: clipTrained, settings: WindowSettings(clipFrames: 16, hop: 4, reuse: .exact, approximate: true)))
        XCTAssertThrowsError(try ClipScheduler(model: clipTrained, settings: WindowSettings(clipFrames: 16, hop: 4, reuse: .kv, refresh: 2))) {
            XCTAssertTrue("\($0)".contains("--approximate"))
        }
        XCTAssertThrowsError(try ClipScheduler(model: clipTrained, settings: WindowSettings(clipFrames: 16, hop: 4, reuse: .kv, refresh: 0, approximate: true)))
        let streaming = try writeModel(VideoSwinConfig(embedDim: 16, depths: [2], numHeads: [2], windowSize: [4, 4, 4], patchNorm: false,
                                                       numClasses: 3, streaming: true), crop: 32)
        XCTAssertThrowsError(try ClipScheduler(model: streaming, settings: WindowSettings(clipFrames: 16, hop: 4, reuse: .kv, approximate: true)))
    }

    func testKVIsRefusedForAClipTrainedModel() throws {
        let config = VideoSwinConfig(embedDim: 16, depths: [2], numHeads: [2], windowSize: [4, 4, 4], numClasses: 3)
        let model = try writeModel(config, crop: 32)
        XCTAssertThrowsError(try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 16, hop: 4, reuse: .kv))) { error in
            XCTAssertTrue("\(error)".contains("clip-trained"), "\(error)")
            XCTAssertTrue("\(error)".contains("--reuse exact"), "\(error)")
        }
        XCTAssertThrowsError(try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 15, hop: 4, reuse: .exact))) { error in
            XCTAssertTrue("\(error)".contains("multiples"), "\(error)")
        }
    }

    /// A TimeSformer or ViViT model file with seeded random weights (architecture, config, shapes).
    func writeViTModel(architecture: String, configJSON: String, shapes: [(name: String, shape: [Int])], frames: Int) throws -> TubeletModel {
        var state: UInt64 = 7
        func random() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 1_000_000) / 1_000_000
        }
        let weights = shapes.map { name, shape -> (name: String, tensor: Tensor) in
            let t = Tensor(uninitialized: shape)
            let fanIn = shape.count > 1 ? shape.dropFirst().reduce(1, *) : 1
            for i in 0..<t.count {
                let r = 2 * random() - 1
                t[i] = name.contains("norm") && name.hasSuffix("weight") ? 1 + 0.2 * r
                    : name.hasSuffix("embeddings") || name.hasSuffix("cls_token") ? 0.5 * r
                    : (shape.count > 1 ? 1.7 * r / Float(fanIn).squareRoot() : 0.1 * r)
            }
            return (name, t)
        }
        let recipe = Preprocessing(frames: frames, frameStride: 1, resizeShortSide: 32, cropSize: 32, pixelScale: 1.0 / 255,
                                   mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25])
        let path = scratch.appendingPathComponent("model-\(UUID().uuidString).safetensors").path
        try ModelFile.write(architecture: architecture, configJSON: configJSON, weights: weights, preprocessing: recipe,
                            labels: [], source: "test", to: path)
        return try ModelFile.load(path: path)
    }

    /// TimeSformer (per-frame patch embeddings reused) and ViViT Model 1 (per-tubelet embeddings
    /// reused): `exact` equals `none` bit for bit, and `none` equals the model on the same clip.
    func testExactEqualsNoneForTimeSformerAndViViT() throws {
        let timesformer = TimeSformerConfig(imageSize: 32, patchSize: 8, numFrames: 8, hiddenSize: 32, numLayers: 2, numHeads: 2,
                                            intermediateSize: 64, numClasses: 4)
        let vivit = ViViTConfig(imageSize: 32, numFrames: 8, tubeletSize: [2, 16, 16], hiddenSize: 32, numLayers: 2, numHeads: 2,
                                intermediateSize: 64, numClasses: 3)
        let models = [
            try writeViTModel(architecture: TimeSformer.architecture, configJSON: try ModelFile.encodeConfig(timesformer),
                              shapes: timesformer.parameterShapes(), frames: 8),
            try writeViTModel(architecture: ViViT.architecture, configJSON: try ModelFile.encodeConfig(vivit),
                              shapes: vivit.parameterShapes(), frames: 8),
        ]
        for model in models {
            let geometry = ClipScheduler.geometry(for: model)
            let video = try frames(try encodeVideo(seconds: 2), geometry: geometry, stride: 2)  // 25 sampled frames
            let none = try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 8, frameStride: 2, hop: 2, reuse: .none))
            let exact = try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 8, frameStride: 2, hop: 2, reuse: .exact))
            var clips = 0
            for (index, frame) in video.enumerated() {
                let a = none.push(frame: frame), b = exact.push(frame: frame)
                XCTAssertEqual(a == nil, b == nil)
                guard let a, let b else { continue }
                XCTAssertEqual(a.logits, b.logits, "\(model.architecture) clip \(a.sequence): exact must equal none bit for bit")
                if a.sequence > 0 { XCTAssertLessThan(b.gflopComputed, a.gflopComputed, "\(model.architecture): exact must compute less") }
                // The scheduler's clip is the model's clip.
                let clip = Tensor(uninitialized: [3, 8, geometry.height, geometry.width])
                for t in 0..<8 { video[index - 7 + t].rgb.withUnsafeBufferPointer { model.preprocessing.normalise(frame: $0, into: clip, at: t) } }
                let direct = model.logits(clip).array
                let largest = direct.map(abs).max()!
                for (x, y) in zip(a.logits, direct) { XCTAssertLessThanOrEqual(abs(x - y), 1e-5 * max(1, largest), model.architecture) }
                clips += 1
            }
            XCTAssertEqual(clips, (video.count - 8) / 2 + 1, model.architecture)
        }
        XCTAssertThrowsError(try ClipScheduler(model: models[1], settings: WindowSettings(clipFrames: 16, hop: 4, reuse: .none))) { error in
            XCTAssertTrue("\(error)".contains("expects 8 frames"), "\(error)")
        }
        XCTAssertThrowsError(try ClipScheduler(model: models[0], settings: WindowSettings(clipFrames: 8, hop: 2, reuse: .kv)))
    }
}

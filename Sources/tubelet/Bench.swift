import ArgumentParser
import Foundation
import TubeletKernels
import TubeletLoading
import TubeletModels
import TubeletStreaming

/// Times a full-clip forward pass of a Video Swin, TimeSformer or ViViT topology (random weights),
/// or of a Video Swin model file.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Seconds per clip and GFLOP/s for a model file or a topology with random weights.")

    @Option(help: "A Tubelet model file to time (default: --topology with random weights).") var model: String?
    @Option(help: "Topology with random weights: swin3d_t, swin3d_s, swin3d_b, timesformer_b (divided, patch 16), vivit_b (Model 1, tubelet 2x16x16), vivit_b_fe (scenic Model 2, factorised encoder: 12 spatial + 4 temporal layers, tubelet 2x16x16; the paper's Kinetics clip is 32x224), uniformer_s or uniformer_b (400 classes); the ViT-style ones are built for --frames frames and --size pixels.") var topology = "swin3d_t"
    @Option(help: "Frames per clip.") var frames = 16
    @Option(help: "Height and width of the clip.") var size = 224
    @Option(name: .customLong("repeat"), help: "Timed runs after one warm-up; the best is reported.") var repeats = 3
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(help: "Streaming-native form of the topology: time kv reuse per label beside a clip from scratch.") var streaming = false
    @Option(help: "With --streaming: sampled frames between labels.") var hop = 8
    @Option(help: "With --streaming: labels timed in kv mode.") var labels = 8
    @Option(help: "Classes of the random-weight topology's head.") var classes = 400
    @Option(help: "Write the random-weight Video Swin topology (with --streaming: its streaming-native form) as a model file to this path (torchvision's Kinetics recipe with --frames frames, stride 2) instead of timing it.")
    var writeModel: String?

    func validate() throws {
        guard repeats >= 1, labels >= 1, frames >= 1, size >= 1, classes >= 1 else {
            throw ValidationError("--repeat, --labels, --frames, --size and --classes must be at least 1")
        }
        if writeModel != nil && model != nil { throw ValidationError("--write-model writes a random-weight topology, not --model") }
    }

    func run() throws {
        let model: VideoSwin
        let name: String
        if let path = self.model {
            let loaded: TubeletModel
            do { loaded = try ModelFile.load(path: path) } catch { fail("\(error)") }
            let native = loaded.network.keyValueStreaming?.streamingNative ?? false
            guard native == streaming else {
                fail("\(path) is \(native ? "" : "not ")streaming-native: \(streaming ? "drop" : "add") --streaming")
            }
            let clip = randomClip()
            let name = URL(fileURLWithPath: path).lastPathComponent
            if streaming {
                return benchStreaming(loaded.network.keyValueStreaming!, unitFrames: loaded.network.tubeletEmbedding!.unitFrames, name: name, clip: clip)
            }
            if let problem = loaded.inputProblem(clip.shape) { fail("\(path): \(problem)") }
            return time(name, clip: clip, gflop: loaded.gflop(frames: frames, height: size, width: size)) { loaded.logits($0) }
        } else {
            var config: VideoSwinConfig
            switch topology {
            case "swin3d_t": config = .swin3dT(numClasses: classes)
            case "swin3d_s": config = .swin3dS(numClasses: classes)
            case "swin3d_b": config = .swin3dB(numClasses: classes)
            case "timesformer_b", "vivit_b", "vivit_b_fe": return try benchViT()
            case "uniformer_s", "uniformer_b":
                if streaming { fail("--streaming is for Video Swin topologies") }
                let config: UniFormerConfig = topology == "uniformer_s" ? .small() : .base()
                return timeUniFormer(try UniFormer(config: config, weights: randomWeights(seed: 0)), name: topology)
            default: fail("unknown topology '\(topology)' (expected swin3d_t, swin3d_s, swin3d_b, timesformer_b, vivit_b, vivit_b_fe, uniformer_s or uniformer_b)")
            }
            config.streaming = streaming
            if let path = writeModel { return try write(config, to: path) }
            (model, name) = (try VideoSwin(config: config, weights: randomWeights(seed: 0)), topology)
        }
        let clip = randomClip()
        if streaming { return benchStreaming(model.keyValueStreaming!, unitFrames: model.config.patchSize[0], name: name, clip: clip) }
        time(name, clip: clip, gflop: model.flops(frames: frames, height: size, width: size) / 1e9) { model($0) }
    }

    /// Random values in -2...2 (seed 1), [3, frames, size, size].
    func randomClip() -> Tensor {
        var generator = SplitMix64(seed: 1)
        let clip = Tensor(uninitialized: [3, frames, size, size])
        for i in 0..<clip.count { clip[i] = Float.random(in: -2...2, using: &generator) }
        return clip
    }

    /// Best of `repeats` forward passes after a warm-up, printed as text or JSON.
    func time(_ name: String, clip: Tensor, gflop: Double, _ forward: (Tensor) -> Tensor) {
        var runs: [Double] = []
        for run in 0...repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            let logits = forward(clip)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            precondition(logits.array.allSatisfy { $0.isFinite }, "non-finite logits")
            if run > 0 { runs.append(seconds) }  // run 0 is the warm-up
        }
        let best = runs.min()!
        if json {
            printJSON(["topology": name, "frames": frames, "size": size, "threads": Parallel.threadCount,
                       "seconds_best": best, "runs": runs, "gflop": gflop, "gflops": gflop / best])
        } else {
            print(String(format: "%@ 3x%dx%dx%d: best %.3f s per clip over %d runs (%.1f GFLOP, %.1f GFLOP/s, %d threads)",
                         name, frames, size, size, best, runs.count, gflop, gflop / best, Parallel.threadCount))
        }
    }
}

extension Bench {
    /// A UniFormer (random-weight topology or model file), full clips.
    func timeUniFormer(_ model: UniFormer, name: String) {
        let clip = randomClip()
        if let problem = model.inputProblem(channels: 3, frames: frames, height: size, width: size) { fail(problem) }
        time(name, clip: clip, gflop: model.flops(frames: frames, height: size, width: size) / 1e9) { model($0) }
    }

    /// The random-weight topology as a model file, for end-to-end runs of the daemon (tools/realtime_rtsp.sh).
    func write(_ config: VideoSwinConfig, to path: String) throws {
        let random = randomWeights(seed: 0)
        let weights = try config.parameterShapes().map { name, shape in (name: name, tensor: try random(name, shape)) }
        var recipe = Preprocessing.torchvisionKinetics
        recipe.frames = frames
        recipe.cropSize = size
        recipe.resizeShortSide = size * 256 / 224
        do {
            try ModelFile.write(videoSwin: config, weights: weights, preprocessing: recipe,
                                labels: (0..<config.numClasses).map { "class_\($0)" },
                                source: "tubelet bench --write-model (random weights, seed 0)", to: path)
        } catch { fail("\(path): \(error)") }
        print("wrote \(path): \(topology)\(config.streaming ? " streaming-native" : ""), \(config.numClasses) classes, \(frames) frames at stride 2, \(size)x\(size)")
    }
}

extension Bench {
    /// TimeSformer-B (divided space-time), ViViT-B Model 1 or ViViT-B Model 2 (factorised encoder) with random
    /// weights, full clips.
    func benchViT() throws {
        if streaming { fail("--streaming is for Video Swin topologies") }
        let clip = randomClip()
        if topology == "timesformer_b" {
            var config = TimeSformerConfig.base()
            config.imageSize = size
            config.numFrames = frames
            let model = try TimeSformer(config: config, weights: randomWeights(seed: 0))
            time(topology, clip: clip, gflop: model.flops(frames: frames) / 1e9) { model($0) }
        } else if topology == "vivit_b_fe" {
            // scenic's ViViT-B factorised encoder (configs/kinetics400/vivit_base_factorised_encoder.py).
            let config = ScenicViViTConfig(variant: .factorisedEncoder, imageSize: size, numFrames: frames, numClasses: 400,
                                           encoder: .init(layers: 12, heads: 12, mlpDim: 3072),
                                           temporal: .init(layers: 4, heads: 12, mlpDim: 3072))
            if let problem = config.problem { fail("vivit_b_fe: \(problem)") }
            let model = try ScenicViViT(config: config, weights: randomWeights(seed: 0))
            time(topology, clip: clip, gflop: model.flops() / 1e9) { model($0) }
        } else {
            var config = ViViTConfig.base()
            config.imageSize = size
            config.numFrames = frames
            let model = try ViViT(config: config, weights: randomWeights(seed: 0))
            time(topology, clip: clip, gflop: model.flops() / 1e9) { model($0) }
        }
    }
}

extension Bench {
    /// Per-label cost of kv reuse against a clip from scratch (`none`), on one stream of random frames.
    func benchStreaming(_ streams: KeyValueStreaming, unitFrames tubelet: Int, name: String, clip: Tensor) {
        guard frames % tubelet == 0, hop % tubelet == 0, hop > 0 else { fail("--frames and --hop must be multiples of \(tubelet)") }
        let clipSlices = frames / tubelet
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

        // none: a clip from scratch, best of `repeats` after a warm-up.
        var scratchRuns: [Double] = []
        var scratchFlops = 0.0
        for run in 0...repeats {
            let start = now()
            let stream = streams.makeStream(0, clipSlices)
            stream.push(clip)
            _ = stream.clipLogits(clipTokens: clipSlices)
            if run > 0 { scratchRuns.append(now() - start) }
            scratchFlops = stream.lastPushFlops
        }
        // kv: fill one clip, then time each hop (push the new frames + the label).
        let stream = streams.makeStream(0, clipSlices)
        stream.push(clip)
        var labelRuns: [Double] = []
        var labelFlops = 0.0
        for label in 0..<labels {
            let newFrames = Tensor(uninitialized: [3, hop, size, size])
            for i in 0..<newFrames.count { newFrames[i] = clip[(i * 7 + label) % clip.count] }
            let start = now()
            stream.push(newFrames)
            _ = stream.clipLogits(clipTokens: clipSlices)
            labelRuns.append(now() - start)
            labelFlops = stream.lastPushFlops
        }
        let scratch = scratchRuns.min()!
        let sortedLabels = labelRuns.sorted()
        let medianLabel = sortedLabels[sortedLabels.count / 2]
        if json {
            printJSON(["topology": name, "streaming": true, "frames": frames, "size": size, "hop": hop,
                       "threads": Parallel.threadCount, "none_seconds_best": scratch, "none_gflop": scratchFlops / 1e9,
                       "kv_seconds_median": medianLabel, "kv_seconds_runs": labelRuns, "kv_gflop": labelFlops / 1e9,
                       "kv_over_none_wall": medianLabel / scratch, "kv_over_none_gflop": labelFlops / scratchFlops])
        } else {
            print(String(format: "%@ streaming-native 3x%dx%dx%d, hop %d: none %.3f s per label (%.1f GFLOP), kv %.3f s per label (median of %d, %.1f GFLOP): kv/none wall %.3f, GFLOP %.3f",
                         name, frames, size, size, hop, scratch, scratchFlops / 1e9, medianLabel, labels,
                         labelFlops / 1e9, medianLabel / scratch, labelFlops / scratchFlops))
        }
    }
}

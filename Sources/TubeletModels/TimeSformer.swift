// TimeSformer (Bertasius et al., "Is Space-Time Attention All You Need for Video
// Understanding?", ICML 2021). Ports Hugging Face transformers 5.x
// `models/timesformer/modeling_timesformer.py` (TimesformerForVideoClassification); the
// importer maps the original facebookresearch/TimeSformer checkpoints onto its names.
// LayerNorm eps 1e-6, exact GELU, qkv scaled by headDim^-0.5.
import Foundation
import TubeletKernels

public struct TimeSformerConfig: Codable, Sendable, Equatable {
    public enum AttentionType: String, Codable, Sendable, CaseIterable {
        case dividedSpaceTime = "divided_space_time"
        case jointSpaceTime = "joint_space_time"
        case spaceOnly = "space_only"
    }

    public var imageSize: Int
    /// Square per-frame Conv2d patch, kernel = stride.
    public var patchSize: Int
    /// Frames the time embeddings were trained for (`num_frames`).
    public var numFrames: Int
    public var inChannels: Int
    public var hiddenSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var intermediateSize: Int
    public var numClasses: Int
    public var layerNormEps: Float
    public var qkvBias: Bool
    public var attentionType: AttentionType
    /// transformers' `TimesformerLayer` reshapes the token sequence with `config.num_frames`, not
    /// with the clip's frame count: for a clip of T ≠ num_frames frames its divided attention runs
    /// over groups of num_frames consecutive tokens (what the HF models compute, so HF imports set
    /// this). The original facebookresearch code groups by the clip's T (original imports: false).
    /// Identical when T = num_frames.
    public var layerFramesFromConfig: Bool

    public init(imageSize: Int = 224, patchSize: Int = 16, numFrames: Int = 8, inChannels: Int = 3, hiddenSize: Int = 768,
                numLayers: Int = 12, numHeads: Int = 12, intermediateSize: Int = 3072, numClasses: Int,
                layerNormEps: Float = 1e-6, qkvBias: Bool = true, attentionType: AttentionType = .dividedSpaceTime,
                layerFramesFromConfig: Bool = true) {
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.numFrames = numFrames
        self.inChannels = inChannels
        self.hiddenSize = hiddenSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.intermediateSize = intermediateSize
        self.numClasses = numClasses
        self.layerNormEps = layerNormEps
        self.qkvBias = qkvBias
        self.attentionType = attentionType
        self.layerFramesFromConfig = layerFramesFromConfig
    }

    /// TimeSformer-B (8 frames, 224²), as `facebook/timesformer-base-finetuned-k400`.
    public static func base(numClasses: Int = 400) -> TimeSformerConfig { TimeSformerConfig(numClasses: numClasses) }

    public var patchesPerSide: Int { imageSize / patchSize }
    public var numPatches: Int { patchesPerSide * patchesPerSide }

    /// Every weight the model reads, with its shape, in transformers' (save_pretrained) names.
    public func parameterShapes() -> [(name: String, shape: [Int])] {
        let d = hiddenSize, e = "timesformer.embeddings."
        var shapes: [(String, [Int])] = [
            (e + "patch_embeddings.projection.weight", [d, inChannels, patchSize, patchSize]),
            (e + "patch_embeddings.projection.bias", [d]),
            (e + "cls_token", [1, 1, d]),
            (e + "position_embeddings", [1, numPatches + 1, d]),
        ]
        if attentionType != .spaceOnly { shapes.append((e + "time_embeddings", [1, numFrames, d])) }
        func attention(_ p: String) -> [(String, [Int])] {
            [(p + "attention.qkv.weight", [3 * d, d])] + (qkvBias ? [(p + "attention.qkv.bias", [3 * d])] : [])
                + [(p + "output.dense.weight", [d, d]), (p + "output.dense.bias", [d])]
        }
        for layer in 0..<numLayers {
            let p = "timesformer.encoder.layer.\(layer)."
            shapes += [(p + "layernorm_before.weight", [d]), (p + "layernorm_before.bias", [d])]
            shapes += attention(p + "attention.")
            if attentionType == .dividedSpaceTime {
                shapes += [(p + "temporal_layernorm.weight", [d]), (p + "temporal_layernorm.bias", [d])]
                shapes += attention(p + "temporal_attention.")
                shapes += [(p + "temporal_dense.weight", [d, d]), (p + "temporal_dense.bias", [d])]
            }
            shapes += [(p + "layernorm_after.weight", [d]), (p + "layernorm_after.bias", [d]),
                       (p + "intermediate.dense.weight", [intermediateSize, d]), (p + "intermediate.dense.bias", [intermediateSize]),
                       (p + "output.dense.weight", [d, intermediateSize]), (p + "output.dense.bias", [d])]
        }
        shapes += [("timesformer.layernorm.weight", [d]), ("timesformer.layernorm.bias", [d]),
                   ("classifier.weight", [numClasses, d]), ("classifier.bias", [numClasses])]
        return shapes
    }
}

/// One TimeSformer layer. Keys: `timesformer.encoder.layer.N.{layernorm_before, attention.attention.qkv,
/// attention.output.dense, temporal_layernorm, temporal_attention.*, temporal_dense, layernorm_after,
/// intermediate.dense, output.dense}`.
public struct TimeSformerLayer: Sendable {
    public let layernormBefore: LayerNormWeights
    /// Spatial attention (divided), or attention over every token (joint, space-only).
    public let attention: SelfAttentionWeights
    /// divided_space_time only: `temporal_layernorm`, `temporal_attention`, `temporal_dense`.
    public let temporalNorm: LayerNormWeights?
    public let temporalAttention: SelfAttentionWeights?
    public let temporalDense: LinearWeights?
    public let layernormAfter: LayerNormWeights
    public let mlp: MLPWeights

    init(_ weights: WeightProvider, _ p: String, config: TimeSformerConfig) throws {
        let d = config.hiddenSize, eps = config.layerNormEps
        func selfAttention(_ prefix: String) throws -> SelfAttentionWeights {
            SelfAttentionWeights(qkv: try LinearWeights(weights, prefix + "attention.qkv.", in: d, out: 3 * d, bias: config.qkvBias),
                                 output: try LinearWeights(weights, prefix + "output.dense.", in: d, out: d),
                                 heads: config.numHeads)
        }
        layernormBefore = try LayerNormWeights(weights, p + "layernorm_before.", dim: d, eps: eps)
        attention = try selfAttention(p + "attention.")
        if config.attentionType == .dividedSpaceTime {
            temporalNorm = try LayerNormWeights(weights, p + "temporal_layernorm.", dim: d, eps: eps)
            temporalAttention = try selfAttention(p + "temporal_attention.")
            temporalDense = try LinearWeights(weights, p + "temporal_dense.", in: d, out: d)
        } else {
            temporalNorm = nil
            temporalAttention = nil
            temporalDense = nil
        }
        layernormAfter = try LayerNormWeights(weights, p + "layernorm_after.", dim: d, eps: eps)
        mlp = MLPWeights(fc1: try LinearWeights(weights, p + "intermediate.dense.", in: d, out: config.intermediateSize),
                         fc2: try LinearWeights(weights, p + "output.dense.", in: config.intermediateSize, out: d),
                         gelu: .exact)
    }

    /// Divided space-time attention on x: [1 + S·G, D], cls first, then S "patches" × G "frames"
    /// (patch-major, time-minor), updated in place:
    /// 1. temporal: per patch, attention over its G frames (no cls); x[1:] += temporal_dense(r);
    /// 2. spatial: per frame g, [cls, x[s·G + g] for s] (the layer's *input* cls repeated per frame);
    ///    patches += their outputs, cls += mean over frames of the cls outputs;
    /// 3. x += mlp(layernorm_after(x)).
    func divided(_ x: Tensor, groups g: Int, scratch: ViTScratch) {
        let d = attention.dim, m = x.shape[0] - 1, s = m / g
        precondition(m % g == 0, "\(m) patch tokens are not a whole number of \(g)-frame groups")
        let patches = x.data + d
        temporalNorm!(patches, rows: m, into: scratch.normed.data)
        temporalAttention!(scratch.normed.data, groups: s, tokens: g, into: scratch.attended.data, scratch: scratch.attention.data)
        temporalDense!(scratch.attended.data, rows: m, into: patches, accumulate: true)

        let n = 1 + s
        let sequences = scratch.normed.data
        for frame in 0..<g {
            (sequences + frame * n * d).update(from: x.data, count: d)
            for patch in 0..<s {
                (sequences + (frame * n + 1 + patch) * d).update(from: patches + (patch * g + frame) * d, count: d)
            }
        }
        layernormBefore(sequences, rows: g * n, into: sequences)
        attention(sequences, groups: g, tokens: n, into: scratch.attended.data, scratch: scratch.attention.data)
        let out = scratch.attended.data
        var clsSum = [Float](repeating: 0, count: d)
        for frame in 0..<g {
            let cls = out + frame * n * d
            for j in 0..<d { clsSum[j] += cls[j] }
            for patch in 0..<s {
                let source = out + (frame * n + 1 + patch) * d, target = patches + (patch * g + frame) * d
                for j in 0..<d { target[j] += source[j] }
            }
        }
        for j in 0..<d { x.data[j] += clsSum[j] / Float(g) }
        mlpBranch(x, rows: 1 + m, scratch: scratch)
    }

    /// Joint space-time (one sequence of every token) or space-only (`groups` frames, each
    /// [cls, patches]): x: [groups·n, D]; x += attention(layernorm_before(x)); x += mlp(…).
    func plain(_ x: Tensor, groups: Int, scratch: ViTScratch) {
        let rows = x.shape[0], n = rows / groups
        layernormBefore(x.data, rows: rows, into: scratch.normed.data)
        attention(scratch.normed.data, groups: groups, tokens: n, into: scratch.attended.data, scratch: scratch.attention.data)
        let out = scratch.attended.data
        for i in 0..<(rows * attention.dim) { x.data[i] += out[i] }
        mlpBranch(x, rows: rows, scratch: scratch)
    }

    func mlpBranch(_ x: Tensor, rows: Int, scratch: ViTScratch) {
        layernormAfter(x.data, rows: rows, into: scratch.normed.data)
        mlp.addInto(x.data, from: scratch.normed.data, rows: rows, hidden: scratch.hidden.data)
    }
}

/// Work buffers of one ViT-style forward pass, sized for `rows` token rows.
final class ViTScratch {
    let normed: Tensor, attended: Tensor, attention: Tensor, hidden: Tensor
    init(rows: Int, dim: Int, hidden hiddenSize: Int) {
        normed = Tensor(uninitialized: [rows, dim])
        attended = Tensor(uninitialized: [rows, dim])
        attention = Tensor(uninitialized: [rows, 4 * dim])
        hidden = Tensor(uninitialized: [rows, hiddenSize])
    }
}

public struct TimeSformer: Sendable {
    public let config: TimeSformerConfig
    /// Conv2d weight flattened to [hidden, channels·p·p].
    public let patchEmbed: LinearWeights
    /// [hidden] `timesformer.embeddings.cls_token`
    public let clsToken: Tensor
    /// [numPatches + 1, hidden] `timesformer.embeddings.position_embeddings`
    public let positionEmbeddings: Tensor
    /// [numFrames, hidden] `timesformer.embeddings.time_embeddings` (not in space-only models)
    public let timeEmbeddings: Tensor?
    public let layers: [TimeSformerLayer]
    /// `timesformer.layernorm`
    public let norm: LayerNormWeights
    /// `classifier`
    public let head: LinearWeights

    public init(config: TimeSformerConfig, weights: WeightProvider) throws {
        self.config = config
        let d = config.hiddenSize, p = config.patchSize, e = "timesformer.embeddings."
        let conv = try weights(e + "patch_embeddings.projection.weight", [d, config.inChannels, p, p])
        patchEmbed = LinearWeights(weight: conv.reshaped([d, config.inChannels * p * p]),
                                   bias: try weights(e + "patch_embeddings.projection.bias", [d]))
        clsToken = try weights(e + "cls_token", [1, 1, d]).reshaped([d])
        positionEmbeddings = try weights(e + "position_embeddings", [1, config.numPatches + 1, d]).reshaped([config.numPatches + 1, d])
        timeEmbeddings = config.attentionType == .spaceOnly ? nil
            : try weights(e + "time_embeddings", [1, config.numFrames, d]).reshaped([config.numFrames, d])
        layers = try (0..<config.numLayers).map { try TimeSformerLayer(weights, "timesformer.encoder.layer.\($0).", config: config) }
        norm = try LayerNormWeights(weights, "timesformer.layernorm.", dim: d, eps: config.layerNormEps)
        head = try LinearWeights(weights, "classifier.", in: d, out: config.numClasses)
    }

    /// Why a clip [C, T, H, W] cannot be run, or nil.
    public func inputProblem(channels: Int, frames: Int, height: Int, width: Int) -> String? {
        if channels != config.inChannels { return "expected \(config.inChannels) channels, got \(channels)" }
        if height != config.imageSize || width != config.imageSize {
            return "TimeSformer expects \(config.imageSize)x\(config.imageSize) frames, got \(height)x\(width)"
        }
        if frames < 1 { return "empty clip" }
        if config.attentionType == .dividedSpaceTime && config.layerFramesFromConfig && (config.numPatches * frames) % config.numFrames != 0 {
            return "this Hugging Face TimeSformer groups tokens by num_frames = \(config.numFrames): \(frames) frames of \(config.numPatches) patches do not divide into such groups"
        }
        return nil
    }

    /// clip: [C, T, H, W] normalised → per-frame patch embeddings [T, numPatches, hidden]
    /// (Conv2d per frame; patches in h, w order).
    public func embedPatches(_ clip: Tensor) -> Tensor {
        precondition(clip.rank == 4, "clip must be [C, T, H, W], got \(clip.shape)")
        if let problem = inputProblem(channels: clip.shape[0], frames: clip.shape[1], height: clip.shape[2], width: clip.shape[3]) {
            preconditionFailure(problem)
        }
        let patches = gatherPatches(clip, patch: [1, config.patchSize, config.patchSize])
        let out = Tensor(uninitialized: [clip.shape[1], config.numPatches, config.hiddenSize])
        patchEmbed(patches.data, rows: patches.shape[0], into: out.data)
        return out
    }

    /// clip: [C, T, H, W] → logits [numClasses].
    public func callAsFunction(_ clip: Tensor) -> Tensor { forward(patchEmbeddings: embedPatches(clip)) }

    /// Token sequence from per-frame patch embeddings e: [T, N, D].
    /// Divided / joint: [1 + N·T, D] = cls + pos[0], then e[t, n] + pos[1 + n] + time[t'] at
    /// 1 + n·T + t (patch-major, time-minor); t' = t, or PyTorch's nearest interpolation of the
    /// time embeddings to T frames. Space-only: [T·(1 + N), D], each frame [cls + pos[0], e[t] + pos].
    public func tokens(patchEmbeddings e: Tensor) -> Tensor {
        let (frames, n, d) = (e.shape[0], e.shape[1], e.shape[2])
        precondition(n == config.numPatches && d == config.hiddenSize, "patch embeddings must be [T, \(config.numPatches), \(config.hiddenSize)], got \(e.shape)")
        let pos = positionEmbeddings.data
        var clsRow = [Float](repeating: 0, count: d)
        for j in 0..<d { clsRow[j] = clsToken.data[j] + pos[j] }
        guard let time = timeEmbeddings else {
            let x = Tensor(uninitialized: [frames * (1 + n), d])
            for t in 0..<frames {
                let base = x.data + t * (1 + n) * d
                base.update(from: clsRow, count: d)
                for patch in 0..<n {
                    let out = base + (1 + patch) * d, source = e.data + (t * n + patch) * d, p = pos + (1 + patch) * d
                    for j in 0..<d { out[j] = source[j] + p[j] }
                }
            }
            return x
        }
        let x = Tensor(uninitialized: [1 + n * frames, d])
        x.data.update(from: clsRow, count: d)
        for t in 0..<frames {
            let tt = time.data + nearestSourceIndex(t, input: config.numFrames, output: frames) * d
            for patch in 0..<n {
                let out = x.data + (1 + patch * frames + t) * d, source = e.data + (t * n + patch) * d, p = pos + (1 + patch) * d
                for j in 0..<d { out[j] = (source[j] + p[j]) + tt[j] }
            }
        }
        return x
    }

    /// Frames the divided layers group tokens by for a clip of `frames` frames.
    func layerGroups(frames: Int) -> Int { config.layerFramesFromConfig ? config.numFrames : frames }

    /// Runs every layer on tokens (from `tokens(patchEmbeddings:)`) in place.
    public func encode(_ x: Tensor, frames: Int) {
        let scratch = ViTScratch(rows: x.shape[0] + layerGroups(frames: frames), dim: config.hiddenSize, hidden: config.intermediateSize)
        for layer in layers {
            switch config.attentionType {
            case .dividedSpaceTime: layer.divided(x, groups: layerGroups(frames: frames), scratch: scratch)
            case .jointSpaceTime: layer.plain(x, groups: 1, scratch: scratch)
            case .spaceOnly: layer.plain(x, groups: frames, scratch: scratch)
            }
        }
    }

    /// Per-frame patch embeddings [T, N, D] → logits [numClasses]: final LayerNorm and classifier
    /// on the cls token. Space-only, as the original code: the token sequences are averaged over
    /// frames first (transformers instead returns one row of logits per frame: `frameLogits`).
    public func forward(patchEmbeddings e: Tensor) -> Tensor {
        let frames = e.shape[0], d = config.hiddenSize
        let x = tokens(patchEmbeddings: e)
        encode(x, frames: frames)
        let cls = Tensor(zeros: [1, d])
        if config.attentionType == .spaceOnly {
            let n = x.shape[0] / frames
            for t in 0..<frames { for j in 0..<d { cls.data[j] += x.data[t * n * d + j] } }
            for j in 0..<d { cls.data[j] /= Float(frames) }
        } else {
            cls.data.update(from: x.data, count: d)
        }
        norm(cls.data, rows: 1, into: cls.data)
        let logits = Tensor(uninitialized: [config.numClasses])
        head(cls.data, rows: 1, into: logits.data)
        return logits
    }

    /// Space-only models: what transformers' TimesformerForVideoClassification returns, one row
    /// of logits per frame, [T, numClasses] (classifier on each frame's normalised cls token).
    public func frameLogits(_ clip: Tensor) -> Tensor {
        precondition(config.attentionType == .spaceOnly, "frameLogits is for space-only models")
        let e = embedPatches(clip)
        let frames = e.shape[0], d = config.hiddenSize
        let x = tokens(patchEmbeddings: e)
        encode(x, frames: frames)
        let n = x.shape[0] / frames
        let cls = Tensor(uninitialized: [frames, d])
        for t in 0..<frames { (cls.data + t * d).update(from: x.data + t * n * d, count: d) }
        norm(cls.data, rows: frames, into: cls.data)
        let logits = Tensor(uninitialized: [frames, config.numClasses])
        head(cls.data, rows: frames, into: logits.data)
        return logits
    }

    /// 2·multiply-adds of the patch embedding alone for `frames` frames.
    public func embedFlops(frames: Int) -> Double {
        2 * Double(frames * config.numPatches) * Double(patchEmbed.inFeatures * patchEmbed.outFeatures)
    }

    /// 2·multiply-adds of every linear map and attention product for a clip (norms, softmax,
    /// GELU not counted), as `VideoSwin.flops`.
    public func flops(frames: Int) -> Double {
        let n = config.numPatches, d = Double(config.hiddenSize), m = n * frames
        var total = embedFlops(frames: frames)
        for layer in layers {
            switch config.attentionType {
            case .dividedSpaceTime:
                let g = layerGroups(frames: frames), s = m / g
                total += layer.temporalAttention!.flops(groups: s, tokens: g) + 2 * Double(m) * d * d
                total += layer.attention.flops(groups: g, tokens: 1 + s) + layer.mlp.flops(rows: 1 + m)
            case .jointSpaceTime:
                total += layer.attention.flops(groups: 1, tokens: 1 + m) + layer.mlp.flops(rows: 1 + m)
            case .spaceOnly:
                total += layer.attention.flops(groups: frames, tokens: 1 + n) + layer.mlp.flops(rows: frames * (1 + n))
            }
        }
        return total + 2 * Double(head.inFeatures * head.outFeatures)
    }
}

extension TimeSformer: VideoModel {
    /// Weights under transformers' save_pretrained names (`timesformer.*`, `classifier.*`).
    public static let architecture = "timesformer"

    public static func problem(in c: TimeSformerConfig) -> String? {
        if !(c.imageSize > 0 && c.patchSize > 0 && c.imageSize % c.patchSize == 0) { return "image_size must be a multiple of patch_size" }
        if !(c.hiddenSize > 0 && c.numHeads > 0 && c.hiddenSize % c.numHeads == 0) { return "hidden_size \(c.hiddenSize) not divisible by \(c.numHeads) heads" }
        if !(c.numFrames > 0 && c.numLayers > 0 && c.intermediateSize > 0 && c.numClasses > 0 && c.inChannels > 0) { return "sizes must be positive" }
        return nil
    }

    /// transformers' processor defaults (VideoMAEImageProcessor): ImageNet mean/std on 0-1, short side and
    /// crop at image_size. HF configs do not record the frame sampling: stride 4.
    public static func referencePreprocessing(for c: TimeSformerConfig) -> Preprocessing {
        Preprocessing(frames: c.numFrames, frameStride: 4, resizeShortSide: c.imageSize, cropSize: c.imageSize, pixelScale: 1.0 / 255,
                      mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])
    }

    public var numClasses: Int { config.numClasses }
    public func logits(_ clip: Tensor) -> Tensor { self(clip) }
    public func flops(frames: Int, height: Int, width: Int) -> Double { flops(frames: frames) }

    /// Units are single frames (patches are 2-D; time mixes only in attention).
    public var tubeletEmbedding: TubeletEmbedding? {
        let model = self
        let embedding = 2 * Double(patchEmbed.inFeatures * patchEmbed.outFeatures)
        return TubeletEmbedding(
            unitFrames: 1,
            embed: { frames, _ in model.embedPatches(frames) },
            embedFlops: { tokens in embedding * Double(tokens.count / tokens.shape.last!) },
            forward: { tokens in model.forward(patchEmbeddings: tokens) },
            networkFlops: { frames, _, _ in model.flops(frames: frames) - model.embedFlops(frames: frames) })
    }
}

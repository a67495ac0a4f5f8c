// VideoMAE (Tong et al., "VideoMAE: Masked Autoencoders are Data-Efficient Learners for Self-Supervised
// Video Pre-Training", NeurIPS 2022), the fine-tuned classifier. Ports Hugging Face transformers'
// `models/videomae/modeling_videomae.py` (VideoMAEForVideoClassification): Conv3d tubelet embedding
// (token order t, h, w) plus a fixed sinusoidal position table that is not in the weights, no cls token,
// pre-norm layers whose attention has q and v biases and no k bias, then either the mean of the tokens
// and `fc_norm` (use_mean_pooling) or the final LayerNorm and the first token, and the classifier.
import Foundation
import TubeletKernels

/// transformers' `VideoMAEConfig`: the CodingKeys are config.json's own names, so a published
/// `config.json` decodes as it is (absent keys take transformers' defaults).
public struct VideoMAEConfig: Codable, Sendable, Equatable {
    public var imageSize = 224
    public var patchSize = 16
    public var numChannels = 3
    public var numFrames = 16
    /// Frames per tubelet (the Conv3d's temporal kernel and stride).
    public var tubeletSize = 2
    public var hiddenSize = 768
    public var numHiddenLayers = 12
    public var numAttentionHeads = 12
    public var intermediateSize = 3072
    /// "gelu" (exact), or the tanh approximation ("gelu_new", "gelu_fast", "gelu_pytorch_tanh").
    public var hiddenAct = "gelu"
    public var layerNormEps: Float = 1e-12
    /// Learned q and v biases (the k projection has none either way); transformers 5 names it `qv_bias`.
    public var qkvBias = true
    /// True: mean of the tokens, then `fc_norm`; false: final `videomae.layernorm`, then the first token.
    public var useMeanPooling = true
    /// Not in config.json (transformers counts id2label): the classifier's rows.
    public var numClasses: Int

    enum CodingKeys: String, CodingKey {
        case imageSize = "image_size", patchSize = "patch_size", numChannels = "num_channels", numFrames = "num_frames"
        case tubeletSize = "tubelet_size", hiddenSize = "hidden_size", numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads", intermediateSize = "intermediate_size", hiddenAct = "hidden_act"
        case layerNormEps = "layer_norm_eps", qkvBias = "qkv_bias", useMeanPooling = "use_mean_pooling", numClasses = "num_labels"
    }

    /// transformers 5's name for `qkv_bias`.
    enum RenamedKeys: String, CodingKey { case qvBias = "qv_bias" }

    public init(imageSize: Int = 224, patchSize: Int = 16, numChannels: Int = 3, numFrames: Int = 16, tubeletSize: Int = 2,
                hiddenSize: Int = 768, numHiddenLayers: Int = 12, numAttentionHeads: Int = 12, intermediateSize: Int = 3072,
                hiddenAct: String = "gelu", layerNormEps: Float = 1e-12, qkvBias: Bool = true, useMeanPooling: Bool = true, numClasses: Int) {
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.numChannels = numChannels
        self.numFrames = numFrames
        self.tubeletSize = tubeletSize
        self.hiddenSize = hiddenSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.intermediateSize = intermediateSize
        self.hiddenAct = hiddenAct
        self.layerNormEps = layerNormEps
        self.qkvBias = qkvBias
        self.useMeanPooling = useMeanPooling
        self.numClasses = numClasses
    }

    /// Absent keys take transformers' defaults; `num_labels` may be absent too (0: the importer sets it
    /// from the classifier).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = VideoMAEConfig(numClasses: 0)
        imageSize = try c.decodeIfPresent(Int.self, forKey: .imageSize) ?? d.imageSize
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? d.patchSize
        numChannels = try c.decodeIfPresent(Int.self, forKey: .numChannels) ?? d.numChannels
        numFrames = try c.decodeIfPresent(Int.self, forKey: .numFrames) ?? d.numFrames
        tubeletSize = try c.decodeIfPresent(Int.self, forKey: .tubeletSize) ?? d.tubeletSize
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? d.numHiddenLayers
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? d.numAttentionHeads
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? d.hiddenAct
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? d.layerNormEps
        let renamed = try decoder.container(keyedBy: RenamedKeys.self)
        qkvBias = try c.decodeIfPresent(Bool.self, forKey: .qkvBias) ?? renamed.decodeIfPresent(Bool.self, forKey: .qvBias) ?? d.qkvBias
        useMeanPooling = try c.decodeIfPresent(Bool.self, forKey: .useMeanPooling) ?? d.useMeanPooling
        numClasses = try c.decodeIfPresent(Int.self, forKey: .numClasses) ?? 0
    }

    /// Token grid (t, h, w) of the configured clip.
    public var grid: [Int] { [numFrames / tubeletSize, imageSize / patchSize, imageSize / patchSize] }
    public var numPatches: Int { grid.reduce(1, *) }
    public var tubelet: [Int] { [tubeletSize, patchSize, patchSize] }

    var gelu: GELUVariant? {
        switch hiddenAct {
        case "gelu": return .exact
        case "gelu_new", "gelu_fast", "gelu_pytorch_tanh": return .tanh
        default: return nil
        }
    }

    /// Every weight the model reads, with its shape, in transformers' save_pretrained names.
    public func parameterShapes() -> [(name: String, shape: [Int])] {
        let d = hiddenSize, e = "videomae.embeddings.patch_embeddings.projection."
        var shapes: [(String, [Int])] = [(e + "weight", [d, numChannels] + tubelet), (e + "bias", [d])]
        for layer in 0..<numHiddenLayers {
            let p = "videomae.encoder.layer.\(layer)."
            shapes += [(p + "layernorm_before.weight", [d]), (p + "layernorm_before.bias", [d])]
            shapes += ["query", "key", "value"].map { (p + "attention.attention.\($0).weight", [d, d]) }
            if qkvBias { shapes += [(p + "attention.attention.q_bias", [d]), (p + "attention.attention.v_bias", [d])] }
            shapes += [(p + "attention.output.dense.weight", [d, d]), (p + "attention.output.dense.bias", [d]),
                       (p + "layernorm_after.weight", [d]), (p + "layernorm_after.bias", [d]),
                       (p + "intermediate.dense.weight", [intermediateSize, d]), (p + "intermediate.dense.bias", [intermediateSize]),
                       (p + "output.dense.weight", [d, intermediateSize]), (p + "output.dense.bias", [d])]
        }
        let norm = useMeanPooling ? "fc_norm." : "videomae.layernorm."
        shapes += [(norm + "weight", [d]), (norm + "bias", [d]), ("classifier.weight", [numClasses, d]), ("classifier.bias", [numClasses])]
        return shapes
    }
}

/// One pre-norm VideoMAE layer, as a ViViT layer but for its biases: `query`, `key`, `value` have no bias
/// of their own; `q_bias` and `v_bias` are learned and k's is zero. Keys:
/// `videomae.encoder.layer.N.{layernorm_before, attention.attention.{query,key,value}.weight,
/// attention.attention.{q_bias,v_bias}, attention.output.dense, layernorm_after, intermediate.dense, output.dense}`.
public struct VideoMAELayer: Sendable {
    public let layernormBefore: LayerNormWeights
    public let attention: SelfAttentionWeights
    public let layernormAfter: LayerNormWeights
    public let mlp: MLPWeights

    init(_ weights: WeightProvider, _ p: String, config: VideoMAEConfig, gelu: GELUVariant) throws {
        let d = config.hiddenSize, eps = config.layerNormEps
        layernormBefore = try LayerNormWeights(weights, p + "layernorm_before.", dim: d, eps: eps)
        // One [3D, D] projection: rows q, k, v; bias [q_bias, 0, v_bias].
        let qkvWeight = Tensor(uninitialized: [3 * d, d])
        for (i, projection) in ["query", "key", "value"].enumerated() {
            let part = try weights(p + "attention.attention.\(projection).weight", [d, d])
            withExtendedLifetime(part) { (qkvWeight.data + i * d * d).update(from: part.data, count: d * d) }
        }
        var qkvBias: Tensor?
        if config.qkvBias {
            let bias = Tensor(zeros: [3 * d])
            let q = try weights(p + "attention.attention.q_bias", [d]), v = try weights(p + "attention.attention.v_bias", [d])
            withExtendedLifetime((q, v)) {
                bias.data.update(from: q.data, count: d)
                (bias.data + 2 * d).update(from: v.data, count: d)
            }
            qkvBias = bias
        }
        attention = SelfAttentionWeights(qkv: LinearWeights(weight: qkvWeight, bias: qkvBias),
                                         output: try LinearWeights(weights, p + "attention.output.dense.", in: d, out: d),
                                         heads: config.numAttentionHeads)
        layernormAfter = try LayerNormWeights(weights, p + "layernorm_after.", dim: d, eps: eps)
        mlp = MLPWeights(fc1: try LinearWeights(weights, p + "intermediate.dense.", in: d, out: config.intermediateSize),
                         fc2: try LinearWeights(weights, p + "output.dense.", in: config.intermediateSize, out: d), gelu: gelu)
    }

    /// x: [rows, D], one sequence, updated in place.
    func callAsFunction(_ x: Tensor, scratch: ViTScratch) {
        preNormLayer(x, layernormBefore, attention, layernormAfter, mlp, scratch: scratch)
    }
}

public struct VideoMAE: Sendable {
    public let config: VideoMAEConfig
    /// `videomae.embeddings.patch_embeddings.projection`: the Conv3d flattened to [hidden, channels·kt·kh·kw].
    public let patchEmbed: LinearWeights
    /// [numPatches, hidden]: transformers' `get_sinusoid_encoding_table` (computed, not stored in the weights).
    public let positionTable: Tensor
    public let layers: [VideoMAELayer]
    /// `fc_norm` (mean pooling) or `videomae.layernorm` (first token).
    public let norm: LayerNormWeights
    /// `classifier`
    public let head: LinearWeights

    public init(config: VideoMAEConfig, weights: WeightProvider) throws {
        precondition(VideoMAE.problem(in: config) == nil, VideoMAE.problem(in: config) ?? "")
        self.config = config
        let d = config.hiddenSize, e = "videomae.embeddings.patch_embeddings.projection."
        let conv = try weights(e + "weight", [d, config.numChannels] + config.tubelet)
        patchEmbed = LinearWeights(weight: conv.reshaped([d, config.numChannels * config.tubelet.reduce(1, *)]),
                                   bias: try weights(e + "bias", [d]))
        positionTable = VideoMAE.sinusoidTable(positions: config.numPatches, dim: d)
        let gelu = config.gelu!
        layers = try (0..<config.numHiddenLayers).map { try VideoMAELayer(weights, "videomae.encoder.layer.\($0).", config: config, gelu: gelu) }
        // fc_norm is built with nn.LayerNorm's default eps (1e-5), not layer_norm_eps.
        norm = config.useMeanPooling ? try LayerNormWeights(weights, "fc_norm.", dim: d, eps: 1e-5)
                                     : try LayerNormWeights(weights, "videomae.layernorm.", dim: d, eps: config.layerNormEps)
        head = try LinearWeights(weights, "classifier.", in: d, out: config.numClasses)
    }

    /// [positions, dim]: angle(p, j) = p / 10000^(2·⌊j/2⌋/dim), sine at even j, cosine at odd j,
    /// in double precision then rounded to float, as transformers (numpy) computes it.
    public static func sinusoidTable(positions: Int, dim: Int) -> Tensor {
        let table = Tensor(uninitialized: [positions, dim])
        for p in 0..<positions {
            for j in 0..<dim {
                let angle = Double(p) / pow(10000, Double(2 * (j / 2)) / Double(dim))
                table.data[p * dim + j] = Float(j % 2 == 0 ? sin(angle) : cos(angle))
            }
        }
        return table
    }

    /// clip (or a whole number of tubelets of it): [C, T, H, W] → tubelet embeddings
    /// [T/kt, (H/p)·(W/p), hidden], tokens in (t, h, w) order, without the position table.
    public func embedTubelets(_ clip: Tensor) -> Tensor {
        tubeletEmbeddings(clip, patchEmbed, channels: config.numChannels, imageSize: config.imageSize, tubelet: config.tubelet)
    }

    /// clip: [C, T, H, W] → logits [numClasses].
    public func callAsFunction(_ clip: Tensor) -> Tensor {
        if let problem = inputProblem(channels: clip.shape[0], frames: clip.shape[1], height: clip.shape[2], width: clip.shape[3]) {
            preconditionFailure(problem)
        }
        return forward(tubeletEmbeddings: embedTubelets(clip))
    }

    /// Tubelet embeddings e: [T', N, D] of the configured clip (consumed) → logits: e + position table,
    /// the layers, then the pooling and the classifier.
    public func forward(tubeletEmbeddings e: Tensor) -> Tensor {
        let d = config.hiddenSize, m = e.count / d
        precondition(m == config.numPatches && e.shape.last == d, "tubelet embeddings must hold \(config.numPatches)x\(d), got \(e.shape)")
        let x = e.reshaped([m, d])
        for i in 0..<(m * d) { x.data[i] += positionTable.data[i] }
        let scratch = ViTScratch(rows: m, dim: d, hidden: config.intermediateSize)
        for layer in layers { layer(x, scratch: scratch) }
        let pooled = Tensor(zeros: [1, d])
        if config.useMeanPooling {
            // Summed in double: the mean of up to thousands of tokens, as close to torch's as float allows.
            for j in 0..<d {
                var sum = 0.0
                for i in 0..<m { sum += Double(x.data[i * d + j]) }
                pooled.data[j] = Float(sum / Double(m))
            }
        } else {
            pooled.data.update(from: x.data, count: d)
        }
        norm(pooled.data, rows: 1, into: pooled.data)
        let logits = Tensor(uninitialized: [config.numClasses])
        head(pooled.data, rows: 1, into: logits.data)
        return logits
    }

    /// 2·multiply-adds of the tubelet embedding of `frames` frames.
    public func embedFlops(frames: Int) -> Double {
        2 * Double(frames / config.tubeletSize * config.grid[1] * config.grid[2]) * Double(patchEmbed.inFeatures * patchEmbed.outFeatures)
    }

    /// 2·multiply-adds of every linear map and attention product for the configured clip.
    public func flops() -> Double {
        let rows = config.numPatches
        var total = embedFlops(frames: config.numFrames)
        for layer in layers { total += layer.attention.flops(groups: 1, tokens: rows) + layer.mlp.flops(rows: rows) }
        return total + 2 * Double(head.inFeatures * head.outFeatures)
    }
}

extension VideoMAE: VideoModel {
    /// Weights under transformers' save_pretrained names (`videomae.*`, `fc_norm.*`, `classifier.*`).
    public static let architecture = "videomae"

    public static func problem(in c: VideoMAEConfig) -> String? {
        if c.gelu == nil { return "hidden_act '\(c.hiddenAct)' is not supported (expected gelu, gelu_new, gelu_fast or gelu_pytorch_tanh)" }
        if !(c.patchSize > 0 && c.tubeletSize > 0 && c.imageSize > 0 && c.imageSize % c.patchSize == 0) { return "image_size must be a multiple of patch_size" }
        if c.numFrames <= 0 || c.numFrames % c.tubeletSize != 0 { return "num_frames must be a multiple of tubelet_size" }
        if !(c.hiddenSize > 0 && c.numAttentionHeads > 0 && c.hiddenSize % c.numAttentionHeads == 0) {
            return "hidden_size \(c.hiddenSize) not divisible by \(c.numAttentionHeads) heads"
        }
        if !(c.numHiddenLayers > 0 && c.intermediateSize > 0 && c.numClasses > 0 && c.numChannels > 0) { return "sizes must be positive" }
        return nil
    }

    /// transformers' VideoMAEImageProcessor: ImageNet mean/std on 0-1, short side and crop at image_size
    /// (224 for 224); HF configs do not record the frame sampling: stride 4.
    public static func referencePreprocessing(for c: VideoMAEConfig) -> Preprocessing {
        Preprocessing(frames: c.numFrames, frameStride: 4, resizeShortSide: c.imageSize, cropSize: c.imageSize, pixelScale: 1.0 / 255,
                      mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])
    }

    public var numClasses: Int { config.numClasses }
    public func logits(_ clip: Tensor) -> Tensor { self(clip) }
    public func flops(frames: Int, height: Int, width: Int) -> Double { flops() }

    /// The position table fixes the clip's size, like transformers without interpolate_pos_encoding.
    public func inputProblem(channels: Int, frames: Int, height: Int, width: Int) -> String? {
        fixedClipInputProblem("VideoMAE", channels: channels, frames: frames, height: height, width: width,
                              expected: (config.numChannels, config.numFrames, config.imageSize))
    }

    /// Units are tubelets; the position table is added after the embedding, so each tubelet's tokens
    /// are reused as they are.
    public var tubeletEmbedding: TubeletEmbedding? {
        let model = self
        let embedding = 2 * Double(patchEmbed.inFeatures * patchEmbed.outFeatures)
        return TubeletEmbedding(
            unitFrames: config.tubeletSize,
            embed: { frames, _ in model.embedTubelets(frames) },
            embedFlops: { tokens in embedding * Double(tokens.count / tokens.shape.last!) },
            forward: { tokens in model.forward(tubeletEmbeddings: tokens) },
            networkFlops: { _, _, _ in model.flops() - model.embedFlops(frames: model.config.numFrames) })
    }
}

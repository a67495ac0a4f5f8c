// ViViT Model 1, joint space-time attention (Arnab et al., "ViViT: A Video Vision Transformer",
// ICCV 2021). Ports Hugging Face transformers 5.x `models/vivit/modeling_vivit.py`
// (VivitForVideoClassification): Conv3d tubelet embedding (token order t, h, w), cls token and
// position embeddings, pre-norm layers, LayerNorm eps 1e-6, tanh GELU ("gelu_fast"), final
// LayerNorm and classifier on the cls token. Models 2-4 (scenic) are not implemented.
import Foundation
import TubeletKernels

public struct ViViTConfig: Codable, Sendable, Equatable {
    public var imageSize: Int
    public var numFrames: Int
    /// Conv3d kernel = stride (t, h, w).
    public var tubeletSize: [Int]
    public var inChannels: Int
    public var hiddenSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var intermediateSize: Int
    public var numClasses: Int
    public var layerNormEps: Float
    public var qkvBias: Bool
    public var gelu: GELUVariant

    public init(imageSize: Int = 224, numFrames: Int = 32, tubeletSize: [Int] = [2, 16, 16], inChannels: Int = 3,
                hiddenSize: Int = 768, numLayers: Int = 12, numHeads: Int = 12, intermediateSize: Int = 3072,
                numClasses: Int, layerNormEps: Float = 1e-6, qkvBias: Bool = true, gelu: GELUVariant = .tanh) {
        self.imageSize = imageSize
        self.numFrames = numFrames
        self.tubeletSize = tubeletSize
        self.inChannels = inChannels
        self.hiddenSize = hiddenSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.intermediateSize = intermediateSize
        self.numClasses = numClasses
        self.layerNormEps = layerNormEps
        self.qkvBias = qkvBias
        self.gelu = gelu
    }

    /// ViViT-B 16x2 (32 frames, 224², tubelet 2x16x16), as `google/vivit-b-16x2-kinetics400`.
    public static func base(numClasses: Int = 400) -> ViViTConfig { ViViTConfig(numClasses: numClasses) }

    /// Token grid (t, h, w) of a configured clip.
    public var grid: [Int] { [numFrames / tubeletSize[0], imageSize / tubeletSize[1], imageSize / tubeletSize[2]] }
    public var numPatches: Int { grid.reduce(1, *) }

    /// Every weight the model reads, with its shape, in transformers' save_pretrained names.
    public func parameterShapes() -> [(name: String, shape: [Int])] {
        let d = hiddenSize, e = "vivit.embeddings."
        var shapes: [(String, [Int])] = [
            (e + "cls_token", [1, 1, d]),
            (e + "position_embeddings", [1, numPatches + 1, d]),
            (e + "patch_embeddings.projection.weight", [d, inChannels] + tubeletSize),
            (e + "patch_embeddings.projection.bias", [d]),
        ]
        for layer in 0..<numLayers {
            let p = "vivit.encoder.layer.\(layer)."
            shapes += [(p + "layernorm_before.weight", [d]), (p + "layernorm_before.bias", [d])]
            for projection in ["query", "key", "value"] {
                shapes.append((p + "attention.attention.\(projection).weight", [d, d]))
                if qkvBias { shapes.append((p + "attention.attention.\(projection).bias", [d])) }
            }
            shapes += [(p + "attention.output.dense.weight", [d, d]), (p + "attention.output.dense.bias", [d]),
                       (p + "layernorm_after.weight", [d]), (p + "layernorm_after.bias", [d]),
                       (p + "intermediate.dense.weight", [intermediateSize, d]), (p + "intermediate.dense.bias", [intermediateSize]),
                       (p + "output.dense.weight", [d, intermediateSize]), (p + "output.dense.bias", [d])]
        }
        shapes += [("vivit.layernorm.weight", [d]), ("vivit.layernorm.bias", [d]),
                   ("classifier.weight", [numClasses, d]), ("classifier.bias", [numClasses])]
        return shapes
    }
}

/// One pre-norm ViViT layer: `x += attention(layernorm_before(x)); x += mlp(layernorm_after(x))`.
/// Keys: `vivit.encoder.layer.N.{layernorm_before, attention.attention.{query,key,value},
/// attention.output.dense, layernorm_after, intermediate.dense, output.dense}`; query, key and
/// value are concatenated into one [3D, D] projection at load time.
public struct ViViTLayer: Sendable {
    public let layernormBefore: LayerNormWeights
    public let attention: SelfAttentionWeights
    public let layernormAfter: LayerNormWeights
    public let mlp: MLPWeights

    init(_ weights: WeightProvider, _ p: String, config: ViViTConfig) throws {
        let d = config.hiddenSize, eps = config.layerNormEps
        layernormBefore = try LayerNormWeights(weights, p + "layernorm_before.", dim: d, eps: eps)
        let qkvWeight = Tensor(uninitialized: [3 * d, d])
        let qkvBias: Tensor? = config.qkvBias ? Tensor(uninitialized: [3 * d]) : nil
        for (i, projection) in ["query", "key", "value"].enumerated() {
            let part = try LinearWeights(weights, p + "attention.attention.\(projection).", in: d, out: d, bias: config.qkvBias)
            (qkvWeight.data + i * d * d).update(from: part.weight.data, count: d * d)
            if let qkvBias, let bias = part.bias { (qkvBias.data + i * d).update(from: bias.data, count: d) }
        }
        attention = SelfAttentionWeights(qkv: LinearWeights(weight: qkvWeight, bias: qkvBias),
                                         output: try LinearWeights(weights, p + "attention.output.dense.", in: d, out: d),
                                         heads: config.numHeads)
        layernormAfter = try LayerNormWeights(weights, p + "layernorm_after.", dim: d, eps: eps)
        mlp = MLPWeights(fc1: try LinearWeights(weights, p + "intermediate.dense.", in: d, out: config.intermediateSize),
                         fc2: try LinearWeights(weights, p + "output.dense.", in: config.intermediateSize, out: d),
                         gelu: config.gelu)
    }

    /// x: [rows, D], one sequence, updated in place.
    func callAsFunction(_ x: Tensor, scratch: ViTScratch) {
        preNormLayer(x, layernormBefore, attention, layernormAfter, mlp, scratch: scratch)
    }
}

public struct ViViT: Sendable {
    public let config: ViViTConfig
    /// Conv3d weight flattened to [hidden, channels·kt·kh·kw].
    public let patchEmbed: LinearWeights
    /// [hidden] `vivit.embeddings.cls_token`
    public let clsToken: Tensor
    /// [numPatches + 1, hidden] `vivit.embeddings.position_embeddings`
    public let positionEmbeddings: Tensor
    public let layers: [ViViTLayer]
    /// `vivit.layernorm`
    public let norm: LayerNormWeights
    /// `classifier`
    public let head: LinearWeights

    public init(config: ViViTConfig, weights: WeightProvider) throws {
        self.config = config
        let d = config.hiddenSize, e = "vivit.embeddings."
        let conv = try weights(e + "patch_embeddings.projection.weight", [d, config.inChannels] + config.tubeletSize)
        patchEmbed = LinearWeights(weight: conv.reshaped([d, config.inChannels * config.tubeletSize.reduce(1, *)]),
                                   bias: try weights(e + "patch_embeddings.projection.bias", [d]))
        clsToken = try weights(e + "cls_token", [1, 1, d]).reshaped([d])
        positionEmbeddings = try weights(e + "position_embeddings", [1, config.numPatches + 1, d]).reshaped([config.numPatches + 1, d])
        layers = try (0..<config.numLayers).map { try ViViTLayer(weights, "vivit.encoder.layer.\($0).", config: config) }
        norm = try LayerNormWeights(weights, "vivit.layernorm.", dim: d, eps: config.layerNormEps)
        head = try LinearWeights(weights, "classifier.", in: d, out: config.numClasses)
    }

    /// Why a clip [C, T, H, W] cannot be run, or nil. Like transformers (without
    /// interpolate_pos_encoding), the clip must be exactly the configured size.
    public func inputProblem(channels: Int, frames: Int, height: Int, width: Int) -> String? {
        fixedClipInputProblem("ViViT", channels: channels, frames: frames, height: height, width: width,
                          expected: (config.inChannels, config.numFrames, config.imageSize))
    }

    /// clip (or a whole number of tubelets of it): [C, T, H, W] → tubelet embeddings
    /// [T/kt, (H/kh)·(W/kw), hidden], tokens in (t, h, w) order.
    public func embedTubelets(_ clip: Tensor) -> Tensor {
        tubeletEmbeddings(clip, patchEmbed, channels: config.inChannels, imageSize: config.imageSize, tubelet: config.tubeletSize)
    }

    /// clip: [C, T, H, W] → logits [numClasses].
    public func callAsFunction(_ clip: Tensor) -> Tensor {
        if let problem = inputProblem(channels: clip.shape[0], frames: clip.shape[1], height: clip.shape[2], width: clip.shape[3]) {
            preconditionFailure(problem)
        }
        return forward(tubeletEmbeddings: embedTubelets(clip))
    }

    /// Tubelet embeddings e: [T', N, D] (the configured clip) → logits: [cls + pos[0], e + pos[1…]],
    /// the layers, final LayerNorm and the classifier on the cls token.
    public func forward(tubeletEmbeddings e: Tensor) -> Tensor {
        let d = config.hiddenSize, m = e.count / d
        precondition(m == config.numPatches && e.shape.last == d, "tubelet embeddings must hold \(config.numPatches)x\(d), got \(e.shape)")
        let x = Tensor(uninitialized: [1 + m, d])
        let pos = positionEmbeddings.data
        for j in 0..<d { x.data[j] = clsToken.data[j] + pos[j] }
        for i in 0..<(m * d) { x.data[d + i] = e.data[i] + pos[d + i] }
        let scratch = ViTScratch(rows: 1 + m, dim: d, hidden: config.intermediateSize)
        for layer in layers { layer(x, scratch: scratch) }
        let cls = Tensor(uninitialized: [1, d])
        norm(x.data, rows: 1, into: cls.data)
        let logits = Tensor(uninitialized: [config.numClasses])
        head(cls.data, rows: 1, into: logits.data)
        return logits
    }

    /// 2·multiply-adds of the tubelet embedding of `frames` frames.
    public func embedFlops(frames: Int) -> Double {
        2 * Double(frames / config.tubeletSize[0] * config.grid[1] * config.grid[2]) * Double(patchEmbed.inFeatures * patchEmbed.outFeatures)
    }

    /// 2·multiply-adds of every linear map and attention product for the configured clip.
    public func flops() -> Double {
        let rows = 1 + config.numPatches
        var total = embedFlops(frames: config.numFrames)
        for layer in layers { total += layer.attention.flops(groups: 1, tokens: rows) + layer.mlp.flops(rows: rows) }
        return total + 2 * Double(head.inFeatures * head.outFeatures)
    }
}

extension ViViT: VideoModel {
    /// ViViT Model 1, weights under transformers' save_pretrained names (`vivit.encoder.layer.N.*`).
    public static let architecture = "vivit"

    public static func problem(in c: ViViTConfig) -> String? {
        if !(c.tubeletSize.count == 3 && c.tubeletSize.allSatisfy { $0 > 0 }) { return "tubelet_size must be 3 positive sizes" }
        if !(c.imageSize % c.tubeletSize[1] == 0 && c.imageSize % c.tubeletSize[2] == 0 && c.numFrames % c.tubeletSize[0] == 0) {
            return "image_size and num_frames must be multiples of the tubelet"
        }
        if !(c.hiddenSize > 0 && c.numHeads > 0 && c.hiddenSize % c.numHeads == 0) { return "hidden_size \(c.hiddenSize) not divisible by \(c.numHeads) heads" }
        if !(c.numLayers > 0 && c.intermediateSize > 0 && c.numClasses > 0 && c.inChannels > 0) { return "sizes must be positive" }
        return nil
    }

    /// transformers' VivitImageProcessor: x/127.5 - 1, then mean 0.5 std 0.5; short side 256/224 of the
    /// image size, crop at image_size; stride 4 (HF configs do not record the sampling).
    public static func referencePreprocessing(for c: ViViTConfig) -> Preprocessing {
        Preprocessing(frames: c.numFrames, frameStride: 4, resizeShortSide: (c.imageSize * 256 + 112) / 224, cropSize: c.imageSize,
                      pixelScale: 1 / 127.5, mean: [1.5, 1.5, 1.5], std: [0.5, 0.5, 0.5])
    }

    public var numClasses: Int { config.numClasses }
    public func logits(_ clip: Tensor) -> Tensor { self(clip) }
    public func flops(frames: Int, height: Int, width: Int) -> Double { flops() }

    public var tubeletEmbedding: TubeletEmbedding? {
        let model = self
        let embedding = 2 * Double(patchEmbed.inFeatures * patchEmbed.outFeatures)
        return TubeletEmbedding(
            unitFrames: config.tubeletSize[0],
            embed: { frames, _ in model.embedTubelets(frames) },
            embedFlops: { tokens in embedding * Double(tokens.count / tokens.shape.last!) },
            forward: { tokens in model.forward(tubeletEmbeddings: tokens) },
            networkFlops: { _, _, _ in model.flops() - model.embedFlops(frames: model.config.numFrames) })
    }
}

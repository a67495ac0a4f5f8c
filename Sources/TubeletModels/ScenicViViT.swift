// ViViT Models 2, 3 and 4 (Arnab et al., "ViViT: A Video Vision Transformer", ICCV 2021) as in the
// authors' scenic code (google-research/scenic, scenic/projects/vivit/model.py):
// - Model 2, factorised encoder (`SpaceTimeViViT`, attention type 'factorized_encoder'): a spatial
//   ViT shared by every temporal index (its own cls token and position embeddings), token 0 of each
//   → [t, d]; a temporal ViT (own cls, position embeddings over t) → token 0 → head.
// - Model 3, factorised self-attention (`EncoderFactorizedSelfAttentionBlock`, order time_space): no
//   cls, position embeddings once; per block LayerNorm_time → attention over t (+ residual),
//   LayerNorm_space → attention over hw (+ residual), LayerNorm_mlp → MlpBlock (+ residual); 'gap'.
// - Model 4, factorised dot-product (`model_utils.factorized_dot_product_attention`): pre-LN blocks
//   whose attention splits the heads in halves, the first attending over t, the second over hw,
//   concatenated before `out`; 'gap'.
// flax conventions: LayerNorm eps 1e-6, tanh GELU (nn.gelu's default), softmax in f32. Weights are
// stored under the flax parameter paths ('/'-separated) with kernels transposed to [out, in]
// (`…/kernel` → `…/weight`) and LayerNorm `scale` → `weight` (ScenicImport does the mapping).
import Foundation
import TubeletKernels

public struct ScenicViViTConfig: Codable, Sendable, Equatable {
    public enum Variant: Int, Codable, Sendable {
        case factorisedEncoder = 2
        case factorisedSelfAttention = 3
        case factorisedDotProduct = 4
    }

    /// One transformer encoder's size.
    public struct Encoder: Codable, Sendable, Equatable {
        public var layers: Int
        public var heads: Int
        public var mlpDim: Int
        public init(layers: Int, heads: Int, mlpDim: Int) {
            self.layers = layers
            self.heads = heads
            self.mlpDim = mlpDim
        }
    }

    public var variant: Variant
    public var imageSize: Int
    public var numFrames: Int
    /// Conv3d kernel = stride, (t, h, w) (scenic's `patches.size` is (h, w, t)).
    public var tubeletSize: [Int]
    public var inChannels: Int
    public var hiddenSize: Int
    public var numClasses: Int
    /// "token" (cls token, Model 2) or "gap" (mean over tokens; Models 3 and 4 need it).
    public var classifier: String
    /// Model 2: `SpatialTransformer`; Models 3, 4: `Transformer`.
    public var encoder: Encoder
    /// Model 2 only: `TemporalTransformer`.
    public var temporal: Encoder?
    public var layerNormEps: Float
    public var gelu: GELUVariant

    public init(variant: Variant, imageSize: Int = 224, numFrames: Int = 32, tubeletSize: [Int] = [2, 16, 16], inChannels: Int = 3,
                hiddenSize: Int = 768, numClasses: Int, classifier: String? = nil, encoder: Encoder, temporal: Encoder? = nil,
                layerNormEps: Float = 1e-6, gelu: GELUVariant = .tanh) {
        self.variant = variant
        self.imageSize = imageSize
        self.numFrames = numFrames
        self.tubeletSize = tubeletSize
        self.inChannels = inChannels
        self.hiddenSize = hiddenSize
        self.numClasses = numClasses
        self.classifier = classifier ?? (variant == .factorisedEncoder ? "token" : "gap")
        self.encoder = encoder
        self.temporal = temporal
        self.layerNormEps = layerNormEps
        self.gelu = gelu
    }

    /// Token grid (t, h, w) of a configured clip.
    public var grid: [Int] { [numFrames / tubeletSize[0], imageSize / tubeletSize[1], imageSize / tubeletSize[2]] }
    public var usesToken: Bool { classifier == "token" }

    /// Why the model code would trap on this config, or nil.
    public var problem: String? {
        if tubeletSize.count != 3 || !tubeletSize.allSatisfy({ $0 > 0 }) { return "tubeletSize must be 3 positive sizes" }
        if hiddenSize <= 0 || numClasses <= 0 || inChannels <= 0 || imageSize <= 0 || numFrames <= 0 { return "sizes must be positive" }
        if numFrames % tubeletSize[0] != 0 || imageSize % tubeletSize[1] != 0 || imageSize % tubeletSize[2] != 0 {
            return "\(numFrames) frames of \(imageSize)² are not a whole number of \(tubeletSize) tubelets"
        }
        if classifier != "token" && classifier != "gap" { return "classifier must be token or gap, got \(classifier)" }
        if variant != .factorisedEncoder && usesToken { return "Models 3 and 4 use the gap classifier (scenic has no token classifier for them)" }
        if variant == .factorisedEncoder && temporal == nil { return "Model 2 needs a temporal encoder" }
        for e in [encoder] + (temporal.map { [$0] } ?? []) {
            if e.layers < 0 || e.heads <= 0 || e.mlpDim <= 0 || hiddenSize % e.heads != 0 {
                return "encoder \(e) does not fit hidden size \(hiddenSize)"
            }
        }
        if variant == .factorisedDotProduct && encoder.heads % 2 != 0 { return "Model 4 needs an even number of heads, got \(encoder.heads)" }
        return nil
    }

    /// Name of the (first) encoder in the flax tree.
    public var encoderName: String { variant == .factorisedEncoder ? "SpatialTransformer" : "Transformer" }

    /// Every weight the model reads, with its shape, under the model file's names.
    public func parameterShapes() -> [(name: String, shape: [Int])] {
        let d = hiddenSize, grid = self.grid
        var shapes: [(String, [Int])] = [("embedding/weight", [d, inChannels] + tubeletSize), ("embedding/bias", [d])]
        func linear(_ p: String, _ input: Int, _ output: Int) { shapes += [(p + "weight", [output, input]), (p + "bias", [output])] }
        func norm(_ p: String) { shapes += [(p + "weight", [d]), (p + "bias", [d])] }
        func attention(_ p: String) { for part in ["query", "key", "value", "out"] { linear(p + part + "/", d, d) } }
        func encoderShapes(_ name: String, _ e: Encoder, tokens: Int) {
            shapes.append((name + "/posembed_input/pos_embedding", [1, tokens, d]))
            for layer in 0..<e.layers {
                let p = "\(name)/encoderblock_\(layer)/"
                if variant == .factorisedSelfAttention {
                    for axis in ["time", "space"] {
                        norm(p + "LayerNorm_\(axis)/")
                        attention(p + "MultiHeadDotProductAttention_\(axis)/")
                    }
                    norm(p + "LayerNorm_mlp/")
                    linear(p + "MlpBlock/Dense_0/", d, e.mlpDim)
                    linear(p + "MlpBlock/Dense_1/", e.mlpDim, d)
                } else {
                    norm(p + "LayerNorm_0/")
                    attention(p + "MultiHeadDotProductAttention_1/")
                    norm(p + "LayerNorm_2/")
                    linear(p + "MlpBlock_3/Dense_0/", d, e.mlpDim)
                    linear(p + "MlpBlock_3/Dense_1/", e.mlpDim, d)
                }
            }
            norm(name + "/encoder_norm/")
        }
        let cls = usesToken ? 1 : 0
        if variant == .factorisedEncoder {
            if usesToken { shapes += [("cls_SpatialTransformer", [1, 1, d]), ("cls_TemporalTransformer", [1, 1, d])] }
            encoderShapes("SpatialTransformer", encoder, tokens: cls + grid[1] * grid[2])
            encoderShapes("TemporalTransformer", temporal!, tokens: cls + grid[0])
        } else {
            encoderShapes("Transformer", encoder, tokens: grid.reduce(1, *))
        }
        linear("output_projection/", d, numClasses)
        return shapes
    }
}

/// flax MultiHeadDotProductAttention: `query`, `key`, `value` ([d] → [heads, headDim]) fused into one
/// [3d, d] projection at load time, `out` ([heads, headDim] → [d]).
func scenicAttention(_ weights: WeightProvider, _ p: String, dim d: Int, heads: Int) throws -> SelfAttentionWeights {
    let qkvWeight = Tensor(uninitialized: [3 * d, d]), qkvBias = Tensor(uninitialized: [3 * d])
    for (i, part) in ["query", "key", "value"].enumerated() {
        let w = try LinearWeights(weights, p + part + "/", in: d, out: d)
        (qkvWeight.data + i * d * d).update(from: w.weight.data, count: d * d)
        (qkvBias.data + i * d).update(from: w.bias!.data, count: d)
    }
    return SelfAttentionWeights(qkv: LinearWeights(weight: qkvWeight, bias: qkvBias),
                                output: try LinearWeights(weights, p + "out/", in: d, out: d), heads: heads)
}

/// scenic `EncoderBlock` (pre-LN): `x += attn(LayerNorm_0(x)); x += MlpBlock_3(LayerNorm_2(x))`.
/// Keys `…/encoderblock_N/{LayerNorm_0, MultiHeadDotProductAttention_1, LayerNorm_2, MlpBlock_3/Dense_{0,1}}`.
/// With `factorisedHeads` (Model 4) the attention is model_utils.factorized_dot_product_attention.
public struct ScenicEncoderBlock: Sendable {
    public let norm1: LayerNormWeights
    public let attention: SelfAttentionWeights
    public let norm2: LayerNormWeights
    public let mlp: MLPWeights

    init(_ weights: WeightProvider, _ p: String, dim d: Int, encoder e: ScenicViViTConfig.Encoder, eps: Float, gelu: GELUVariant) throws {
        norm1 = try LayerNormWeights(weights, p + "LayerNorm_0/", dim: d, eps: eps)
        attention = try scenicAttention(weights, p + "MultiHeadDotProductAttention_1/", dim: d, heads: e.heads)
        norm2 = try LayerNormWeights(weights, p + "LayerNorm_2/", dim: d, eps: eps)
        mlp = MLPWeights(fc1: try LinearWeights(weights, p + "MlpBlock_3/Dense_0/", in: d, out: e.mlpDim),
                         fc2: try LinearWeights(weights, p + "MlpBlock_3/Dense_1/", in: e.mlpDim, out: d), gelu: gelu)
    }

    /// x: [groups·n, d], independent sequences of n tokens, updated in place.
    func callAsFunction(_ x: Tensor, groups: Int, tokens n: Int, scratch: ViTScratch) {
        let rows = groups * n
        norm1(x.data, rows: rows, into: scratch.normed.data)
        attention(scratch.normed.data, groups: groups, tokens: n, into: scratch.attended.data, scratch: scratch.attention.data)
        addInPlace(x.data, scratch.attended.data, count: rows * attention.dim)
        norm2(x.data, rows: rows, into: scratch.normed.data)
        mlp.addInto(x.data, from: scratch.normed.data, rows: rows, hidden: scratch.hidden.data)
    }

    /// Model 4: x: [t·n, d] in (t, hw) order, updated in place.
    func factorised(_ x: Tensor, time t: Int, space n: Int, scratch: ViTScratch) {
        let rows = t * n, c = attention.dim
        norm1(x.data, rows: rows, into: scratch.normed.data)
        let qkv = scratch.attention.data, heads = scratch.attention.data + rows * 3 * c
        attention.qkv(scratch.normed.data, rows: rows, into: qkv)
        factorisedDotProductAttention(qkv: qkv, time: t, space: n, dim: c, heads: attention.heads, into: heads)
        attention.output(heads, rows: rows, into: x.data, accumulate: true)
        norm2(x.data, rows: rows, into: scratch.normed.data)
        mlp.addInto(x.data, from: scratch.normed.data, rows: rows, hidden: scratch.hidden.data)
    }
}

@inline(__always) func addInPlace(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { x[i] += y[i] }
}

/// scenic model_utils.factorized_dot_product_attention on a fused qkv [t·n, 3·dim] (rows in (t, hw)
/// order, each of q, k, v laid out (heads, headDim)): heads [0, heads/2) attend over t at every
/// spatial position, heads [heads/2, heads) over the n positions of every time index; softmax(q·kᵀ/√headDim)·v,
/// heads concatenated → out [t·n, dim].
public func factorisedDotProductAttention(qkv: UnsafePointer<Float>, time t: Int, space n: Int, dim c: Int, heads: Int,
                                          into out: UnsafeMutablePointer<Float>) {
    precondition(heads % 2 == 0, "factorised dot-product attention splits the heads in halves, got \(heads)")
    let half = heads / 2, headDim = c / heads, longest = max(t, n)
    let scale = 1 / Float(headDim).squareRoot()
    let timeTasks = n * half
    Parallel.forRanges(timeTasks + t * half) { range in
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: longest * longest)
        let rowSums = UnsafeMutablePointer<Float>.allocate(capacity: longest)
        defer { scores.deallocate(); rowSums.deallocate() }
        for task in range {
            // (sequence length, first q row, row stride in qkv, first output row, output row stride, head)
            let m: Int, q: UnsafePointer<Float>, lda: Int, o: UnsafeMutablePointer<Float>, ldo: Int
            if task < timeTasks {  // over t, at spatial position p
                let p = task / half, head = task % half
                (m, lda, ldo) = (t, n * 3 * c, n * c)
                q = qkv + p * 3 * c + head * headDim
                o = out + p * c + head * headDim
            } else {  // over hw, at time index s
                let j = task - timeTasks, s = j / half, head = half + j % half
                (m, lda, ldo) = (n, 3 * c, c)
                q = qkv + s * n * 3 * c + head * headDim
                o = out + s * n * c + head * headDim
            }
            sgemm(transposeA: false, transposeB: true, m: m, n: m, k: headDim, alpha: scale,
                  a: q, lda: lda, b: q + c, ldb: lda, beta: 0, c: scores, ldc: m)
            for i in 0..<m { rowSums[i] = exponentiateRow(scores + i * m, count: m) }
            sgemm(transposeA: false, transposeB: false, m: m, n: headDim, k: m,
                  a: scores, lda: m, b: q + 2 * c, ldb: lda, c: o, ldc: ldo)
            for i in 0..<m {
                let row = o + i * ldo, inverse = 1 / rowSums[i]
                for d in 0..<headDim { row[d] *= inverse }
            }
        }
    }
}

/// scenic `EncoderFactorizedSelfAttentionBlock` (attention_order 'time_space'). Keys
/// `…/encoderblock_N/{LayerNorm_time, MultiHeadDotProductAttention_time, LayerNorm_space,
/// MultiHeadDotProductAttention_space, LayerNorm_mlp, MlpBlock/Dense_{0,1}}`.
public struct ScenicFactorisedSelfAttentionBlock: Sendable {
    public let normTime: LayerNormWeights
    public let attentionTime: SelfAttentionWeights
    public let normSpace: LayerNormWeights
    public let attentionSpace: SelfAttentionWeights
    public let normMLP: LayerNormWeights
    public let mlp: MLPWeights

    init(_ weights: WeightProvider, _ p: String, dim d: Int, encoder e: ScenicViViTConfig.Encoder, eps: Float, gelu: GELUVariant) throws {
        normTime = try LayerNormWeights(weights, p + "LayerNorm_time/", dim: d, eps: eps)
        attentionTime = try scenicAttention(weights, p + "MultiHeadDotProductAttention_time/", dim: d, heads: e.heads)
        normSpace = try LayerNormWeights(weights, p + "LayerNorm_space/", dim: d, eps: eps)
        attentionSpace = try scenicAttention(weights, p + "MultiHeadDotProductAttention_space/", dim: d, heads: e.heads)
        normMLP = try LayerNormWeights(weights, p + "LayerNorm_mlp/", dim: d, eps: eps)
        mlp = MLPWeights(fc1: try LinearWeights(weights, p + "MlpBlock/Dense_0/", in: d, out: e.mlpDim),
                         fc2: try LinearWeights(weights, p + "MlpBlock/Dense_1/", in: e.mlpDim, out: d), gelu: gelu)
    }

    /// x: [t·n, d] in (t, hw) order, updated in place. `transposed`: t·n·d floats.
    func callAsFunction(_ x: Tensor, time t: Int, space n: Int, scratch: ViTScratch, transposed: Tensor) {
        let d = attentionTime.dim, rows = t * n
        // Time: sequences over t at each spatial position (reshape_to_1d_factorized, axis 1).
        for p in 0..<n { for s in 0..<t { (transposed.data + (p * t + s) * d).update(from: x.data + (s * n + p) * d, count: d) } }
        normTime(transposed.data, rows: rows, into: scratch.normed.data)
        attentionTime(scratch.normed.data, groups: n, tokens: t, into: scratch.attended.data, scratch: scratch.attention.data)
        for p in 0..<n { for s in 0..<t { addInPlace(x.data + (s * n + p) * d, scratch.attended.data + (p * t + s) * d, count: d) } }
        // Space: sequences over hw at each time index.
        normSpace(x.data, rows: rows, into: scratch.normed.data)
        attentionSpace(scratch.normed.data, groups: t, tokens: n, into: scratch.attended.data, scratch: scratch.attention.data)
        addInPlace(x.data, scratch.attended.data, count: rows * d)
        normMLP(x.data, rows: rows, into: scratch.normed.data)
        mlp.addInto(x.data, from: scratch.normed.data, rows: rows, hidden: scratch.hidden.data)
    }

    func flops(time t: Int, space n: Int) -> Double {
        attentionTime.flops(groups: n, tokens: t) + attentionSpace.flops(groups: t, tokens: n) + mlp.flops(rows: t * n)
    }
}

/// scenic `Encoder` (learned_1d): `posembed_input/pos_embedding` added, blocks, `encoder_norm`.
public struct ScenicEncoder: Sendable {
    public let name: String
    public let config: ScenicViViTConfig.Encoder
    /// [tokens, d] `<name>/posembed_input/pos_embedding`
    public let positionEmbeddings: Tensor
    public let blocks: [ScenicEncoderBlock]
    public let factorisedBlocks: [ScenicFactorisedSelfAttentionBlock]
    /// `<name>/encoder_norm`
    public let norm: LayerNormWeights

    init(_ weights: WeightProvider, name: String, encoder e: ScenicViViTConfig.Encoder, tokens: Int, model: ScenicViViTConfig) throws {
        let d = model.hiddenSize
        self.name = name
        config = e
        positionEmbeddings = try weights(name + "/posembed_input/pos_embedding", [1, tokens, d]).reshaped([tokens, d])
        let selfAttention = model.variant == .factorisedSelfAttention
        blocks = selfAttention ? [] : try (0..<e.layers).map {
            try ScenicEncoderBlock(weights, "\(name)/encoderblock_\($0)/", dim: d, encoder: e, eps: model.layerNormEps, gelu: model.gelu)
        }
        factorisedBlocks = !selfAttention ? [] : try (0..<e.layers).map {
            try ScenicFactorisedSelfAttentionBlock(weights, "\(name)/encoderblock_\($0)/", dim: d, encoder: e,
                                                   eps: model.layerNormEps, gelu: model.gelu)
        }
        norm = try LayerNormWeights(weights, name + "/encoder_norm/", dim: d, eps: model.layerNormEps)
    }

    /// One sequence x: [tokens, d] (position embeddings not yet added), full self-attention blocks;
    /// returns the pooled, normalised [d]: token 0 (`token`) or the mean of the normalised tokens (`gap`).
    func pooled(_ x: Tensor, token: Bool) -> [Float] {
        let d = positionEmbeddings.shape[1], n = x.shape[0]
        precondition(x.count == positionEmbeddings.count, "\(name) takes \(positionEmbeddings.shape[0]) tokens, got \(x.shape)")
        addInPlace(x.data, positionEmbeddings.data, count: n * d)
        let scratch = ViTScratch(rows: n, dim: d, hidden: config.mlpDim)
        for block in blocks { block(x, groups: 1, tokens: n, scratch: scratch) }
        return normaliseAndPool(x, token: token)
    }

    func normaliseAndPool(_ x: Tensor, token: Bool) -> [Float] {
        let d = positionEmbeddings.shape[1], n = x.shape[0]
        if token {
            var out = [Float](repeating: 0, count: d)
            out.withUnsafeMutableBufferPointer { norm(x.data, rows: 1, into: $0.baseAddress!) }
            return out
        }
        norm(x.data, rows: n, into: x.data)
        var mean = [Float](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += x.data[i * d + j] } }
        return mean.map { $0 / Float(n) }
    }

    func flops(tokens n: Int) -> Double {
        blocks.reduce(0) { $0 + $1.attention.flops(groups: 1, tokens: n) + $1.mlp.flops(rows: n) }
    }
}

/// ViViT Model 2, 3 or 4 from a scenic checkpoint.
public struct ScenicViViT: Sendable {
    public let config: ScenicViViTConfig
    /// Conv3d weight flattened to [hidden, channels·kt·kh·kw] (`embedding`, flax kernel [kt, kh, kw, c, d] transposed).
    public let patchEmbed: LinearWeights
    /// Model 2: `SpatialTransformer`; Models 3, 4: `Transformer`.
    public let encoder: ScenicEncoder
    /// Model 2: `TemporalTransformer`.
    public let temporal: ScenicEncoder?
    /// Model 2 with the token classifier: [d] `cls_SpatialTransformer`, `cls_TemporalTransformer`.
    public let spatialCls: Tensor?
    public let temporalCls: Tensor?
    /// `output_projection`
    public let head: LinearWeights

    public init(config: ScenicViViTConfig, weights: WeightProvider) throws {
        precondition(config.problem == nil, "invalid scenic ViViT config: \(config.problem!)")
        self.config = config
        let d = config.hiddenSize, grid = config.grid
        let conv = try weights("embedding/weight", [d, config.inChannels] + config.tubeletSize)
        patchEmbed = LinearWeights(weight: conv.reshaped([d, config.inChannels * config.tubeletSize.reduce(1, *)]),
                                   bias: try weights("embedding/bias", [d]))
        let cls = config.usesToken ? 1 : 0
        if config.variant == .factorisedEncoder {
            encoder = try ScenicEncoder(weights, name: "SpatialTransformer", encoder: config.encoder, tokens: cls + grid[1] * grid[2], model: config)
            temporal = try ScenicEncoder(weights, name: "TemporalTransformer", encoder: config.temporal!, tokens: cls + grid[0], model: config)
            spatialCls = config.usesToken ? try weights("cls_SpatialTransformer", [1, 1, d]).reshaped([d]) : nil
            temporalCls = config.usesToken ? try weights("cls_TemporalTransformer", [1, 1, d]).reshaped([d]) : nil
        } else {
            encoder = try ScenicEncoder(weights, name: "Transformer", encoder: config.encoder, tokens: grid.reduce(1, *), model: config)
            temporal = nil
            spatialCls = nil
            temporalCls = nil
        }
        head = try LinearWeights(weights, "output_projection/", in: d, out: config.numClasses)
    }

    /// Why a clip [C, T, H, W] cannot be run, or nil: the position embeddings fix its size.
    public func inputProblem(channels: Int, frames: Int, height: Int, width: Int) -> String? {
        fixedClipInputProblem("ViViT", channels: channels, frames: frames, height: height, width: width,
                          expected: (config.inChannels, config.numFrames, config.imageSize))
    }

    /// clip (or a whole number of tubelets of it): [C, T, H, W] → tubelet embeddings [T/kt, (H/kh)·(W/kw), d].
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

    /// Model 2: the spatial encoder on each temporal index of tubelet embeddings e: [k, N, d] →
    /// [k, d] (token 0 or the mean, after `encoder_norm`). Each index runs on its own, with the same
    /// GEMM shapes whatever k is, so a streaming caller can compute them one tubelet at a time and
    /// get bit-for-bit what a whole clip computes.
    public func spatialTokens(_ e: Tensor) -> Tensor {
        precondition(config.variant == .factorisedEncoder, "spatialTokens is Model 2's spatial encoder")
        let d = config.hiddenSize, n = config.grid[1] * config.grid[2]
        precondition(e.shape.last == d && e.count % (n * d) == 0, "tubelet embeddings must be [k, \(n), \(d)], got \(e.shape)")
        let k = e.count / (n * d), cls = config.usesToken ? 1 : 0
        let out = Tensor(uninitialized: [k, d])
        for index in 0..<k {
            let x = Tensor(uninitialized: [cls + n, d])
            if let spatialCls { x.data.update(from: spatialCls.data, count: d) }
            (x.data + cls * d).update(from: e.data + index * n * d, count: n * d)
            let pooled = encoder.pooled(x, token: config.usesToken)
            (out.data + index * d).update(from: pooled, count: d)
        }
        return out
    }

    /// Model 2: per-index spatial outputs s: [T', d] → logits (temporal encoder, pooling, head).
    public func temporalLogits(_ s: Tensor) -> Tensor {
        let d = config.hiddenSize, t = config.grid[0], cls = config.usesToken ? 1 : 0
        precondition(s.count == t * d, "the temporal encoder takes \(t)x\(d) spatial outputs, got \(s.shape)")
        let x = Tensor(uninitialized: [cls + t, d])
        if let temporalCls { x.data.update(from: temporalCls.data, count: d) }
        (x.data + cls * d).update(from: s.data, count: t * d)
        return classify(temporal!.pooled(x, token: config.usesToken))
    }

    func classify(_ pooled: [Float]) -> Tensor {
        let logits = Tensor(uninitialized: [config.numClasses])
        pooled.withUnsafeBufferPointer { head($0.baseAddress!, rows: 1, into: logits.data) }
        return logits
    }

    /// Tubelet embeddings e: [T', N, d] of the configured clip → logits.
    public func forward(tubeletEmbeddings e: Tensor) -> Tensor {
        let d = config.hiddenSize, grid = config.grid, t = grid[0], n = grid[1] * grid[2]
        precondition(e.count == t * n * d && e.shape.last == d, "tubelet embeddings must hold \(t)x\(n)x\(d), got \(e.shape)")
        switch config.variant {
        case .factorisedEncoder:
            return temporalLogits(spatialTokens(e))
        case .factorisedSelfAttention, .factorisedDotProduct:
            let x = Tensor(uninitialized: [t * n, d])
            x.data.update(from: e.data, count: t * n * d)
            addInPlace(x.data, encoder.positionEmbeddings.data, count: t * n * d)
            let scratch = ViTScratch(rows: t * n, dim: d, hidden: config.encoder.mlpDim)
            if config.variant == .factorisedSelfAttention {
                let transposed = Tensor(uninitialized: [t * n, d])
                for block in encoder.factorisedBlocks { block(x, time: t, space: n, scratch: scratch, transposed: transposed) }
            } else {
                for block in encoder.blocks { block.factorised(x, time: t, space: n, scratch: scratch) }
            }
            return classify(encoder.normaliseAndPool(x, token: false))
        }
    }

    /// 2·multiply-adds of the tubelet embedding of `frames` frames.
    public func embedFlops(frames: Int) -> Double {
        2 * Double(frames / config.tubeletSize[0] * config.grid[1] * config.grid[2]) * Double(patchEmbed.inFeatures * patchEmbed.outFeatures)
    }

    /// Model 2: 2·multiply-adds of the spatial encoder on one temporal index.
    public func spatialFlopsPerIndex() -> Double {
        encoder.flops(tokens: (config.usesToken ? 1 : 0) + config.grid[1] * config.grid[2])
    }

    /// 2·multiply-adds of everything after the spatial encoder (Model 2) or after the embedding (Models 3, 4).
    public func networkFlops() -> Double {
        let grid = config.grid, t = grid[0], n = grid[1] * grid[2], d = Double(config.hiddenSize)
        let headFlops = 2 * Double(head.inFeatures * head.outFeatures)
        switch config.variant {
        case .factorisedEncoder:
            return temporal!.flops(tokens: (config.usesToken ? 1 : 0) + t) + headFlops
        case .factorisedSelfAttention:
            return encoder.factorisedBlocks.reduce(0) { $0 + $1.flops(time: t, space: n) } + headFlops
        case .factorisedDotProduct:
            let half = Double(config.encoder.heads / 2), headDim = d / Double(config.encoder.heads)
            return encoder.blocks.reduce(0) { total, block in
                let rows = Double(t * n)
                let attention = 2 * rows * d * 4 * d
                    + 2 * 2 * half * headDim * (Double(n) * Double(t * t) + Double(t) * Double(n * n))
                return total + attention + block.mlp.flops(rows: t * n)
            } + headFlops
        }
    }

    /// 2·multiply-adds of every linear map and attention product for the configured clip.
    public func flops() -> Double {
        var total = embedFlops(frames: config.numFrames) + networkFlops()
        if config.variant == .factorisedEncoder { total += Double(config.grid[0]) * spatialFlopsPerIndex() }
        return total
    }
}

extension ScenicViViT: VideoModel {
    /// ViViT Models 2-4 (scenic), weights under the flax paths with kernels as [out, in].
    public static let architecture = "vivit_scenic"

    public static func problem(in config: ScenicViViTConfig) -> String? { config.problem }

    /// scenic's video pipeline (DMVR): zero-centred pixels (x/127.5 - 1), short side 8/7 of the crop
    /// (256 for 224), centre crop, every 2nd frame.
    public static func referencePreprocessing(for config: ScenicViViTConfig) -> Preprocessing {
        Preprocessing(frames: config.numFrames, frameStride: 2, resizeShortSide: (config.imageSize * 8 + 6) / 7, cropSize: config.imageSize,
                      pixelScale: 1 / 127.5, mean: [1, 1, 1], std: [1, 1, 1])
    }

    public var numClasses: Int { config.numClasses }
    public func logits(_ clip: Tensor) -> Tensor { self(clip) }
    public func flops(frames: Int, height: Int, width: Int) -> Double { flops() }

    /// Units are tubelets. For Model 2 (factorised encoder) a unit's "embedding" runs the spatial encoder
    /// too: it sees only its own tubelet, so `exact` reuses each tubelet's spatial output [1, d] and
    /// reruns only the temporal encoder per label.
    public var tubeletEmbedding: TubeletEmbedding? {
        let model = self
        let factorisedEncoder = config.variant == .factorisedEncoder
        let embedding = 2 * Double(patchEmbed.inFeatures * patchEmbed.outFeatures)
        return TubeletEmbedding(
            unitFrames: config.tubeletSize[0],
            embed: { frames, _ in
                let tokens = model.embedTubelets(frames)
                return factorisedEncoder ? model.spatialTokens(tokens) : tokens
            },
            embedFlops: { tokens in
                guard factorisedEncoder else { return embedding * Double(tokens.count / tokens.shape.last!) }
                // tokens: [k, d] spatial outputs of k tubelets, each embedded and through the spatial encoder.
                return Double(tokens.shape[0]) * (model.embedFlops(frames: model.config.tubeletSize[0]) + model.spatialFlopsPerIndex())
            },
            forward: { tokens in factorisedEncoder ? model.temporalLogits(tokens) : model.forward(tubeletEmbeddings: tokens) },
            networkFlops: { _, _, _ in model.networkFlops() })
    }
}

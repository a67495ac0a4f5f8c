// UniFormer (Li et al., "UniFormer: Unified Transformer for Efficient Spatiotemporal Representation
// Learning", ICLR 2022), the video model of Sense-X/UniFormer
// `video_classification/slowfast/models/uniformer.py` (class `Uniformer`):
// - patch_embed1 (`SpeicalPatchEmbed`): Conv3d 3x4x4, stride 2x4x4, padding (1, 0, 0), LayerNorm eps 1e-5;
//   patch_embed2-4 (`PatchEmbed`): Conv3d 1x2x2 (or 3x2x2 with temporal padding 1 when `std`),
//   stride 1x2x2, LayerNorm eps 1e-5. Convolutions without padding floor odd sizes.
// - stages 1-2, `CBlock`: x += dw3³(x) (dynamic position encoding, DPE);
//   x += conv2(dw5³(conv1(BN1(x)))); x += fc2(GELU(fc1(BN2(x)))), the 1x1x1 convolutions are linears.
// - stages 3-4, `SABlock`: x += dw3³(x); x += attn(LN1(x)) over every token; x += mlp(LN2(x)), LN eps 1e-6;
//   or `SplitSABlock` (UNIFORMER.SPLIT): after the DPE, u = x + t_attn(t_norm(x)) per spatial position
//   over time; x += attn(norm1(u)) per frame over space (the residual is x, not u); x += mlp(norm2(x)).
// - head: BatchNorm3d, mean over t, h, w, Linear. BatchNorm (eps 1e-5, running statistics) is
//   folded into the linear map that follows it when the model is built (conv1, fc1, head).
// Tokens are channels-last, [T, H, W, C], so 1x1x1 convolutions and linears are one GEMM each.
// Weights keep the official names and shapes (`blocks1.0.conv1.weight` [C, C, 1, 1, 1], …).
import Foundation
import TubeletKernels

public struct UniFormerConfig: Codable, Sendable, Equatable {
    public var inChannels: Int
    /// Channels of the four stages (`UNIFORMER.EMBED_DIM`).
    public var embedDims: [Int]
    /// Blocks per stage (`UNIFORMER.DEPTH`).
    public var depths: [Int]
    /// Width of one attention head (`UNIFORMER.HEAD_DIM`); stage s has embedDims[s] / headDim heads.
    public var headDim: Int
    public var mlpRatio: Int
    public var qkvBias: Bool
    /// SplitSABlocks in stages 3-4 (`UNIFORMER.SPLIT`).
    public var split: Bool
    /// patch_embed2-4 are 3x2x2 with temporal padding 1 (`UNIFORMER.STD`), else 1x2x2.
    public var stdPatchEmbed: Bool
    public var numClasses: Int

    public init(inChannels: Int = 3, embedDims: [Int] = [64, 128, 320, 512], depths: [Int], headDim: Int = 64, mlpRatio: Int = 4,
                qkvBias: Bool = true, split: Bool = false, stdPatchEmbed: Bool = false, numClasses: Int) {
        self.inChannels = inChannels
        self.embedDims = embedDims
        self.depths = depths
        self.headDim = headDim
        self.mlpRatio = mlpRatio
        self.qkvBias = qkvBias
        self.split = split
        self.stdPatchEmbed = stdPatchEmbed
        self.numClasses = numClasses
    }

    /// UniFormer-S (exp/uniformer_s16x4_k400): dims 64-128-320-512, depths 3-4-8-3, head_dim 64.
    public static func small(numClasses: Int = 400) -> UniFormerConfig { UniFormerConfig(depths: [3, 4, 8, 3], numClasses: numClasses) }
    /// UniFormer-B: depths 5-8-20-7.
    public static func base(numClasses: Int = 400) -> UniFormerConfig { UniFormerConfig(depths: [5, 8, 20, 7], numClasses: numClasses) }

    public func heads(stage: Int) -> Int { embedDims[stage] / headDim }
    /// Temporal kernel of patch_embed2-4.
    public var patchEmbedFrames: Int { stdPatchEmbed ? 3 : 1 }

    /// Why the model code would trap on this config, or nil.
    public var problem: String? {
        if embedDims.count != 4 || depths.count != 4 { return "embedDims and depths must have 4 stages" }
        if !embedDims.allSatisfy({ $0 > 0 }) || !depths.allSatisfy({ $0 >= 0 }) || inChannels <= 0 || numClasses <= 0 || mlpRatio <= 0 {
            return "sizes must be positive"
        }
        if headDim <= 0 { return "headDim must be positive" }
        for stage in 2..<4 where depths[stage] > 0 && embedDims[stage] % headDim != 0 {
            return "stage \(stage + 1) has \(embedDims[stage]) channels, not a multiple of headDim \(headDim) (set the head width, e.g. --config '{\"headDim\": 32}')"
        }
        return nil
    }

    /// Every weight the model reads, with its shape, under the official names.
    public func parameterShapes() -> [(name: String, shape: [Int])] {
        var shapes: [(String, [Int])] = []
        func add(_ name: String, _ shape: [Int]) { shapes.append((name, shape)) }
        func batchNorm(_ p: String, _ c: Int) { for leaf in ["weight", "bias", "running_mean", "running_var"] { add(p + leaf, [c]) } }
        func layerNorm(_ p: String, _ c: Int) { add(p + "weight", [c]); add(p + "bias", [c]) }
        func attention(_ p: String, _ c: Int) {
            add(p + "qkv.weight", [3 * c, c])
            if qkvBias { add(p + "qkv.bias", [3 * c]) }
            add(p + "proj.weight", [c, c]); add(p + "proj.bias", [c])
        }
        for stage in 0..<4 {
            let c = embedDims[stage], p = "patch_embed\(stage + 1)."
            if stage == 0 {
                add(p + "proj.weight", [c, inChannels, 3, 4, 4])
            } else {
                add(p + "proj.weight", [c, embedDims[stage - 1], patchEmbedFrames, 2, 2])
            }
            add(p + "proj.bias", [c])
            layerNorm(p + "norm.", c)
            for block in 0..<depths[stage] {
                let b = "blocks\(stage + 1).\(block)."
                add(b + "pos_embed.weight", [c, 1, 3, 3, 3]); add(b + "pos_embed.bias", [c])
                if stage < 2 {
                    batchNorm(b + "norm1.", c)
                    add(b + "conv1.weight", [c, c, 1, 1, 1]); add(b + "conv1.bias", [c])
                    add(b + "attn.weight", [c, 1, 5, 5, 5]); add(b + "attn.bias", [c])
                    add(b + "conv2.weight", [c, c, 1, 1, 1]); add(b + "conv2.bias", [c])
                    batchNorm(b + "norm2.", c)
                    add(b + "mlp.fc1.weight", [mlpRatio * c, c, 1, 1, 1]); add(b + "mlp.fc1.bias", [mlpRatio * c])
                    add(b + "mlp.fc2.weight", [c, mlpRatio * c, 1, 1, 1]); add(b + "mlp.fc2.bias", [c])
                } else {
                    if split {
                        layerNorm(b + "t_norm.", c)
                        attention(b + "t_attn.", c)
                    }
                    layerNorm(b + "norm1.", c)
                    attention(b + "attn.", c)
                    layerNorm(b + "norm2.", c)
                    add(b + "mlp.fc1.weight", [mlpRatio * c, c]); add(b + "mlp.fc1.bias", [mlpRatio * c])
                    add(b + "mlp.fc2.weight", [c, mlpRatio * c]); add(b + "mlp.fc2.bias", [c])
                }
            }
        }
        batchNorm("norm.", embedDims[3])
        add("head.weight", [numClasses, embedDims[3]]); add("head.bias", [numClasses])
        return shapes
    }
}

/// A depthwise Conv3d (groups = channels, stride 1, padding k/2). Keys: `{prefix}weight` [C, 1, k, k, k], `{prefix}bias`.
public struct DepthwiseConv3dWeights: Sendable {
    /// [k³, C], tap-major (the layout `depthwiseConv3d` reads).
    public let taps: Tensor
    public let bias: Tensor
    public let kernel: Int
    public var channels: Int { bias.count }

    init(_ weights: WeightProvider, _ prefix: String, channels c: Int, kernel k: Int) throws {
        let weight = try weights(prefix + "weight", [c, 1, k, k, k])
        taps = Tensor(uninitialized: [k * k * k, c])
        depthwiseTaps(weight.data, channels: c, taps: k * k * k, into: taps.data)
        bias = try weights(prefix + "bias", [c])
        kernel = k
    }

    /// y = (residual) + conv(x); x, y, residual: [T, H, W, C]; y must not alias x.
    func callAsFunction(_ x: UnsafePointer<Float>, grid: [Int], residual: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>) {
        depthwiseConv3d(x, grid: grid, channels: channels, kernel: kernel, weight: taps.data, bias: bias.data, residual: residual, into: y)
    }

    func flops(tokens: Int) -> Double { 2 * Double(tokens * channels * kernel * kernel * kernel) }
}

/// Eval-mode BatchNorm (`{prefix}weight, bias, running_mean, running_var`) followed by `linear`, as
/// one linear map: BN(x) = s⊙x + b with s = γ/√(var + eps), b = β - mean·s, so
/// W·BN(x) + c = (W·diag s)·x + (W·b + c). Computed in double, rounded once.
func foldBatchNorm(_ weights: WeightProvider, _ prefix: String, eps: Double, into linear: LinearWeights) throws -> LinearWeights {
    let (outFeatures, c) = (linear.outFeatures, linear.inFeatures)
    let gamma = try weights(prefix + "weight", [c]), beta = try weights(prefix + "bias", [c])
    let mean = try weights(prefix + "running_mean", [c]), variance = try weights(prefix + "running_var", [c])
    let scale = (0..<c).map { Double(gamma[$0]) / (Double(variance[$0]) + eps).squareRoot() }
    let shift = (0..<c).map { Double(beta[$0]) - Double(mean[$0]) * scale[$0] }
    let weight = Tensor(uninitialized: [outFeatures, c]), bias = Tensor(uninitialized: [outFeatures])
    for o in 0..<outFeatures {
        var sum = Double(linear.bias?[o] ?? 0)
        for i in 0..<c {
            let w = Double(linear.weight[o * c + i])
            weight[o * c + i] = Float(w * scale[i])
            sum += w * shift[i]
        }
        bias[o] = Float(sum)
    }
    return LinearWeights(weight: weight, bias: bias)
}

/// A 1x1x1 Conv3d as a linear map. Keys: `{prefix}weight` [out, in, 1, 1, 1], `{prefix}bias`.
func pointwiseConv(_ weights: WeightProvider, _ prefix: String, in inFeatures: Int, out outFeatures: Int) throws -> LinearWeights {
    LinearWeights(weight: try weights(prefix + "weight", [outFeatures, inFeatures, 1, 1, 1]).reshaped([outFeatures, inFeatures]),
                  bias: try weights(prefix + "bias", [outFeatures]))
}

/// patch_embed2-4: Conv3d kt x 2 x 2, stride 1x2x2, temporal padding kt/2, then LayerNorm (eps 1e-5).
/// Keys: `patch_embedN.{proj, norm}`.
public struct UniFormerPatchMerge: Sendable {
    /// Conv weight [out, in, kt, 2, 2] reordered to [out, kt·2·2·in], the order in which channels-last tokens are gathered.
    public let projection: LinearWeights
    public let norm: LayerNormWeights
    public let frames: Int

    init(_ weights: WeightProvider, _ prefix: String, in inChannels: Int, out outChannels: Int, frames kt: Int) throws {
        let conv = try weights(prefix + "proj.weight", [outChannels, inChannels, kt, 2, 2])
        let volume = kt * 4 * inChannels
        let reordered = Tensor(uninitialized: [outChannels, volume])
        for o in 0..<outChannels { for i in 0..<inChannels { for tap in 0..<(kt * 4) {
            reordered[o * volume + tap * inChannels + i] = conv[(o * inChannels + i) * kt * 4 + tap]
        }}}
        projection = LinearWeights(weight: reordered, bias: try weights(prefix + "proj.bias", [outChannels]))
        norm = try LayerNormWeights(weights, prefix + "norm.", dim: outChannels, eps: 1e-5)
        frames = kt
    }

    func outputGrid(_ grid: [Int]) -> [Int] { [grid[0], grid[1] / 2, grid[2] / 2] }

    /// x: [T, H, W, Cin] → [T, H/2, W/2, Cout] (floor: an odd last row or column is dropped, as the unpadded Conv3d does).
    func callAsFunction(_ x: Tensor, grid: [Int]) -> (Tensor, [Int]) {
        let cin = x.shape.last!, out = outputGrid(grid)
        let (sizeT, sizeH, sizeW) = (grid[0], grid[1], grid[2])
        let (h2, w2) = (out[1], out[2])
        let rows = out.reduce(1, *), volume = projection.inFeatures, pad = frames / 2
        let gathered = Tensor(uninitialized: [rows, volume])
        Parallel.forRanges(sizeT * h2, minimum: 4) { range in
            for rowIndex in range {
                let (t, h) = (rowIndex / h2, rowIndex % h2)
                for w in 0..<w2 {
                    var destination = gathered.data + ((t * h2 + h) * w2 + w) * volume
                    for kt in 0..<frames {
                        let source = t + kt - pad
                        for kh in 0..<2 {
                            if source >= 0 && source < sizeT {
                                // (kh, kw = 0, 1) are two neighbouring tokens: one contiguous run of 2·Cin.
                                destination.update(from: x.data + ((source * sizeH + 2 * h + kh) * sizeW + 2 * w) * cin, count: 2 * cin)
                            } else {
                                destination.update(repeating: 0, count: 2 * cin)
                            }
                            destination += 2 * cin
                        }
                    }
                }
            }
        }
        let y = Tensor(uninitialized: out + [projection.outFeatures])
        projection(gathered.data, rows: rows, into: y.data)
        norm(y.data, rows: rows, into: y.data)
        return (y, out)
    }

    func flops(_ grid: [Int]) -> Double { 2 * Double(outputGrid(grid).reduce(1, *)) * Double(projection.inFeatures * projection.outFeatures) }
}

/// Work buffers of one stage (`attention`: qkv and the heads' outputs, SA stages only).
final class UniFormerScratch {
    let a: Tensor, b: Tensor, hidden: Tensor, attention: Tensor
    init(tokens n: Int, channels c: Int, mlpRatio: Int, attention: Bool) {
        a = Tensor(uninitialized: [n, c])
        b = Tensor(uninitialized: [n, c])
        hidden = Tensor(uninitialized: [n, mlpRatio * c])
        self.attention = Tensor(uninitialized: attention ? [n, 4 * c] : [0])
    }
}

/// Stages 1-2. Keys: `blocksN.j.{pos_embed, norm1 (BN), conv1, attn (5³ depthwise), conv2, norm2 (BN), mlp.fc1, mlp.fc2}`.
public struct UniFormerCBlock: Sendable {
    /// pos_embed: depthwise 3³.
    public let positionEncoding: DepthwiseConv3dWeights
    /// conv1 with norm1 folded in.
    public let conv1: LinearWeights
    /// attn: depthwise 5³.
    public let aggregation: DepthwiseConv3dWeights
    public let conv2: LinearWeights
    /// mlp.fc1 (norm2 folded in), GELU, mlp.fc2.
    public let mlp: MLPWeights

    init(_ weights: WeightProvider, _ p: String, channels c: Int, mlpRatio: Int) throws {
        positionEncoding = try DepthwiseConv3dWeights(weights, p + "pos_embed.", channels: c, kernel: 3)
        conv1 = try foldBatchNorm(weights, p + "norm1.", eps: UniFormer.batchNormEps, into: try pointwiseConv(weights, p + "conv1.", in: c, out: c))
        aggregation = try DepthwiseConv3dWeights(weights, p + "attn.", channels: c, kernel: 5)
        conv2 = try pointwiseConv(weights, p + "conv2.", in: c, out: c)
        let fc1 = try foldBatchNorm(weights, p + "norm2.", eps: UniFormer.batchNormEps,
                                    into: try pointwiseConv(weights, p + "mlp.fc1.", in: c, out: mlpRatio * c))
        mlp = MLPWeights(fc1: fc1, fc2: try pointwiseConv(weights, p + "mlp.fc2.", in: mlpRatio * c, out: c), gelu: .exact)
    }

    /// x: [T, H, W, C], updated in place.
    func callAsFunction(_ x: Tensor, grid: [Int], scratch s: UniFormerScratch) {
        let n = grid.reduce(1, *)
        positionEncoding(x.data, grid: grid, residual: x.data, into: s.a.data)
        x.data.update(from: s.a.data, count: x.count)
        conv1(x.data, rows: n, into: s.a.data)
        aggregation(s.a.data, grid: grid, residual: nil, into: s.b.data)
        conv2(s.b.data, rows: n, into: x.data, accumulate: true)
        mlp.addInto(x.data, from: x.data, rows: n, hidden: s.hidden.data)
    }

    func flops(tokens n: Int) -> Double {
        positionEncoding.flops(tokens: n) + aggregation.flops(tokens: n) + 2 * Double(n) * Double(conv1.inFeatures * conv1.outFeatures) * 2
            + mlp.flops(rows: n)
    }
}

/// Stages 3-4. Keys: `blocksN.j.{pos_embed, [t_norm, t_attn.{qkv, proj}], norm1, attn.{qkv, proj}, norm2, mlp.fc1, mlp.fc2}`.
public struct UniFormerSABlock: Sendable {
    public let positionEncoding: DepthwiseConv3dWeights
    /// SplitSABlock only: attention over time per spatial position.
    public let temporalNorm: LayerNormWeights?
    public let temporalAttention: SelfAttentionWeights?
    public let norm1: LayerNormWeights
    public let attention: SelfAttentionWeights
    public let norm2: LayerNormWeights
    public let mlp: MLPWeights

    init(_ weights: WeightProvider, _ p: String, channels c: Int, config: UniFormerConfig, heads: Int) throws {
        let eps: Float = 1e-6
        func selfAttention(_ prefix: String) throws -> SelfAttentionWeights {
            SelfAttentionWeights(qkv: try LinearWeights(weights, prefix + "qkv.", in: c, out: 3 * c, bias: config.qkvBias),
                                 output: try LinearWeights(weights, prefix + "proj.", in: c, out: c), heads: heads)
        }
        positionEncoding = try DepthwiseConv3dWeights(weights, p + "pos_embed.", channels: c, kernel: 3)
        if config.split {
            temporalNorm = try LayerNormWeights(weights, p + "t_norm.", dim: c, eps: eps)
            temporalAttention = try selfAttention(p + "t_attn.")
        } else {
            temporalNorm = nil
            temporalAttention = nil
        }
        norm1 = try LayerNormWeights(weights, p + "norm1.", dim: c, eps: eps)
        attention = try selfAttention(p + "attn.")
        norm2 = try LayerNormWeights(weights, p + "norm2.", dim: c, eps: eps)
        mlp = MLPWeights(fc1: try LinearWeights(weights, p + "mlp.fc1.", in: c, out: config.mlpRatio * c),
                         fc2: try LinearWeights(weights, p + "mlp.fc2.", in: config.mlpRatio * c, out: c), gelu: .exact)
    }

    /// x: [T, H, W, C], updated in place.
    func callAsFunction(_ x: Tensor, grid: [Int], scratch s: UniFormerScratch) {
        let n = grid.reduce(1, *), c = attention.dim
        positionEncoding(x.data, grid: grid, residual: x.data, into: s.a.data)
        x.data.update(from: s.a.data, count: x.count)
        let qkv = s.attention.data, attended = s.attention.data + n * 3 * c
        if let temporalNorm, let temporalAttention {
            // u[s, t] = x[t, s] + t_attn(t_norm(x))[s, t], one sequence of T frames per spatial position s.
            let (frames, positions) = (grid[0], grid[1] * grid[2])
            let u = s.b.data
            for position in 0..<positions {
                for t in 0..<frames { (u + (position * frames + t) * c).update(from: x.data + (t * positions + position) * c, count: c) }
            }
            temporalNorm(u, rows: n, into: s.a.data)
            temporalAttention.qkv(s.a.data, rows: n, into: qkv)
            temporalAttention.attention(qkv: qkv, groups: positions, tokens: frames, into: attended)
            temporalAttention.output(attended, rows: n, into: u, accumulate: true)
            // Back to frame-major order, normalised: the spatial attention's input (its residual stays x).
            for t in 0..<frames {
                for position in 0..<positions { (s.a.data + (t * positions + position) * c).update(from: u + (position * frames + t) * c, count: c) }
            }
            norm1(s.a.data, rows: n, into: s.a.data)
            attention.qkv(s.a.data, rows: n, into: qkv)
            attention.attention(qkv: qkv, groups: frames, tokens: positions, into: attended)
        } else {
            norm1(x.data, rows: n, into: s.a.data)
            attention.qkv(s.a.data, rows: n, into: qkv)
            attention.attendAll(qkv: qkv, tokens: n, into: attended)
        }
        attention.output(attended, rows: n, into: x.data, accumulate: true)
        norm2(x.data, rows: n, into: s.a.data)
        mlp.addInto(x.data, from: s.a.data, rows: n, hidden: s.hidden.data)
    }

    func flops(grid: [Int]) -> Double {
        let n = grid.reduce(1, *)
        var total = positionEncoding.flops(tokens: n) + mlp.flops(rows: n)
        if let temporalAttention {
            total += temporalAttention.flops(groups: grid[1] * grid[2], tokens: grid[0])
            total += attention.flops(groups: grid[0], tokens: grid[1] * grid[2])
        } else {
            total += attention.flops(groups: 1, tokens: n)
        }
        return total
    }
}

extension SelfAttentionWeights {
    /// Attention of one sequence of n tokens (n in the thousands in UniFormer's stage 3): work items
    /// are (head, block of 128 queries) so that both threads stay busy whatever the head count and
    /// each score tile stays in cache. qkv: [n, 3·dim] → out: [n, dim].
    func attendAll(qkv: UnsafePointer<Float>, tokens n: Int, into out: UnsafeMutablePointer<Float>) {
        let c = dim, headDim = c / heads, blockRows = 128
        let scale = 1 / Float(headDim).squareRoot()
        let blocks = (n + blockRows - 1) / blockRows
        Parallel.forRanges(heads * blocks) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * n)
            let rowSums = UnsafeMutablePointer<Float>.allocate(capacity: blockRows)
            defer { scores.deallocate(); rowSums.deallocate() }
            for item in range {
                let head = item / blocks, first = (item % blocks) * blockRows
                let rows = min(blockRows, n - first)
                let q = qkv + first * 3 * c + head * headDim, k = qkv + c + head * headDim, v = qkv + 2 * c + head * headDim
                sgemm(transposeA: false, transposeB: true, m: rows, n: n, k: headDim, alpha: scale,
                      a: q, lda: 3 * c, b: k, ldb: 3 * c, beta: 0, c: scores, ldc: n)
                for i in 0..<rows { rowSums[i] = exponentiateRow(scores + i * n, count: n) }
                let output = out + first * c + head * headDim
                sgemm(transposeA: false, transposeB: false, m: rows, n: headDim, k: n,
                      a: scores, lda: n, b: v, ldb: 3 * c, c: output, ldc: c)
                for i in 0..<rows {
                    let row = output + i * c, inverse = 1 / rowSums[i]
                    for d in 0..<headDim { row[d] *= inverse }
                }
            }
        }
    }
}

public struct UniFormer: Sendable {
    /// BatchNorm3d's default eps (every BatchNorm of the official model).
    public static let batchNormEps = 1e-5

    public let config: UniFormerConfig
    /// patch_embed1: Conv3d 3x4x4 weight flattened to [C0, inChannels·3·4·4] (order c, kt, kh, kw).
    public let stem: LinearWeights
    public let stemNorm: LayerNormWeights
    /// patch_embed2-4.
    public let merges: [UniFormerPatchMerge]
    /// blocks1, blocks2.
    public let convStages: [[UniFormerCBlock]]
    /// blocks3, blocks4.
    public let attentionStages: [[UniFormerSABlock]]
    /// head with norm (BatchNorm3d) folded in: the mean over tokens commutes with a per-channel affine map.
    public let head: LinearWeights

    public init(config: UniFormerConfig, weights: WeightProvider) throws {
        precondition(config.problem == nil, config.problem ?? "")
        self.config = config
        let dims = config.embedDims
        let stemVolume = config.inChannels * 3 * 4 * 4
        stem = LinearWeights(weight: try weights("patch_embed1.proj.weight", [dims[0], config.inChannels, 3, 4, 4]).reshaped([dims[0], stemVolume]),
                             bias: try weights("patch_embed1.proj.bias", [dims[0]]))
        stemNorm = try LayerNormWeights(weights, "patch_embed1.norm.", dim: dims[0], eps: 1e-5)
        merges = try (1..<4).map {
            try UniFormerPatchMerge(weights, "patch_embed\($0 + 1).", in: dims[$0 - 1], out: dims[$0], frames: config.patchEmbedFrames)
        }
        convStages = try (0..<2).map { stage in
            try (0..<config.depths[stage]).map {
                try UniFormerCBlock(weights, "blocks\(stage + 1).\($0).", channels: dims[stage], mlpRatio: config.mlpRatio)
            }
        }
        attentionStages = try (2..<4).map { stage in
            try (0..<config.depths[stage]).map {
                try UniFormerSABlock(weights, "blocks\(stage + 1).\($0).", channels: dims[stage], config: config, heads: config.heads(stage: stage))
            }
        }
        head = try foldBatchNorm(weights, "norm.", eps: UniFormer.batchNormEps, into: try LinearWeights(weights, "head.", in: dims[3], out: config.numClasses))
    }

    /// Frames of clip that one token of patch_embed1 advances by (its temporal stride), and the frames
    /// before its own two that it reads (kernel 3, padding 1): token j reads frames 2j-1, 2j, 2j+1.
    public static let tubeletFrames = 2
    public static let contextFrames = 1

    /// Token grid after patch_embed1 for a clip of `frames` frames (of which the first `contextFrames`
    /// only feed the first token).
    public func tokenGrid(frames: Int, height: Int, width: Int, contextFrames: Int = 0) -> [Int] {
        [(frames - contextFrames - 1) / 2 + 1, height / 4, width / 4]
    }

    /// Why a clip [C, T, H, W] cannot be run, or nil.
    public func inputProblem(channels: Int, frames: Int, height: Int, width: Int) -> String? {
        if channels != config.inChannels { return "expected \(config.inChannels) channels, got \(channels)" }
        if frames < 1 { return "empty clip" }
        if height < 32 || width < 32 { return "UniFormer needs frames of at least 32x32 (four stages halve 8x8 patches), got \(height)x\(width)" }
        return nil
    }

    /// clip: [C, T, H, W] normalised → tokens [T', H/4, W/4, C0]: patch_embed1's Conv3d and LayerNorm.
    /// With `contextFrames` = 1 the clip's first frame is the frame before the frames to embed (a
    /// slice of a longer clip), read by the first token instead of the zero padding.
    public func embedPatches(_ clip: Tensor, contextFrames context: Int = 0) -> Tensor {
        precondition(clip.rank == 4 && clip.shape[0] == config.inChannels, "clip must be [\(config.inChannels), T, H, W], got \(clip.shape)")
        let (channels, frames, height, width) = (clip.shape[0], clip.shape[1], clip.shape[2], clip.shape[3])
        precondition(context >= 0 && frames > context, "a clip of \(frames) frames with \(context) context frames")
        let grid = tokenGrid(frames: frames, height: height, width: width, contextFrames: context)
        let tokens = grid.reduce(1, *), volume = stem.inFeatures
        let patches = Tensor(uninitialized: [tokens, volume])
        Parallel.forRanges(tokens, minimum: 64) { range in
            for token in range {
                let (gt, gh, gw) = (token / (grid[1] * grid[2]), (token / grid[2]) % grid[1], token % grid[2])
                var out = patches.data + token * volume
                for c in 0..<channels { for kt in 0..<3 {
                    let t = context + 2 * gt - 1 + kt
                    for kh in 0..<4 {
                        if t >= 0 && t < frames {
                            out.update(from: clip.data + ((c * frames + t) * height + gh * 4 + kh) * width + gw * 4, count: 4)
                        } else {
                            out.update(repeating: 0, count: 4)
                        }
                        out += 4
                    }
                }}
            }
        }
        let x = Tensor(uninitialized: grid + [config.embedDims[0]])
        stem(patches.data, rows: tokens, into: x.data)
        stemNorm(x.data, rows: tokens, into: x.data)
        return x
    }

    /// clip: [C, T, H, W] → logits [numClasses].
    public func callAsFunction(_ clip: Tensor) -> Tensor { forward(tokens: embedPatches(clip)) }

    /// Tokens from `embedPatches`, [T', H', W', C0] (consumed: updated in place) → logits [numClasses].
    public func forward(tokens: Tensor) -> Tensor {
        var x = tokens, grid = Array(tokens.shape.prefix(3))
        precondition(tokens.rank == 4 && tokens.shape[3] == config.embedDims[0], "tokens must be [T, H, W, \(config.embedDims[0])], got \(tokens.shape)")
        for stage in 0..<4 {
            if stage > 0 { (x, grid) = merges[stage - 1](x, grid: grid) }
            let n = grid.reduce(1, *)
            let scratch = UniFormerScratch(tokens: n, channels: config.embedDims[stage], mlpRatio: config.mlpRatio, attention: stage >= 2)
            if stage < 2 {
                for block in convStages[stage] { block(x, grid: grid, scratch: scratch) }
            } else {
                for block in attentionStages[stage - 2] { block(x, grid: grid, scratch: scratch) }
            }
        }
        let c = config.embedDims[3], n = grid.reduce(1, *)
        var sums = [Double](repeating: 0, count: c)
        for token in 0..<n { for j in 0..<c { sums[j] += Double(x[token * c + j]) } }
        let pooled = sums.map { Float($0 / Double(n)) }
        let logits = Tensor(uninitialized: [config.numClasses])
        pooled.withUnsafeBufferPointer { head($0.baseAddress!, rows: 1, into: logits.data) }
        return logits
    }

    /// 2·multiply-adds of patch_embed1 for `tokens` tokens.
    public func embedFlops(tokens: Int) -> Double { 2 * Double(tokens) * Double(stem.inFeatures * stem.outFeatures) }

    /// 2·multiply-adds of every convolution (depthwise ones included), linear and attention product
    /// for a clip (norms, softmax, GELU not counted).
    public func flops(frames: Int, height: Int, width: Int) -> Double {
        var grid = tokenGrid(frames: frames, height: height, width: width)
        var total = embedFlops(tokens: grid.reduce(1, *))
        for stage in 0..<4 {
            if stage > 0 {
                total += merges[stage - 1].flops(grid)
                grid = merges[stage - 1].outputGrid(grid)
            }
            let n = grid.reduce(1, *)
            if stage < 2 {
                total += convStages[stage].reduce(0) { $0 + $1.flops(tokens: n) }
            } else {
                total += attentionStages[stage - 2].reduce(0) { $0 + $1.flops(grid: grid) }
            }
        }
        return total + 2 * Double(head.inFeatures * head.outFeatures)
    }
}

extension UniFormer: VideoModel {
    /// UniFormer (official video model), weights under the official names.
    public static let architecture = "uniformer"

    public static func problem(in config: UniFormerConfig) -> String? { config.problem }

    /// The official Kinetics test recipe (slowfast's defaults): 16 frames every 4th, short side 256, crop
    /// 224, 0-1 pixels, mean 0.45, std 0.225.
    public static func referencePreprocessing(for config: UniFormerConfig) -> Preprocessing {
        Preprocessing(frames: 16, frameStride: 4, resizeShortSide: 256, cropSize: 224, pixelScale: 1.0 / 255,
                      mean: [0.45, 0.45, 0.45], std: [0.225, 0.225, 0.225])
    }

    public var numClasses: Int { config.numClasses }
    public func logits(_ clip: Tensor) -> Tensor { self(clip) }

    /// Units of two frames. The first patch embedding (kernel 3, stride 2, padding 1 in time) reads one
    /// frame before its unit: inside a clip the previous frame, at the clip's start zero padding.
    public var tubeletEmbedding: TubeletEmbedding? {
        let model = self
        return TubeletEmbedding(
            unitFrames: UniFormer.tubeletFrames, contextFrames: UniFormer.contextFrames,
            embed: { frames, context in model.embedPatches(frames, contextFrames: context) },
            embedFlops: { tokens in model.embedFlops(tokens: tokens.count / tokens.shape.last!) },
            forward: { tokens in model.forward(tokens: tokens) },
            networkFlops: { frames, height, width in
                let tokens = model.tokenGrid(frames: frames, height: height, width: width).reduce(1, *)
                return model.flops(frames: frames, height: height, width: width) - model.embedFlops(tokens: tokens)
            })
    }
}

// Building blocks shared by the ViT-style video models (TimeSformer, ViViT): multi-head
// self-attention over independent groups of tokens, and the pre-norm MLP.
import Foundation
import TubeletKernels

/// Multi-head self-attention with a fused qkv projection and an output projection.
/// qkv rows are laid out (3, heads, headDim), as HF TimeSformer's `qkv` and as ViViT's separate
/// `query`/`key`/`value` concatenated at load time.
public struct SelfAttentionWeights: Sendable {
    /// [3·dim, dim]
    public let qkv: LinearWeights
    /// [dim, dim]
    public let output: LinearWeights
    public let heads: Int
    public var dim: Int { output.outFeatures }

    public init(qkv: LinearWeights, output: LinearWeights, heads: Int) {
        precondition(qkv.outFeatures == 3 * qkv.inFeatures && output.inFeatures == qkv.inFeatures,
                     "qkv must be [3·dim, dim] and output [dim, dim]")
        precondition(qkv.inFeatures % heads == 0, "dim \(qkv.inFeatures) not divisible by \(heads) heads")
        self.qkv = qkv
        self.output = output
        self.heads = heads
    }

    /// x: [groups·n, dim] already normalised, each run of n rows one independent sequence →
    /// out: [groups·n, dim] = output(softmax(q·kᵀ/√headDim)·v). `scratch` must hold
    /// groups·n·4·dim floats (qkv, then the heads' concatenated outputs).
    public func callAsFunction(_ x: UnsafePointer<Float>, groups: Int, tokens n: Int,
                               into out: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let rows = groups * n, c = dim
        let qkvBuffer = scratch, attended = scratch + rows * 3 * c
        qkv(x, rows: rows, into: qkvBuffer)
        attention(qkv: qkvBuffer, groups: groups, tokens: n, into: attended)
        output(attended, rows: rows, into: out)
    }

    /// For every (group, head): softmax(q·kᵀ·scale)·v, heads concatenated.
    /// qkv: [groups·n, 3·dim] → out: [groups·n, dim].
    public func attention(qkv: UnsafePointer<Float>, groups: Int, tokens n: Int, into out: UnsafeMutablePointer<Float>) {
        let c = dim, headDim = c / heads
        let scale = 1 / Float(headDim).squareRoot()
        Parallel.forRanges(groups * heads) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
            let rowSums = UnsafeMutablePointer<Float>.allocate(capacity: n)
            defer { scores.deallocate(); rowSums.deallocate() }
            for pair in range {
                let group = pair / heads, head = pair % heads
                let q = qkv + group * n * 3 * c + head * headDim
                sgemm(transposeA: false, transposeB: true, m: n, n: n, k: headDim, alpha: scale,
                      a: q, lda: 3 * c, b: q + c, ldb: 3 * c, beta: 0, c: scores, ldc: n)
                for i in 0..<n { rowSums[i] = exponentiateRow(scores + i * n, count: n) }
                let output = out + group * n * c + head * headDim
                sgemm(transposeA: false, transposeB: false, m: n, n: headDim, k: n,
                      a: scores, lda: n, b: q + 2 * c, ldb: 3 * c, c: output, ldc: c)
                for i in 0..<n {
                    let row = output + i * c, inverse = 1 / rowSums[i]
                    for d in 0..<headDim { row[d] *= inverse }
                }
            }
        }
    }

    /// 2·multiply-adds of the projections and both attention products for `groups` sequences of n.
    public func flops(groups: Int, tokens n: Int) -> Double {
        let rows = Double(groups * n), c = Double(dim)
        return 2 * rows * c * 4 * c + 2 * 2 * Double(groups) * Double(n * n) * c
    }
}

/// The GELU a checkpoint's `hidden_act` names.
public enum GELUVariant: String, Codable, Sendable {
    /// `gelu`: 0.5·x·(1 + erf(x/√2)).
    case exact
    /// `gelu_fast`, `gelu_new`, `gelu_pytorch_tanh`: the tanh approximation.
    case tanh

    public func apply(_ x: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .exact: geluExact(x, count: count)
        case .tanh: geluTanh(x, count: count)
        }
    }
}

/// fc1 → GELU → fc2, added into the residual.
public struct MLPWeights: Sendable {
    public let fc1: LinearWeights
    public let fc2: LinearWeights
    public let gelu: GELUVariant

    public init(fc1: LinearWeights, fc2: LinearWeights, gelu: GELUVariant) {
        self.fc1 = fc1
        self.fc2 = fc2
        self.gelu = gelu
    }

    /// x: [rows, dim] normalised; residual[rows, dim] += fc2(gelu(fc1(x))). hidden: rows·fc1.out floats.
    public func addInto(_ residual: UnsafeMutablePointer<Float>, from x: UnsafePointer<Float>, rows: Int,
                        hidden: UnsafeMutablePointer<Float>) {
        fc1(x, rows: rows, into: hidden)
        gelu.apply(hidden, count: rows * fc1.outFeatures)
        fc2(hidden, rows: rows, into: residual, accumulate: true)
    }

    public func flops(rows: Int) -> Double { 2 * Double(rows) * Double(fc1.inFeatures * fc1.outFeatures) * 2 }
}

/// One pre-norm ViT layer on one sequence x: [rows, D], in place:
/// `x += attention(layernormBefore(x)); x += mlp(layernormAfter(x))` (ViViT Model 1, VideoMAE).
func preNormLayer(_ x: Tensor, _ layernormBefore: LayerNormWeights, _ attention: SelfAttentionWeights,
                  _ layernormAfter: LayerNormWeights, _ mlp: MLPWeights, scratch: ViTScratch) {
    let rows = x.shape[0]
    layernormBefore(x.data, rows: rows, into: scratch.normed.data)
    attention(scratch.normed.data, groups: 1, tokens: rows, into: scratch.attended.data, scratch: scratch.attention.data)
    let out = scratch.attended.data
    for i in 0..<(rows * attention.dim) { x.data[i] += out[i] }
    layernormAfter(x.data, rows: rows, into: scratch.normed.data)
    mlp.addInto(x.data, from: scratch.normed.data, rows: rows, hidden: scratch.hidden.data)
}

/// PyTorch `F.interpolate(mode="nearest")` source index along one axis given by output size:
/// identity, `i >> 1` for exact doubling, else min(⌊i·(in/out)⌋, in-1) with a float32 scale.
public func nearestSourceIndex(_ i: Int, input: Int, output: Int) -> Int {
    if input == output { return i }
    if output == 2 * input { return i >> 1 }
    let scale = Float(input) / Float(output)
    return min(Int((Float(i) * scale).rounded(.down)), input - 1)
}

/// Why a model whose position embeddings fix the clip's size (ViViT Models 1-4, VideoMAE; like
/// transformers without interpolate_pos_encoding, and scenic) cannot run a clip [C, T, H, W], or nil.
func fixedClipInputProblem(_ family: String, channels: Int, frames: Int, height: Int, width: Int,
                           expected: (channels: Int, frames: Int, imageSize: Int)) -> String? {
    if channels != expected.channels { return "expected \(expected.channels) channels, got \(channels)" }
    if height != expected.imageSize || width != expected.imageSize {
        return "\(family) expects \(expected.imageSize)x\(expected.imageSize) frames, got \(height)x\(width)"
    }
    if frames != expected.frames { return "\(family) expects \(expected.frames) frames, got \(frames)" }
    return nil
}

/// A clip (or a whole number of tubelets of it) [C, T, H, W] → tubelet embeddings
/// [T/kt, (H/kh)·(W/kw), d], tokens in (t, h, w) order: the tubelet Conv3d `embed` as one linear map.
func tubeletEmbeddings(_ clip: Tensor, _ embed: LinearWeights, channels: Int, imageSize: Int, tubelet: [Int]) -> Tensor {
    precondition(clip.rank == 4 && clip.shape[0] == channels && clip.shape[2] == imageSize && clip.shape[3] == imageSize,
                 "clip must be [\(channels), T, \(imageSize), \(imageSize)], got \(clip.shape)")
    let patches = gatherPatches(clip, patch: tubelet)
    let out = Tensor(uninitialized: [clip.shape[1] / tubelet[0], (imageSize / tubelet[1]) * (imageSize / tubelet[2]), embed.outFeatures])
    embed(patches.data, rows: patches.shape[0], into: out.data)
    return out
}

/// Gathers non-overlapping patches of a clip [C, T, H, W] into rows ordered (c, kt, kh, kw), the
/// flattening of a Conv3d (or, with pt = 1, a per-frame Conv2d) weight. Row order: (t, h, w) of
/// the patch grid. Spatial and temporal sizes must be multiples of the patch (no padding).
public func gatherPatches(_ clip: Tensor, patch: [Int]) -> Tensor {
    precondition(clip.rank == 4, "clip must be [C, T, H, W], got \(clip.shape)")
    let (channels, frames, height, width) = (clip.shape[0], clip.shape[1], clip.shape[2], clip.shape[3])
    let (pt, ph, pw) = (patch[0], patch[1], patch[2])
    precondition(frames % pt == 0 && height % ph == 0 && width % pw == 0,
                 "clip \(clip.shape) is not a whole number of \(patch) patches")
    let grid = [frames / pt, height / ph, width / pw]
    let tokens = grid.reduce(1, *), volume = channels * pt * ph * pw
    let patches = Tensor(uninitialized: [tokens, volume])
    Parallel.forRanges(tokens, minimum: 64) { range in
        for token in range {
            let (gt, gh, gw) = (token / (grid[1] * grid[2]), (token / grid[2]) % grid[1], token % grid[2])
            var out = patches.data + token * volume
            for c in 0..<channels { for kt in 0..<pt { for kh in 0..<ph {
                let source = clip.data + ((c * frames + gt * pt + kt) * height + gh * ph + kh) * width + gw * pw
                out.update(from: source, count: pw)
                out += pw
            }}}
        }
    }
    return patches
}

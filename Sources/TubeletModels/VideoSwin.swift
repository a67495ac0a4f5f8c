// Video Swin Transformer (Liu et al., "Video Swin Transformer", CVPR 2022).
// Ports torchvision 0.29 `torchvision/models/video/swin_transformer.py` (SwinTransformer3d,
// swin3d_t/s/b), which computes the same function as the official
// SwinTransformer/Video-Swin-Transformer `mmaction/models/backbones/swin_transformer.py`.
// Weight names are torchvision's; the importer maps the official names onto them.
import Foundation
import TubeletKernels

public struct VideoSwinConfig: Codable, Sendable, Equatable {
    /// Tubelet size (t, h, w) of the Conv3d patch embedding, kernel = stride.
    public var patchSize: [Int]
    public var inChannels: Int
    public var embedDim: Int
    public var depths: [Int]
    public var numHeads: [Int]
    /// Attention window (t, h, w) in tokens.
    public var windowSize: [Int]
    /// Hidden width of each block's MLP as a multiple of its channels (4 in every published model).
    public var mlpRatio: Int
    /// Whether the patch embedding is followed by a LayerNorm (`patch_embed.norm.*`).
    public var patchNorm: Bool
    public var numClasses: Int
    public var layerNormEps: Float
    /// Streaming-native variant (docs/streaming-native-swin.md): temporal windows anchored to
    /// absolute time, causal in time, so cached key/value tiles make streaming exact.
    public var streaming: Bool

    public init(patchSize: [Int] = [2, 4, 4], inChannels: Int = 3, embedDim: Int, depths: [Int], numHeads: [Int],
                windowSize: [Int] = [8, 7, 7], mlpRatio: Int = 4, patchNorm: Bool = true, numClasses: Int,
                layerNormEps: Float = 1e-5, streaming: Bool = false) {
        self.patchSize = patchSize
        self.inChannels = inChannels
        self.embedDim = embedDim
        self.depths = depths
        self.numHeads = numHeads
        self.windowSize = windowSize
        self.mlpRatio = mlpRatio
        self.patchNorm = patchNorm
        self.numClasses = numClasses
        self.layerNormEps = layerNormEps
        self.streaming = streaming
    }

    enum CodingKeys: String, CodingKey {
        case patchSize, inChannels, embedDim, depths, numHeads, windowSize, mlpRatio, patchNorm, numClasses, layerNormEps, streaming
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(patchSize: try c.decode([Int].self, forKey: .patchSize), inChannels: try c.decode(Int.self, forKey: .inChannels),
                  embedDim: try c.decode(Int.self, forKey: .embedDim), depths: try c.decode([Int].self, forKey: .depths),
                  numHeads: try c.decode([Int].self, forKey: .numHeads), windowSize: try c.decode([Int].self, forKey: .windowSize),
                  mlpRatio: try c.decode(Int.self, forKey: .mlpRatio), patchNorm: try c.decode(Bool.self, forKey: .patchNorm),
                  numClasses: try c.decode(Int.self, forKey: .numClasses), layerNormEps: try c.decode(Float.self, forKey: .layerNormEps),
                  streaming: try c.decodeIfPresent(Bool.self, forKey: .streaming) ?? false)
    }

    /// torchvision `swin3d_t` (embed 96, depths 2-2-6-2, heads 3-6-12-24).
    public static func swin3dT(numClasses: Int = 400) -> VideoSwinConfig {
        VideoSwinConfig(embedDim: 96, depths: [2, 2, 6, 2], numHeads: [3, 6, 12, 24], numClasses: numClasses)
    }
    public static func swin3dS(numClasses: Int = 400) -> VideoSwinConfig {
        VideoSwinConfig(embedDim: 96, depths: [2, 2, 18, 2], numHeads: [3, 6, 12, 24], numClasses: numClasses)
    }
    public static func swin3dB(numClasses: Int = 400) -> VideoSwinConfig {
        VideoSwinConfig(embedDim: 128, depths: [2, 2, 18, 2], numHeads: [4, 8, 16, 32], numClasses: numClasses)
    }

    /// Channels of stage `stage`: embedDim doubled by each patch merging.
    public func channels(stage: Int) -> Int { embedDim << stage }

    /// Every weight the model reads, with its shape, in torchvision's names.
    public func parameterShapes() -> [(name: String, shape: [Int])] {
        var shapes: [(String, [Int])] = []
        shapes.append(("patch_embed.proj.weight", [embedDim, inChannels] + patchSize))
        shapes.append(("patch_embed.proj.bias", [embedDim]))
        if patchNorm {
            shapes.append(("patch_embed.norm.weight", [embedDim]))
            shapes.append(("patch_embed.norm.bias", [embedDim]))
        }
        let tableSize = (2 * windowSize[0] - 1) * (2 * windowSize[1] - 1) * (2 * windowSize[2] - 1)
        for stage in 0..<depths.count {
            let c = channels(stage: stage)
            for block in 0..<depths[stage] {
                let p = "features.\(2 * stage).\(block)."
                shapes += [
                    (p + "norm1.weight", [c]), (p + "norm1.bias", [c]),
                    (p + "attn.qkv.weight", [3 * c, c]), (p + "attn.qkv.bias", [3 * c]),
                    (p + "attn.proj.weight", [c, c]), (p + "attn.proj.bias", [c]),
                    (p + "attn.relative_position_bias_table", [tableSize, numHeads[stage]]),
                    (p + "norm2.weight", [c]), (p + "norm2.bias", [c]),
                    (p + "mlp.0.weight", [mlpRatio * c, c]), (p + "mlp.0.bias", [mlpRatio * c]),
                    (p + "mlp.3.weight", [c, mlpRatio * c]), (p + "mlp.3.bias", [c]),
                ]
            }
            if stage < depths.count - 1 {
                let p = "features.\(2 * stage + 1)."
                shapes += [(p + "norm.weight", [4 * c]), (p + "norm.bias", [4 * c]),
                           (p + "reduction.weight", [2 * c, 4 * c])]
            }
        }
        let last = channels(stage: depths.count - 1)
        shapes += [("norm.weight", [last]), ("norm.bias", [last]),
                   ("head.weight", [numClasses, last]), ("head.bias", [numClasses])]
        return shapes
    }
}

/// Supplies a named weight of the given shape; throws if missing or of another shape.
public typealias WeightProvider = (_ name: String, _ shape: [Int]) throws -> Tensor

public struct LayerNormWeights: Sendable {
    public let weight: Tensor, bias: Tensor, eps: Float
    public init(_ weights: WeightProvider, _ prefix: String, dim: Int, eps: Float) throws {
        weight = try weights(prefix + "weight", [dim])
        bias = try weights(prefix + "bias", [dim])
        self.eps = eps
    }

    /// x, y: [rows, dim] (may alias).
    public func callAsFunction(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        layerNorm(x, rows: rows, dim: weight.count, weight: weight.data, bias: bias.data, eps: eps, into: y)
    }
}

public struct LinearWeights: Sendable {
    /// [outFeatures, inFeatures], PyTorch layout.
    public let weight: Tensor
    public let bias: Tensor?
    /// Wᵀ packed once for our GEMM; nil with `TUBELET_GEMM=blas`.
    public let packed: PackedMatrix?
    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    public init(_ weights: WeightProvider, _ prefix: String, in inFeatures: Int, out outFeatures: Int, bias hasBias: Bool = true) throws {
        self.init(weight: try weights(prefix + "weight", [outFeatures, inFeatures]),
                  bias: hasBias ? try weights(prefix + "bias", [outFeatures]) : nil)
    }

    public init(weight: Tensor, bias: Tensor?) {
        precondition(weight.rank == 2, "a linear weight is [out, in], got \(weight.shape)")
        self.weight = weight
        self.bias = bias
        packed = GEMMBackend.packed
            ? PackedMatrix(linearWeight: weight.data, outFeatures: weight.shape[0], inFeatures: weight.shape[1]) : nil
    }

    /// y[rows, out] (+)= x[rows, in] · Wᵀ + b.
    public func callAsFunction(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        if let packed {
            linearPacked(x, rows: rows, weight: packed, bias: bias?.data, into: y, accumulate: accumulate)
        } else {
            linear(x, rows: rows, inFeatures: inFeatures, weight: weight.data, bias: bias?.data,
                   outFeatures: outFeatures, into: y, accumulate: accumulate)
        }
    }

    /// y[rows, out] = x[rows, in] · Wᵀ (+ b), on the calling thread (inside a worker).
    @inline(__always)
    func rows(_ x: UnsafePointer<Float>, count: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool = false,
              withBias: Bool = true, gelu: Bool = false) {
        let biasData = withBias ? bias?.data : nil
        if let packed {
            gemmPacked(m: count, n: outFeatures, k: inFeatures, a: x, lda: inFeatures, b: packed.data,
                       c: y, ldc: outFeatures, accumulate: accumulate, bias: biasData, gelu: gelu)
            return
        }
        precondition(!gelu || biasData != nil, "the cblas path fuses GELU with a bias only")
        linearRows(x, rows: count, inFeatures: inFeatures, weight: weight.data, bias: gelu ? nil : biasData,
                   outFeatures: outFeatures, into: y, accumulate: accumulate)
        if gelu, let biasData { addBiasGeluExact(y, rows: count, width: outFeatures, bias: biasData) }
    }
}

/// One Swin block: `x += attn(norm1(x)); x += mlp(norm2(x))`.
/// Keys: `features.{2s}.{j}.{norm1, attn.qkv, attn.proj, attn.relative_position_bias_table, norm2, mlp.0, mlp.3}`.
public struct SwinBlock: Sendable {
    public let norm1: LayerNormWeights
    public let qkv: LinearWeights
    public let proj: LinearWeights
    /// [(2Wt-1)(2Wh-1)(2Ww-1), heads]
    public let relativePositionBiasTable: Tensor
    public let norm2: LayerNormWeights
    public let fc1: LinearWeights
    public let fc2: LinearWeights
    public let heads: Int
    public let channels: Int
    /// The configured window (t, h, w), before clamping to the input.
    public let windowSize: [Int]
    /// Whether this block shifts its windows by window/2 (odd blocks of a stage).
    public let shifted: Bool
    /// The position bias laid out for the attention, gathered on first use: [heads, N, N] tiles by
    /// window size N for the paths that read whole tiles (cblas, clamped windows, ApproximateSwin),
    /// and `biasStrips` for full windows on our GEMM. Streaming models use neither.
    let biasLayouts = BiasLayouts()

    init(_ weights: WeightProvider, _ prefix: String, channels c: Int, heads: Int, config: VideoSwinConfig, shifted: Bool) throws {
        let eps = config.layerNormEps
        norm1 = try LayerNormWeights(weights, prefix + "norm1.", dim: c, eps: eps)
        qkv = try LinearWeights(weights, prefix + "attn.qkv.", in: c, out: 3 * c)
        proj = try LinearWeights(weights, prefix + "attn.proj.", in: c, out: c)
        let w = config.windowSize
        relativePositionBiasTable = try weights(prefix + "attn.relative_position_bias_table",
                                                [(2 * w[0] - 1) * (2 * w[1] - 1) * (2 * w[2] - 1), heads])
        norm2 = try LayerNormWeights(weights, prefix + "norm2.", dim: c, eps: eps)
        fc1 = try LinearWeights(weights, prefix + "mlp.0.", in: c, out: config.mlpRatio * c)
        fc2 = try LinearWeights(weights, prefix + "mlp.3.", in: config.mlpRatio * c, out: c)
        self.heads = heads
        self.channels = c
        self.windowSize = w
        self.shifted = shifted
        precondition(c % heads == 0, "channels \(c) not divisible by heads \(heads)")
    }

    /// [heads, Wh·Ww, (2Wt-1)·Wh·Ww]: for each head and spatial query position (hi, wi), the bias
    /// against every key (tj - ti, hj, wj) with tj - ti from -(Wt-1) to Wt-1. The bias row of query
    /// (ti, hi, wi) is the N floats from (Wt-1-ti)·Wh·Ww on: the GEMM reads them in place
    /// (`addendRows`) instead of a row built per window (1.8% of a clip) or an [N, N] tile per head
    /// (614 KB, beyond L2). 144 KB per head for 8x7x7 windows.
    var biasStrips: Tensor {
        biasLayouts.strips { SwinBlock.gatherBiasStrips(table: relativePositionBiasTable, window: windowSize, heads: heads) }
    }

    /// Where query `row`'s bias row for `head` starts in `biasStrips` (at `strips`).
    @inline(__always)
    func biasStripRow(_ strips: UnsafePointer<Float>, head: Int, row: Int) -> UnsafePointer<Float> {
        let plane = windowSize[1] * windowSize[2], length = (2 * windowSize[0] - 1) * plane
        let (t, query) = (row / plane, row % plane)
        return strips + (head * plane + query) * length + (windowSize[0] - 1 - t) * plane
    }

    static func gatherBiasStrips(table: Tensor, window: [Int], heads: Int) -> Tensor {
        let (wt, wh, ww) = (window[0], window[1], window[2])
        let plane = wh * ww, length = (2 * wt - 1) * plane
        let strips = Tensor(uninitialized: [heads, plane, length])
        for h in 0..<heads {
            for query in 0..<plane {
                let (hi, wi) = (query / ww, query % ww)
                let strip = strips.data + (h * plane + query) * length
                for offset in 0..<(2 * wt - 1) {  // offset = tj - ti + wt - 1
                    for key in 0..<plane {
                        let (hj, wj) = (key / ww, key % ww)
                        let index = (2 * (wt - 1) - offset) * (2 * wh - 1) * (2 * ww - 1) + (hi - hj + wh - 1) * (2 * ww - 1) + (wi - wj + ww - 1)
                        strip[offset * plane + key] = table.data[index * heads + h]
                    }
                }
            }
        }
        return strips
    }

    /// Relative position bias [heads, N, N] for a window of N tokens. As both references do for a
    /// clamped window, this is `index[:N, :N]` of the *full* window's index: token i of a clamped
    /// window is looked up as token i of the full window.
    func relativePositionBias(tokens n: Int) -> Tensor {
        biasLayouts.tile(tokens: n) {
            SwinBlock.gatherBias(table: relativePositionBiasTable, window: windowSize, heads: heads, tokens: n)
        }
    }

    /// Whether the attention of an N-token window reads its bias rows from `biasStrips` (a full
    /// window on our GEMM) instead of a `relativePositionBias` tile.
    func biasRowsFromStrips(tokens n: Int) -> Bool {
        GEMMBackend.packed && SwinBlock.biasFromStrips && n == windowSize.reduce(1, *)
    }

    /// The tile `windowAttention` and `attendWindowHead` read, nil where they read the strips.
    func biasTileIfRead(tokens n: Int) -> Tensor? {
        biasRowsFromStrips(tokens: n) ? nil : relativePositionBias(tokens: n)
    }

    static func gatherBias(table: Tensor, window: [Int], heads: Int, tokens n: Int) -> Tensor {
        let (wt, wh, ww) = (window[0], window[1], window[2])
        let bias = Tensor(uninitialized: [heads, n, n])
        for i in 0..<n {
            let (ti, hi, wi) = (i / (wh * ww), (i / ww) % wh, i % ww)
            for j in 0..<n {
                let (tj, hj, wj) = (j / (wh * ww), (j / ww) % wh, j % ww)
                let index = (ti - tj + wt - 1) * (2 * wh - 1) * (2 * ww - 1) + (hi - hj + wh - 1) * (2 * ww - 1) + (wi - wj + ww - 1)
                for h in 0..<heads { bias.data[(h * n + i) * n + j] = table.data[index * heads + h] }
            }
        }
        return bias
    }

    /// x: `clips` clips of [T, H, W, C] tokens (`grid` is one clip's), updated in place. Linear
    /// layers run over every clip's tokens at once; windows are cut per clip.
    func callAsFunction(_ x: Tensor, grid: [Int], clips: Int = 1, layout: WindowLayout, scratch: BlockScratch) {
        let perClip = grid.reduce(1, *), tokens = clips * perClip
        let c = channels
        precondition(x.count == tokens * c)
        let partition = layout.partition
        let windowedPerClip = partition.windowCount * partition.tokensPerWindow
        let windowed = clips * windowedPerClip

        if GEMMBackend.packed && SwinBlock.attendPerWindow(windows: clips * partition.windowCount) {
            attentionBranchPerWindow(x, perClip: perClip, clips: clips, layout: layout)
            mlpResidual(x.data, rows: tokens)
            return
        }
        // Attention branch: norm1 fused with pad + roll + partition, qkv, windowed attention, proj,
        // reverse + proj bias + residual in one pass.
        for clip in 0..<clips {
            partition.partitionLayerNorm(x.data + clip * perClip * c, channels: c, weight: norm1.weight.data,
                                         bias: norm1.bias.data, eps: norm1.eps,
                                         into: scratch.windows.data + clip * windowedPerClip * c)
        }
        qkv(scratch.windows.data, rows: windowed, into: scratch.qkv.data)
        let bias = biasTileIfRead(tokens: partition.tokensPerWindow)
        windowAttention(qkv: scratch.qkv.data, partition: partition, clips: clips, bias: bias?.data,
                        mask: layout.mask, into: scratch.attention.data)
        projectWithoutBias(scratch.attention.data, rows: windowed, into: scratch.windows.data)
        for clip in 0..<clips {
            partition.reverseAdd(scratch.windows.data + clip * windowedPerClip * c, channels: c, bias: proj.bias?.data,
                                 into: x.data + clip * perClip * c)
        }
        mlpResidual(x.data, rows: tokens)
    }

    /// attention[rows, C] · projᵀ, its bias left to `reverseAdd`.
    func projectWithoutBias(_ attention: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        Parallel.claimRowBlocks(rows) { next in
            while let block = next() {
                proj.rows(attention + block.lowerBound * channels, count: block.count,
                          into: y + block.lowerBound * channels, withBias: false)
            }
        }
    }

    /// x[rows, C] += fc2(GELU(fc1(norm2(x)))), the MLP branch and its residual, in row blocks that
    /// the workers claim one by one (`Parallel.claimRowBlocks`): norm2 into a small buffer, fc1 with its
    /// bias and GELU in the GEMM's epilogue, fc2 with its bias accumulated into x; the hidden
    /// activations never make a round trip through memory. Rows are independent, so the result
    /// does not depend on which worker ran which block.
    func mlpResidual(_ x: UnsafeMutablePointer<Float>, rows: Int) {
        let c = channels, width = fc1.outFeatures
        let blockRows = Parallel.rowBlock(rows: rows)
        Parallel.claimRowBlocks(rows) { next in
            let normed = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * c)
            let hidden = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * width)
            defer { normed.deallocate(); hidden.deallocate() }
            while let block = next() {
                let count = block.count
                let rowsOfX = x + block.lowerBound * c
                for r in 0..<count {
                    layerNormRow(rowsOfX + r * c, dim: c, weight: norm2.weight.data, bias: norm2.bias.data,
                                 eps: norm2.eps, into: normed + r * c)
                }
                fc1.rows(normed, count: count, into: hidden, gelu: true)
                fc2.rows(hidden, count: count, into: rowsOfX, accumulate: true)
            }
        }
    }

    /// Score rows per block of the attention: 48 x 392 scores (75 KB) stay in L2 from the q·kᵀ
    /// product through the softmax to the product with v (a whole 392 x 392 tile is 614 KB).
    static let attentionBlockRows = 48

    /// For tests: false reads every bias row from the [N, N] tile instead of the strips.
    nonisolated(unsafe) public static var biasFromStrips = true

    /// For tests: always (true) or never (false) run the attention branch window by window; nil
    /// decides by the window count.
    nonisolated(unsafe) public static var forcePerWindowAttention: Bool?

    /// Whether to run the attention branch window by window (`attentionBranchPerWindow`): when the
    /// windows share out evenly enough between the workers.
    static func attendPerWindow(windows: Int) -> Bool {
        if let forced = forcePerWindowAttention { return forced }
        let threads = Parallel.threadCount
        return windows >= 2 * threads && (windows % threads == 0 || windows >= 4 * threads)
    }

    /// The attention branch one window at a time, workers claiming whole windows: norm1 of the
    /// window's tokens, its qkv, attention of every head, proj, and the reverse + proj bias +
    /// residual into x. A window's rows (392 x 3C for qkv) stay in L2 from one step to the next
    /// instead of making round trips through memory-sized buffers; windows own disjoint tokens, so
    /// workers never write the same row. Equal, bit for bit, to the layer-by-layer path (every
    /// product is row-independent).
    func attentionBranchPerWindow(_ x: Tensor, perClip: Int, clips: Int, layout: WindowLayout) {
        let partition = layout.partition
        let n = partition.tokensPerWindow, c = channels, headDim = c / heads
        let bias = biasTileIfRead(tokens: n)
        let strips = bias == nil ? UnsafePointer(biasStrips.data) : nil
        Parallel.claimItems(clips * partition.windowCount) { next in
            let normed = UnsafeMutablePointer<Float>.allocate(capacity: n * c)
            let qkvRows = UnsafeMutablePointer<Float>.allocate(capacity: n * 3 * c)
            let attended = UnsafeMutablePointer<Float>.allocate(capacity: n * c)
            defer { normed.deallocate(); qkvRows.deallocate(); attended.deallocate() }
            let scratch = AttentionScratch(tokens: n, headDim: headDim)
            while let item = next() {
                let clip = item / partition.windowCount, window = item % partition.windowCount
                let positions = window * n..<(window + 1) * n
                let xClip = x.data + clip * perClip * c
                partition.partitionLayerNorm(xClip, positions: positions, channels: c, weight: norm1.weight.data,
                                             bias: norm1.bias.data, eps: norm1.eps, into: normed)
                qkv.rows(normed, count: n, into: qkvRows)
                for head in 0..<heads {
                    attendWindowHead(qkv: qkvRows, head: head, window: window, mask: layout.mask, bias: bias?.data, strips: strips,
                                     scratch: scratch, into: attended + head * headDim)
                }
                proj.rows(attended, count: n, into: normed, withBias: false)
                partition.reverseAdd(normed, positions: positions, channels: c, bias: proj.bias?.data, into: xClip)
            }
        }
    }

    /// Per-worker buffers of `attendWindowHead`.
    final class AttentionScratch {
        let keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>
        let scores: UnsafeMutablePointer<Float>, inverseSums: UnsafeMutablePointer<Float>
        /// Where each query row's bias starts, for one block of rows.
        let biasRows: UnsafeMutablePointer<UnsafePointer<Float>?>
        let tokens: Int
        init(tokens n: Int, headDim: Int) {
            tokens = n
            keys = .allocate(capacity: PackedMatrix.floats(k: headDim, n: n))
            values = .allocate(capacity: PackedMatrix.floats(k: n, n: headDim))
            scores = .allocate(capacity: min(SwinBlock.attentionBlockRows, n) * n)
            inverseSums = .allocate(capacity: min(SwinBlock.attentionBlockRows, n))
            biasRows = .allocate(capacity: min(SwinBlock.attentionBlockRows, n))
        }
        deinit { keys.deallocate(); values.deallocate(); scores.deallocate(); inverseSums.deallocate(); biasRows.deallocate() }
    }

    /// softmax(q·kᵀ·scale + bias + mask)·v for one window and head. qkv: the window's [N, 3C] rows,
    /// each laid out (3, heads, headDim); output: this head's columns of the window's [N, C] rows.
    ///
    /// Keys and values are packed once; then per block of query rows the scores come out of the
    /// GEMM with scale and bias applied, are exponentiated in place, and multiply v with the
    /// softmax's division folded into the GEMM's row scale. The bias comes from exactly one of
    /// `bias` (the [heads, N, N] tile) and `strips` (`biasStrips`).
    @inline(__always)
    func attendWindowHead(qkv: UnsafePointer<Float>, head: Int, window: Int, mask: ShiftMask?, bias: UnsafePointer<Float>?,
                          strips: UnsafePointer<Float>?,
                          scratch: AttentionScratch, into output: UnsafeMutablePointer<Float>) {
        precondition((bias == nil) != (strips == nil), "one bias source")
        let c = channels, headDim = c / heads, n = scratch.tokens
        let scale = 1 / Float(headDim).squareRoot()
        let blockRows = min(SwinBlock.attentionBlockRows, n)
        let q = qkv + head * headDim
        SwinBlock.packKeysValues(qkv: qkv, head: head, channels: c, headDim: headDim, tokens: n,
                                 keys: scratch.keys, values: scratch.values)
        var first = 0
        while first < n {
            let rows = min(blockRows, n - first)
            // The bias rows of a full window point into the head's strips (144 KB) rather than its
            // [N, N] tile (614 KB): same values, bit for bit.
            if let strips {
                for r in 0..<rows { scratch.biasRows[r] = biasStripRow(strips, head: head, row: first + r) }
            }
            gemmPacked(m: rows, n: n, k: headDim, a: q + first * 3 * c, lda: 3 * c, b: scratch.keys,
                       c: scratch.scores, ldc: n, alpha: scale, addend: bias.map { $0 + (head * n + first) * n },
                       addendStride: n, addendRows: strips == nil ? nil : UnsafePointer(scratch.biasRows))
            if let mask {
                for r in 0..<rows { mask.applyRow(window: window, row: first + r, to: scratch.scores + r * n) }
            }
            for r in 0..<rows { scratch.inverseSums[r] = 1 / exponentiateRow(scratch.scores + r * n, count: n) }
            gemmPacked(m: rows, n: headDim, k: n, a: scratch.scores, lda: n, b: scratch.values,
                       c: output + first * c, ldc: c, rowScale: scratch.inverseSums)
            first += rows
        }
    }

    /// Packs one head's keys, as B = kᵀ [headDim, N], and values, as B = v [N, headDim], from a
    /// window's qkv rows [N, 3C] (each laid out (3, heads, headDim)) for `gemmPacked`.
    static func packKeysValues(qkv: UnsafePointer<Float>, head: Int, channels c: Int, headDim: Int, tokens n: Int,
                               keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>) {
        let q = qkv + head * headDim
        packB(q + c, strideK: 1, strideN: 3 * c, k: headDim, n: n, into: keys)
        packB(q + 2 * c, strideK: 3 * c, strideN: 1, k: n, n: headDim, into: values)
    }

    /// For every (window, head): softmax(q·kᵀ·scale + bias + mask)·v, heads concatenated.
    /// qkv: [windows·N, 3C] with each row laid out (3, heads, headDim); out: [windows·N, C].
    /// `bias`: the [heads, N, N] tile, nil where rows are read from the strips (`biasTileIfRead`).
    func windowAttention(qkv: UnsafePointer<Float>, partition: WindowPartition, clips: Int = 1, bias: UnsafePointer<Float>?,
                         mask: ShiftMask?, into out: UnsafeMutablePointer<Float>) {
        guard GEMMBackend.packed else {
            windowAttentionBLAS(qkv: qkv, partition: partition, clips: clips, bias: bias!, mask: mask, into: out)
            return
        }
        let n = partition.tokensPerWindow
        let c = channels, headDim = c / heads
        let strips = bias == nil ? UnsafePointer(biasStrips.data) : nil
        Parallel.forRanges(clips * partition.windowCount * heads) { range in
            let scratch = AttentionScratch(tokens: n, headDim: headDim)
            for pair in range {
                let window = pair / heads, head = pair % heads
                attendWindowHead(qkv: qkv + window * n * 3 * c, head: head, window: window % partition.windowCount, mask: mask,
                                 bias: bias, strips: strips, scratch: scratch, into: out + window * n * c + head * headDim)
            }
        }
    }

    /// `windowAttention` through cblas (`TUBELET_GEMM=blas`). Each N×N score tile starts as bias
    /// (+ mask) and the GEMM accumulates scale·q·kᵀ onto it (beta = 1); the softmax's division is
    /// applied to the N×headDim output rows.
    func windowAttentionBLAS(qkv: UnsafePointer<Float>, partition: WindowPartition, clips: Int, bias: UnsafePointer<Float>,
                             mask: ShiftMask?, into out: UnsafeMutablePointer<Float>) {
        let n = partition.tokensPerWindow
        let c = channels, headDim = c / heads
        let scale = 1 / Float(headDim).squareRoot()
        let pairs = clips * partition.windowCount * heads
        Parallel.forRanges(pairs) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
            let rowSums = UnsafeMutablePointer<Float>.allocate(capacity: n)
            defer { scores.deallocate(); rowSums.deallocate() }
            for pair in range {
                let window = pair / heads, head = pair % heads
                let q = qkv + window * n * 3 * c + head * headDim
                scores.update(from: bias + head * n * n, count: n * n)
                mask?.apply(window: window % partition.windowCount, to: scores)
                sgemm(transposeA: false, transposeB: true, m: n, n: n, k: headDim, alpha: scale,
                      a: q, lda: 3 * c, b: q + c, ldb: 3 * c, beta: 1, c: scores, ldc: n)
                for i in 0..<n { rowSums[i] = exponentiateRow(scores + i * n, count: n) }
                let output = out + window * n * c + head * headDim
                sgemm(transposeA: false, transposeB: false, m: n, n: headDim, k: n,
                      a: scores, lda: n, b: q + 2 * c, ldb: 3 * c, c: output, ldc: c)
                for i in 0..<n {
                    let row = output + i * c, inverse = 1 / rowSums[i]
                    for d in 0..<headDim { row[d] *= inverse }
                }
            }
        }
    }
}

/// Which windowed tokens of a shifted partition may not attend to each other: the references add
/// -100 (not -inf) where two tokens come from different regions of the rolled grid.
struct ShiftMask {
    /// [windows·N] region label of each windowed token.
    let labels: [Int32]
    /// Per window: whether its tokens span more than one region (only those need the mask).
    let mixed: [Bool]
    let tokensPerWindow: Int

    init(labels: [Int32], tokensPerWindow n: Int) {
        self.labels = labels
        self.tokensPerWindow = n
        mixed = (0..<labels.count / n).map { window in
            let first = labels[window * n]
            return labels[window * n..<(window + 1) * n].contains { $0 != first }
        }
    }

    /// scoreRow[j] += -100 where token j of `window` is in another region than token `row`.
    @inline(__always)
    func applyRow(window: Int, row: Int, to scoreRow: UnsafeMutablePointer<Float>) {
        guard mixed[window] else { return }
        let n = tokensPerWindow
        labels.withUnsafeBufferPointer { labels in
            let windowLabels = labels.baseAddress! + window * n, label = windowLabels[row]
            // Branch-free (adding 0 leaves a score as it is): the conditional form compiled to
            // masked stores, which Zen microcodes.
            for j in 0..<n { scoreRow[j] += windowLabels[j] != label ? -100 : 0 }
        }
    }

    /// scores[i, j] += -100 where tokens i and j of `window` are in different regions.
    /// Rows of the N×N tile are `rowStride` apart (N by default).
    @inline(__always)
    func apply(window: Int, to scores: UnsafeMutablePointer<Float>, rowStride: Int? = nil) {
        guard mixed[window] else { return }
        for i in 0..<tokensPerWindow { applyRow(window: window, row: i, to: scores + i * (rowStride ?? tokensPerWindow)) }
    }
}

/// The window geometry blocks of one shift parity use on a given grid: clamped window, partition, shift mask.
struct WindowLayout {
    let partition: WindowPartition
    /// nil when nothing is shifted.
    let mask: ShiftMask?

    /// Both references, per axis on every forward: `if size <= window { window = size; shift = 0 }`.
    static func clamp(grid: [Int], window: [Int], shift: [Int]) -> (window: [Int], shift: [Int]) {
        var window = window, shift = shift
        for axis in 0..<3 where grid[axis] <= window[axis] {
            window[axis] = grid[axis]
            shift[axis] = 0
        }
        return (window, shift)
    }

    init(block: SwinBlock, grid: [Int]) {
        let configured = block.windowSize
        let (window, shift) = WindowLayout.clamp(grid: grid, window: configured,
                                                 shift: block.shifted ? configured.map { $0 / 2 } : [0, 0, 0])
        partition = WindowPartition(grid: grid, window: window, shift: shift)
        mask = shift.contains(where: { $0 > 0 })
            ? ShiftMask(labels: WindowLayout.shiftMaskLabels(partition), tokensPerWindow: partition.tokensPerWindow) : nil
    }

    /// Region labels of the rolled, padded grid, painted exactly as the references do: per axis the
    /// Python slices (0, -w), (-w, -s), (-s, None), nested t, h, w, later regions overwriting earlier ones.
    static func shiftMaskLabels(_ p: WindowPartition) -> [Int32] {
        func pythonRange(_ start: Int?, _ stop: Int?, length: Int) -> Range<Int> {
            func normalise(_ value: Int) -> Int { value < 0 ? max(0, value + length) : min(value, length) }
            let lower = start.map(normalise) ?? 0
            let upper = stop.map(normalise) ?? length
            return lower < upper ? lower..<upper : lower..<lower
        }
        func regions(_ window: Int, _ shift: Int, _ length: Int) -> [Range<Int>] {
            // Python's -0 is 0: with shift 0 the last slice is the whole axis.
            [pythonRange(0, -window, length: length),
             pythonRange(-window, -shift, length: length),
             pythonRange(-shift, nil, length: length)]
        }
        let (pt, ph, pw) = (p.paddedTemporal, p.paddedHeight, p.paddedWidth)
        var grid = [Int32](repeating: 0, count: pt * ph * pw)
        var label: Int32 = 0
        for rt in regions(p.windowSizeTemporal, p.shiftTemporal, pt) {
            for rh in regions(p.windowSizeHeight, p.shiftHeight, ph) {
                for rw in regions(p.windowSizeWidth, p.shiftWidth, pw) {
                    for t in rt { for h in rh { for w in rw { grid[(t * ph + h) * pw + w] = label } } }
                    label += 1
                }
            }
        }
        var labels = [Int32](repeating: 0, count: p.windowCount * p.tokensPerWindow)
        for position in 0..<labels.count {
            let (t, h, w) = p.rolledCoordinates(position)
            labels[position] = grid[(t * ph + h) * pw + w]
        }
        return labels
    }
}

/// A block's relative position bias as the attention reads it, each layout gathered once on first
/// use: [heads, N, N] tiles by window size N, and the strips of full windows (`SwinBlock.biasStrips`).
/// Blocks are shared by every worker and camera, hence the lock.
final class BiasLayouts: @unchecked Sendable {
    private enum Layout: Hashable { case tile(tokens: Int), strips }
    private let lock = NSLock()
    private var gathered: [Layout: Tensor] = [:]

    func tile(tokens n: Int, gather: () -> Tensor) -> Tensor { cached(.tile(tokens: n), gather) }

    func strips(gather: () -> Tensor) -> Tensor { cached(.strips, gather) }

    private func cached(_ layout: Layout, _ gather: () -> Tensor) -> Tensor {
        lock.lock()
        defer { lock.unlock() }
        if let tensor = gathered[layout] { return tensor }
        let tensor = gather()
        gathered[layout] = tensor
        return tensor
    }
}

/// Per-stage working memory, reused by every block of the stage.
/// (The MLP's hidden activations live in per-worker row blocks, see `mlpResidual`.)
final class BlockScratch {
    let windows: Tensor, qkv: Tensor, attention: Tensor
    init(windowedTokens: Int, channels c: Int) {
        windows = Tensor(uninitialized: [windowedTokens, c])
        qkv = Tensor(uninitialized: [windowedTokens, 3 * c])
        attention = Tensor(uninitialized: [windowedTokens, c])
    }
}

/// Spatial 2x2 patch merging: pad H, W to even, concat x[0::2,0::2], x[1::2,0::2], x[0::2,1::2],
/// x[1::2,1::2], LayerNorm(4C), Linear(4C→2C, no bias). Keys: `features.{2s+1}.{norm, reduction}`.
public struct PatchMerging: Sendable {
    public let norm: LayerNormWeights
    public let reduction: LinearWeights

    init(_ weights: WeightProvider, _ prefix: String, channels c: Int, eps: Float) throws {
        norm = try LayerNormWeights(weights, prefix + "norm.", dim: 4 * c, eps: eps)
        reduction = try LinearWeights(weights, prefix + "reduction.", in: 4 * c, out: 2 * c, bias: false)
    }

    /// x: [T, H, W, C] → [T, ceil(H/2), ceil(W/2), 2C]
    func callAsFunction(_ x: Tensor, grid: [Int], channels c: Int) -> (Tensor, [Int]) {
        let (t, h, w) = (grid[0], grid[1], grid[2])
        let (h2, w2) = ((h + 1) / 2, (w + 1) / 2)
        let merged = Tensor(uninitialized: [t * h2 * w2, 4 * c])
        // Order of the four neighbours: (dh, dw) = (0,0), (1,0), (0,1), (1,1).
        let offsets = [(0, 0), (1, 0), (0, 1), (1, 1)]
        Parallel.forRanges(t * h2, minimum: 4) { range in
            for rowIndex in range {
                let (tt, hh) = (rowIndex / h2, rowIndex % h2)
                for ww in 0..<w2 {
                    let out = merged.data + ((tt * h2 + hh) * w2 + ww) * 4 * c
                    for (k, (dh, dw)) in offsets.enumerated() {
                        let (sh, sw) = (2 * hh + dh, 2 * ww + dw)
                        let destination = out + k * c
                        if sh < h && sw < w {
                            destination.update(from: x.data + ((tt * h + sh) * w + sw) * c, count: c)
                        } else {
                            destination.update(repeating: 0, count: c)
                        }
                    }
                }
            }
        }
        let rows = t * h2 * w2
        norm(merged.data, rows: rows, into: merged.data)
        let out = Tensor(uninitialized: [t, h2, w2, 2 * c])
        reduction(merged.data, rows: rows, into: out.data)
        return (out, [t, h2, w2])
    }
}

public struct VideoSwin: Sendable {
    public let config: VideoSwinConfig
    /// Conv3d weight flattened to [embedDim, inChannels·pt·ph·pw] (kernel = stride makes it a linear map).
    public let patchEmbed: LinearWeights
    public let patchNorm: LayerNormWeights?
    public let stages: [[SwinBlock]]
    public let merges: [PatchMerging]
    public let norm: LayerNormWeights
    public let head: LinearWeights

    public init(config: VideoSwinConfig, weights: WeightProvider) throws {
        self.config = config
        let e = config.embedDim, eps = config.layerNormEps
        let patchVolume = config.inChannels * config.patchSize.reduce(1, *)
        let convWeight = try weights("patch_embed.proj.weight", [e, config.inChannels] + config.patchSize)
        patchEmbed = LinearWeights(weight: convWeight.reshaped([e, patchVolume]),
                                   bias: try weights("patch_embed.proj.bias", [e]))
        patchNorm = config.patchNorm ? try LayerNormWeights(weights, "patch_embed.norm.", dim: e, eps: eps) : nil
        var stages: [[SwinBlock]] = []
        var merges: [PatchMerging] = []
        for stage in 0..<config.depths.count {
            let c = config.channels(stage: stage)
            stages.append(try (0..<config.depths[stage]).map { block in
                try SwinBlock(weights, "features.\(2 * stage).\(block).", channels: c, heads: config.numHeads[stage],
                              config: config, shifted: block % 2 == 1)
            })
            if stage < config.depths.count - 1 {
                merges.append(try PatchMerging(weights, "features.\(2 * stage + 1).", channels: c, eps: eps))
            }
        }
        self.stages = stages
        self.merges = merges
        let last = config.channels(stage: config.depths.count - 1)
        norm = try LayerNormWeights(weights, "norm.", dim: last, eps: eps)
        head = try LinearWeights(weights, "head.", in: last, out: config.numClasses)
    }

    /// Token grid after the patch embedding of a [T, H, W] clip: each axis padded up to the patch.
    public func tokenGrid(frames: Int, height: Int, width: Int) -> [Int] {
        let p = config.patchSize
        return [(frames + p[0] - 1) / p[0], (height + p[1] - 1) / p[1], (width + p[2] - 1) / p[2]]
    }

    /// clip: [C, T, H, W], normalised → tokens [T', H', W', embedDim].
    /// Zero-pads T, H, W at the end to multiples of the patch, then Conv3d(kernel = stride = patch).
    public func embedPatches(_ clip: Tensor) -> (Tensor, [Int]) {
        precondition(clip.rank == 4 && clip.shape[0] == config.inChannels,
                     "clip must be [\(config.inChannels), T, H, W], got \(clip.shape)")
        let (channels, frames, height, width) = (clip.shape[0], clip.shape[1], clip.shape[2], clip.shape[3])
        let grid = tokenGrid(frames: frames, height: height, width: width)
        let (pt, ph, pw) = (config.patchSize[0], config.patchSize[1], config.patchSize[2])
        let patchVolume = channels * pt * ph * pw
        let tokens = grid.reduce(1, *)
        // Gather each tubelet into a row ordered (c, kt, kh, kw), the flattening of the Conv3d weight.
        let patches = Tensor(uninitialized: [tokens, patchVolume])
        Parallel.forRanges(tokens, minimum: 64) { range in
            for token in range {
                let (gt, gh, gw) = (token / (grid[1] * grid[2]), (token / grid[2]) % grid[1], token % grid[2])
                var out = patches.data + token * patchVolume
                let firstW = gw * pw, wholeRun = firstW + pw <= width
                for c in 0..<channels { for kt in 0..<pt { for kh in 0..<ph {
                    let (t, h) = (gt * pt + kt, gh * ph + kh)
                    let source = clip.data + ((c * frames + t) * height + h) * width + firstW
                    if t < frames && h < height && wholeRun {
                        for kw in 0..<pw { out[kw] = source[kw] }
                    } else {
                        // Zero padding past the clip's edge.
                        for kw in 0..<pw { out[kw] = (t < frames && h < height && firstW + kw < width) ? source[kw] : 0 }
                    }
                    out += pw
                }}}
            }
        }
        let x = Tensor(uninitialized: grid + [config.embedDim])
        patchEmbed(patches.data, rows: tokens, into: x.data)
        if let patchNorm { patchNorm(x.data, rows: tokens, into: x.data) }
        return (x, grid)
    }

    /// Runs the blocks of one stage in place on x: `clips` clips of [T, H, W, C] (`grid` is one clip's).
    public func runStage(_ stage: Int, _ x: Tensor, grid: [Int], clips: Int = 1) {
        let blocks = stages[stage]
        guard let first = blocks.first else { return }
        // Even and odd blocks share geometry; build each layout once per stage.
        var layouts: [Bool: WindowLayout] = [:]
        for block in blocks where layouts[block.shifted] == nil {
            layouts[block.shifted] = WindowLayout(block: block, grid: grid)
        }
        let windowed = clips * layouts.values.map { $0.partition.windowCount * $0.partition.tokensPerWindow }.max()!
        let scratch = BlockScratch(windowedTokens: windowed, channels: first.channels)
        for block in blocks {
            block(x, grid: grid, clips: clips, layout: layouts[block.shifted]!, scratch: scratch)
        }
    }

    /// clip: [C, T, H, W] → logits [numClasses]. `observe` sees named intermediate activations
    /// (`patch_embed`, `stage0`…, `merge0`…, `final_norm`), each [T, H, W, C].
    public func callAsFunction(_ clip: Tensor, observe: ((String, Tensor) -> Void)? = nil) -> Tensor {
        let (x, grid) = embedPatches(clip)
        return forward(tokens: x, grid: grid, observe: observe)
    }

    /// Patch-embedded tokens x: [T', H', W', embedDim] (consumed: updated in place) → logits.
    /// A streaming-native model runs them as a stream of its own starting at `startTokenTime`.
    public func forward(tokens x: Tensor, grid: [Int], startTokenTime: Int = 0,
                        observe: ((String, Tensor) -> Void)? = nil) -> Tensor {
        observe?("patch_embed", x)
        if config.streaming {
            let stream = SwinStream(model: self, startTokenTime: startTokenTime, keptSlices: grid[0])
            stream.push(tokens: x, grid: grid) { observe?("final_norm", $0) }
            return stream.clipLogits(clipTokens: grid[0])
        }
        return runClips(x, grid: grid, clips: 1, observe: observe)[0]
    }

    /// Several clips of one geometry in one pass: tokens [T', H', W', embedDim] each, consumed.
    /// Every linear layer runs once over all clips' tokens; logits equal separate passes up to GEMM
    /// tile-shape rounding. Clip-trained models only (a streaming-native model runs one stream each).
    public func forward(batch: [Tensor], grid: [Int]) -> [Tensor] {
        precondition(!config.streaming, "batching is for clip-trained models; streams run one at a time")
        precondition(!batch.isEmpty && batch.allSatisfy { $0.shape == grid + [config.embedDim] },
                     "every clip must be \(grid + [config.embedDim])")
        if batch.count == 1 { return [forward(tokens: batch[0], grid: grid)] }
        let perClip = batch[0].count
        let x = Tensor(uninitialized: [batch.count * grid[0], grid[1], grid[2], config.embedDim])
        for (i, clip) in batch.enumerated() { (x.data + i * perClip).update(from: clip.data, count: perClip) }
        return runClips(x, grid: grid, clips: batch.count, observe: nil)
    }

    /// Stages and head on `clips` clips stacked along time in x (`grid` is one clip's).
    func runClips(_ x: Tensor, grid: [Int], clips: Int, observe: ((String, Tensor) -> Void)?) -> [Tensor] {
        var (x, grid) = (x, grid)
        for stage in 0..<stages.count {
            runStage(stage, x, grid: grid, clips: clips)
            observe?("stage\(stage)", x)
            if stage < merges.count {
                // Merging is spatial, so the clips stay stacked along time.
                let (merged, mergedGrid) = merges[stage](x, grid: [clips * grid[0], grid[1], grid[2]],
                                                         channels: config.channels(stage: stage))
                (x, grid) = (merged, [grid[0], mergedGrid[1], mergedGrid[2]])
                observe?("merge\(stage)", x)
            }
        }
        let perClip = x.count / clips
        return (0..<clips).map { clip in
            let tokens = Tensor(borrowing: x.data + clip * perClip, shape: grid + [x.shape.last!], owner: x)
            return classify(tokens, grid: grid, observe: observe)
        }
    }

    /// Final LayerNorm, mean over all tokens, linear head. x: [T, H, W, C] → [numClasses].
    public func classify(_ x: Tensor, grid: [Int], observe: ((String, Tensor) -> Void)? = nil) -> Tensor {
        let c = x.shape.last!
        let tokens = x.count / c
        let normed = Tensor(uninitialized: x.shape)
        norm(x.data, rows: tokens, into: normed.data)
        observe?("final_norm", normed)
        let pooled = Tensor(zeros: [1, c])
        for token in 0..<tokens {
            let row = normed.data + token * c
            for j in 0..<c { pooled.data[j] += row[j] }
        }
        for j in 0..<c { pooled.data[j] /= Float(tokens) }
        let logits = Tensor(uninitialized: [config.numClasses])
        head(pooled.data, rows: 1, into: logits.data)
        return logits
    }

    /// Multiply-adds ×2 of every linear, convolution and attention product for a clip, the usual
    /// way to count a transformer's GFLOP (norms, softmax and GELU not counted).
    public func flops(frames: Int, height: Int, width: Int) -> Double {
        var grid = tokenGrid(frames: frames, height: height, width: width)
        var total = 0.0
        let tokens0 = Double(grid.reduce(1, *))
        total += 2 * tokens0 * Double(patchEmbed.inFeatures * patchEmbed.outFeatures)
        for stage in 0..<stages.count {
            let tokens = Double(grid.reduce(1, *))
            for block in stages[stage] {
                let c = Double(block.channels)
                let (window, shift) = WindowLayout.clamp(grid: grid, window: block.windowSize,
                                                         shift: block.shifted ? block.windowSize.map { $0 / 2 } : [0, 0, 0])
                let partition = WindowPartition(grid: grid, window: window, shift: shift)
                let windowed = Double(partition.windowCount * partition.tokensPerWindow)
                let n = Double(partition.tokensPerWindow)
                total += 2 * windowed * c * 3 * c          // qkv
                total += 2 * 2 * windowed * n * c          // q·kᵀ and attn·v over all heads
                total += 2 * windowed * c * c              // proj
                total += 2 * tokens * c * Double(config.mlpRatio) * c * 2  // fc1 + fc2
            }
            if stage < merges.count {
                let c = Double(config.channels(stage: stage))
                grid = [grid[0], (grid[1] + 1) / 2, (grid[2] + 1) / 2]
                total += 2 * Double(grid.reduce(1, *)) * 4 * c * 2 * c
            }
        }
        total += 2 * Double(head.inFeatures * head.outFeatures)
        return total
    }
}

/// Seeded random weights of a plausible scale, for benchmarks and tests of topologies without a
/// checkpoint: LayerNorm weights and BatchNorm variances 1 ± 0.2, relative position bias tables U(±1) (so that they matter),
/// matrices U(±1.7/√fan_in), biases U(±0.1).
public func randomWeights(seed: UInt64) -> WeightProvider {
    var generator = SplitMix64(seed: seed)
    return { name, shape in
        let t = Tensor(uninitialized: shape)
        let fanIn = shape.count > 1 ? shape.dropFirst().reduce(1, *) : 1
        // value = offset + scale · U(±1), decided once per tensor.
        let (offset, scale): (Float, Float)
        if name.contains("norm") && name.hasSuffix("weight") || name.hasSuffix("running_var") { (offset, scale) = (1, 0.2) }
        else if name.contains("relative_position_bias_table") { (offset, scale) = (0, 1) }
        else { (offset, scale) = (0, shape.count > 1 ? 1.7 / Float(fanIn).squareRoot() : 0.1) }
        for i in 0..<t.count { t[i] = offset + scale * Float.random(in: -1...1, using: &generator) }
        return t
    }
}

extension VideoSwin: VideoModel {
    public static let architecture = "video_swin"

    public static func problem(in config: VideoSwinConfig) -> String? {
        if !(config.patchSize.count == 3 && config.patchSize.allSatisfy { $0 > 0 }) { return "patchSize must be 3 positive sizes" }
        if !(config.windowSize.count == 3 && config.windowSize.allSatisfy { $0 > 0 }) { return "windowSize must be 3 positive sizes" }
        if config.depths.isEmpty || config.depths.count != config.numHeads.count { return "depths and numHeads must have the same, non-zero length" }
        if !config.depths.allSatisfy({ $0 > 0 }) { return "every depth must be positive" }
        if !(config.embedDim > 0 && config.numClasses > 0 && config.inChannels > 0 && config.mlpRatio > 0) { return "sizes must be positive" }
        for (stage, heads) in config.numHeads.enumerated() where !(heads > 0 && config.channels(stage: stage) % heads == 0) {
            return "stage \(stage) has \(config.channels(stage: stage)) channels, not divisible by \(heads) heads"
        }
        return nil
    }

    /// torchvision's Kinetics recipe for swin3d_* (the official repository's is the same on 0-255).
    public static func referencePreprocessing(for config: VideoSwinConfig) -> Preprocessing { .torchvisionKinetics }

    public var numClasses: Int { config.numClasses }
    public func logits(_ clip: Tensor) -> Tensor { self(clip) }

    /// Any size runs (windows and patches are padded); only the channels must match.
    public func inputProblem(channels: Int, frames: Int, height: Int, width: Int) -> String? {
        channels == config.inChannels ? nil : "expected \(config.inChannels) channels, got \(channels)"
    }

    /// Units are patch-size[0] tubelets; clips of several cameras with one token grid share one pass.
    public var tubeletEmbedding: TubeletEmbedding? {
        let model = self
        let embedding = 2 * Double(patchEmbed.inFeatures * patchEmbed.outFeatures)
        return TubeletEmbedding(
            unitFrames: config.patchSize[0],
            embed: { frames, _ in model.embedPatches(frames).0 },
            embedFlops: { tokens in embedding * Double(tokens.count / tokens.shape.last!) },
            forward: { tokens in model.forward(tokens: tokens, grid: Array(tokens.shape.prefix(3))) },
            forwardBatch: { clips in model.forward(batch: clips, grid: Array(clips[0].shape.prefix(3))) },
            networkFlops: { frames, height, width in
                let tokens = model.tokenGrid(frames: frames, height: height, width: width).reduce(1, *)
                return model.flops(frames: frames, height: height, width: width) - embedding * Double(tokens)
            })
    }

    /// Cached key/value tiles: exact for streaming-native models (docs/streaming-native-swin.md), the
    /// stale-token approximation for clip-trained ones.
    public var keyValueStreaming: KeyValueStreaming? {
        let model = self
        return KeyValueStreaming(
            streamingNative: config.streaming,
            makeStream: { start, kept in SwinStream(model: model, startTokenTime: start, keptSlices: kept) },
            makeApproximation: { ApproximateSwinClip(model: model) },
            streamClipFlops: { frames, height, width in SwinStream.clipFlops(model: model, frames: frames, height: height, width: width) },
            headFlops: 2 * Double(head.inFeatures * head.outFeatures))
    }
}

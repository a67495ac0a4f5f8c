// Streaming-native Video Swin: docs/streaming-native-swin.md is the definition this follows
// (temporal windows anchored to absolute token time, causal in time, spatial windows as Video Swin).
// Weights and blocks are VideoSwin's; only the attention's temporal structure differs.
import Foundation
import TubeletKernels

/// One stream through a streaming-native Video Swin. Frames go in a whole number of tubelets at a
/// time; every block computes only the new token slices, their queries attending to the cached
/// key/value tiles of the older slices in their temporal window. Pushing a stream in pieces gives
/// what pushing it all at once gives. Memory is bounded: a block keeps at most `Wt - 1` old slices.
public final class SwinStream {
    public let model: VideoSwin
    /// Absolute token time of the first slice of this stream and of the next slice to come.
    public let startTokenTime: Int
    public private(set) var nextTokenTime: Int
    /// How many slices' pooled features are kept for clip labels.
    public let keptSlices: Int
    /// Multiply-adds ×2 done by the last `push` (linears, convolution, attention products).
    public private(set) var lastPushFlops: Double = 0

    /// Per block (stages flattened): qkv rows of recent slices, by token time.
    private var cache: [[Int: Tensor]]
    /// Per block, by token time: the same slices' keys and values packed for our GEMM, per
    /// (spatial window, head), packed once when the slice is computed and read by every later
    /// query in its temporal window (nil with `TUBELET_GEMM=blas`).
    private var packedCache: [[Int: PackedKeysValues]]
    /// Per slice: the spatial mean of its final normalised features [C], oldest first.
    private var pooled: [(time: Int, feature: [Float])] = []
    /// Per stage: spatial geometry fixed by the first push (frames keep their size).
    private var stageLayouts: [StreamStageLayout] = []
    /// The token grid (H', W') of the first push.
    private var frameSize: (height: Int, width: Int)?

    public init(model: VideoSwin, startTokenTime: Int = 0, keptSlices: Int = 64) {
        precondition(model.config.streaming, "SwinStream needs a streaming-native model")
        precondition(startTokenTime >= 0 && keptSlices > 0)
        self.model = model
        self.startTokenTime = startTokenTime
        self.nextTokenTime = startTokenTime
        self.keptSlices = keptSlices
        cache = Array(repeating: [:], count: model.stages.reduce(0) { $0 + $1.count })
        packedCache = Array(repeating: [:], count: cache.count)
    }

    /// Slices pushed so far whose pooled features are still kept.
    public var availableSlices: Int { pooled.count }

    /// Key/value tiles held now, over all blocks (for memory checks).
    public var cachedSlices: Int { cache.reduce(0) { $0 + $1.count } }

    /// frames: [C, k·pt, H, W], normalised; H and W must stay the same for the whole stream.
    /// `observe` sees the final normalised features of the new slices, [k, H', W', C].
    public func push(_ frames: Tensor, observe: ((Tensor) -> Void)? = nil) {
        let config = model.config
        precondition(frames.rank == 4 && frames.shape[0] == config.inChannels, "frames must be [\(config.inChannels), T, H, W], got \(frames.shape)")
        precondition(frames.shape[1] > 0 && frames.shape[1] % config.patchSize[0] == 0,
                     "a push must hold a whole number of \(config.patchSize[0])-frame tubelets, got \(frames.shape[1]) frames")
        let (x, grid) = model.embedPatches(frames)
        push(tokens: x, grid: grid, observe: observe)
        lastPushFlops += 2 * Double(x.count) * Double(model.patchEmbed.inFeatures)
    }

    /// Patch-embedded token slices x: [k, H', W', embedDim] (consumed: updated in place).
    public func push(tokens x: Tensor, grid: [Int], observe: ((Tensor) -> Void)? = nil) {
        precondition(x.rank == 4 && Array(x.shape.prefix(3)) == grid && x.shape[3] == model.config.embedDim,
                     "tokens must be [slices, H', W', \(model.config.embedDim)] matching grid \(grid), got \(x.shape)")
        if let size = frameSize {
            precondition(size == (grid[1], grid[2]), "token grid changed mid-stream: \(size) to \(grid[1...])")
        } else {
            frameSize = (grid[1], grid[2])
        }
        var flops = 0.0
        var (x, grid) = (x, grid)
        let newSlices = grid[0], firstTime = nextTokenTime
        if stageLayouts.isEmpty { stageLayouts = makeStageLayouts(firstGrid: grid) }

        var blockIndex = 0
        for stage in 0..<model.stages.count {
            let layouts = stageLayouts[stage]
            for block in model.stages[stage] {
                flops += runBlock(block, blockIndex: blockIndex, x: x, slices: newSlices, firstTime: firstTime,
                                  layout: block.shifted ? layouts.shifted : layouts.unshifted)
                blockIndex += 1
            }
            if stage < model.merges.count {
                let c = model.config.channels(stage: stage)
                (x, grid) = model.merges[stage](x, grid: grid, channels: c)
                flops += 2 * Double(x.count / (2 * c)) * Double(4 * c * 2 * c)
            }
        }
        // Final LayerNorm on every token, then each slice's spatial mean for the clip pooling.
        let c = x.shape.last!, perSlice = grid[1] * grid[2]
        let normed = Tensor(uninitialized: x.shape)
        model.norm(x.data, rows: x.count / c, into: normed.data)
        observe?(normed)
        for slice in 0..<newSlices {
            var feature = [Float](repeating: 0, count: c)
            for token in 0..<perSlice {
                let row = normed.data + (slice * perSlice + token) * c
                for j in 0..<c { feature[j] += row[j] }
            }
            for j in 0..<c { feature[j] /= Float(perSlice) }
            pooled.append((firstTime + slice, feature))
        }
        if pooled.count > keptSlices { pooled.removeFirst(pooled.count - keptSlices) }
        nextTokenTime += newSlices
        evictTiles()
        lastPushFlops = flops
    }

    /// Logits of the clip made of the `clipTokens` slices before `endTime` (default: the last ones):
    /// head(mean of their final features).
    public func clipLogits(clipTokens: Int, endTime: Int? = nil) -> Tensor {
        let end = endTime ?? nextTokenTime
        let firstKept = pooled.first?.time ?? nextTokenTime
        precondition(clipTokens > 0 && end - clipTokens >= firstKept && end <= nextTokenTime,
                     "clip [\(end - clipTokens), \(end)) is not among the kept slices [\(firstKept), \(nextTokenTime))")
        let c = pooled[0].feature.count
        let mean = Tensor(zeros: [1, c])
        let start = end - clipTokens - firstKept
        for (_, feature) in pooled[start..<(start + clipTokens)] {
            for j in 0..<c { mean.data[j] += feature[j] }
        }
        for j in 0..<c { mean.data[j] /= Float(clipTokens) }
        let logits = Tensor(uninitialized: [model.config.numClasses])
        model.head(mean.data, rows: 1, into: logits.data)
        return logits
    }

    /// First token time of the temporal window holding `time` for a block with temporal shift `shift`.
    @inline(__always)
    func windowStart(_ time: Int, shift: Int) -> Int {
        let w = model.config.windowSize[0]
        let k = Int((Double(time - shift) / Double(w)).rounded(.down))
        return k * w + shift
    }

    /// Token times of the key slices a query at `time` sees: its temporal window's past, from the
    /// window's start (or the stream's) up to itself.
    @inline(__always)
    func keyTimes(_ time: Int, shift: Int) -> ClosedRange<Int> {
        max(windowStart(time, shift: shift), startTokenTime)...time
    }

    /// Attention item `item` of a block's new slices, ordered (slice, spatial window, head): which
    /// it is, and the key slices its query sees.
    @inline(__always)
    private func attentionItem(_ item: Int, windows: Int, heads: Int, firstTime: Int, shift: Int)
        -> (slice: Int, window: Int, head: Int, time: Int, keyTimes: ClosedRange<Int>) {
        let slice = item / (windows * heads), time = firstTime + slice
        return (slice, (item / heads) % windows, item % heads, time, keyTimes(time, shift: shift))
    }

    /// Drops tiles no future query can reach: older than the window of the next slice.
    private func evictTiles() {
        var blockIndex = 0
        for stage in model.stages {
            for block in stage {
                let oldest = windowStart(nextTokenTime, shift: temporalShift(block))
                cache[blockIndex] = cache[blockIndex].filter { $0.key >= oldest }
                packedCache[blockIndex] = packedCache[blockIndex].filter { $0.key >= oldest }
                blockIndex += 1
            }
        }
    }

    private func temporalShift(_ block: SwinBlock) -> Int { block.shifted ? block.windowSize[0] / 2 : 0 }

    private func makeStageLayouts(firstGrid: [Int]) -> [StreamStageLayout] {
        var (height, width) = (firstGrid[1], firstGrid[2])
        var layouts: [StreamStageLayout] = []
        for stage in 0..<model.stages.count {
            let blocks = model.stages[stage]
            func layout(_ block: SwinBlock?) -> SpatialLayout? {
                guard let block else { return nil }
                return SpatialLayout(block: block, height: height, width: width)
            }
            layouts.append(StreamStageLayout(unshifted: layout(blocks.first { !$0.shifted })!,
                                             shifted: layout(blocks.first { $0.shifted }) ?? layout(blocks.first!)!))
            (height, width) = ((height + 1) / 2, (width + 1) / 2)
        }
        return layouts
    }

    /// One block on the new slices x: [slices, H, W, C], in place. Returns its FLOPs.
    private func runBlock(_ block: SwinBlock, blockIndex: Int, x: Tensor, slices: Int, firstTime: Int,
                          layout: SpatialLayout) -> Double {
        let c = block.channels, heads = block.heads, headDim = c / heads
        let partition = layout.partition
        let perSlice = partition.gridHeight * partition.gridWidth
        let windowed = partition.windowCount * partition.tokensPerWindow  // per slice
        let n = partition.tokensPerWindow
        let tokens = slices * perSlice

        // norm1 fused with the per-slice spatial partition → qkv for the new slices, cached by token time.
        let windows = Tensor(uninitialized: [slices * windowed, c])
        for slice in 0..<slices {
            partition.partitionLayerNorm(x.data + slice * perSlice * c, channels: c, weight: block.norm1.weight.data,
                                         bias: block.norm1.bias.data, eps: block.norm1.eps,
                                         into: windows.data + slice * windowed * c)
        }
        let qkv = Tensor(uninitialized: [slices * windowed, 3 * c])
        block.qkv(windows.data, rows: slices * windowed, into: qkv.data)
        for slice in 0..<slices {
            cache[blockIndex][firstTime + slice] = Tensor(borrowing: qkv.data + slice * windowed * 3 * c,
                                                          shape: [windowed, 3 * c], owner: qkv)
        }

        // Attention of every (new slice, spatial window, head) over its temporal window's past.
        let shift = temporalShift(block)
        let scale = 1 / Float(headDim).squareRoot()
        let bias = layout.bias(for: block)
        let attention = Tensor(uninitialized: [slices * windowed, c])
        let tiles = cache[blockIndex]
        let windowTemporal = block.windowSize[0]
        var keyCounts = 0
        for slice in 0..<slices {
            keyCounts += keyTimes(firstTime + slice, shift: shift).count
        }
        if GEMMBackend.packed {
            let packedSlices = PackedKeysValues.pack(qkv: qkv.data, slices: slices, windows: partition.windowCount,
                                                     tokens: n, heads: heads, headDim: headDim)
            for slice in 0..<slices { packedCache[blockIndex][firstTime + slice] = packedSlices[slice] }
            let packedTiles = packedCache[blockIndex]
            // One GEMM per key slice writes scale·q·kᵀ + that offset's bias straight into its
            // columns of the score rows; the products with v accumulate, the softmax's division
            // folded into their row scale. Items are claimed one at a time: a new slice's cost
            // grows with how many key slices it sees, so an even split by index is uneven in work.
            Parallel.claimItems(slices * partition.windowCount * heads) { next in
                let scores = UnsafeMutablePointer<Float>.allocate(capacity: n * windowTemporal * n)
                let inverseSums = UnsafeMutablePointer<Float>.allocate(capacity: n)
                defer { scores.deallocate(); inverseSums.deallocate() }
                while let item = next() {
                    let (slice, window, head, time, seen) = attentionItem(item, windows: partition.windowCount, heads: heads,
                                                                          firstTime: firstTime, shift: shift)
                    let rowStride = seen.count * n
                    let query = tiles[time]!.data + window * n * 3 * c + head * headDim
                    let pair = window * heads + head
                    for (block, keyTime) in seen.enumerated() {
                        gemmPacked(m: n, n: n, k: headDim, a: query, lda: 3 * c, b: packedTiles[keyTime]!.keys(pair),
                                   c: scores + block * n, ldc: rowStride,
                                   alpha: scale, addend: bias.data + ((time - keyTime) * heads + head) * n * n, addendStride: n)
                        layout.mask?.apply(window: window, to: scores + block * n, rowStride: rowStride)
                    }
                    for row in 0..<n { inverseSums[row] = 1 / exponentiateRow(scores + row * rowStride, count: rowStride) }
                    let output = attention.data + (slice * windowed + window * n) * c + head * headDim
                    for (block, keyTime) in seen.enumerated() {
                        gemmPacked(m: n, n: headDim, k: n, a: scores + block * n, lda: rowStride, b: packedTiles[keyTime]!.values(pair),
                                   c: output, ldc: c, accumulate: block > 0, rowScale: inverseSums)
                    }
                }
            }
        } else {
            attendBLAS(partition: partition, heads: heads, headDim: headDim, slices: slices, firstTime: firstTime, shift: shift,
                       scale: scale, bias: bias, layout: layout, tiles: tiles, windowed: windowed, c: c, into: attention)
        }
        block.projectWithoutBias(attention.data, rows: slices * windowed, into: windows.data)
        for slice in 0..<slices {
            partition.reverseAdd(windows.data + slice * windowed * c, channels: c, bias: block.proj.bias?.data,
                                 into: x.data + slice * perSlice * c)
        }
        block.mlpResidual(x.data, rows: tokens)

        return SwinStream.blockFlops(block, partition: partition, slices: slices, keySlices: keyCounts)
    }

    /// The attention of `runBlock` through cblas (`TUBELET_GEMM=blas`): each score tile starts as
    /// its offset's bias (+ mask) and the GEMM accumulates scale·q·kᵀ onto it.
    private func attendBLAS(partition: WindowPartition, heads: Int, headDim: Int, slices: Int, firstTime: Int, shift: Int,
                            scale: Float, bias: Tensor, layout: SpatialLayout, tiles: [Int: Tensor], windowed: Int, c: Int,
                            into attention: Tensor) {
        let n = partition.tokensPerWindow
        let windowTemporal = bias.shape[0]
        Parallel.forRanges(slices * partition.windowCount * heads) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: n * windowTemporal * n)
            let rowSums = UnsafeMutablePointer<Float>.allocate(capacity: n)
            defer { scores.deallocate(); rowSums.deallocate() }
            for item in range {
                let (slice, window, head, time, seen) = attentionItem(item, windows: partition.windowCount, heads: heads,
                                                                      firstTime: firstTime, shift: shift)
                let rowStride = seen.count * n
                let query = tiles[time]!.data + window * n * 3 * c + head * headDim
                // Scores [n, key slices·n]: bias of each time offset (+ spatial mask), then + scale·q·kᵀ.
                for (block, keyTime) in seen.enumerated() {
                    let key = tiles[keyTime]!.data + window * n * 3 * c + c + head * headDim
                    let tile = scores + block * n
                    let offsetBias = bias.data + ((time - keyTime) * heads + head) * n * n
                    for row in 0..<n { (tile + row * rowStride).update(from: offsetBias + row * n, count: n) }
                    layout.mask?.apply(window: window, to: tile, rowStride: rowStride)
                    sgemm(transposeA: false, transposeB: true, m: n, n: n, k: headDim, alpha: scale,
                          a: query, lda: 3 * c, b: key, ldb: 3 * c, beta: 1, c: tile, ldc: rowStride)
                }
                for row in 0..<n { rowSums[row] = exponentiateRow(scores + row * rowStride, count: rowStride) }
                let output = attention.data + (slice * windowed + window * n) * c + head * headDim
                for (block, keyTime) in seen.enumerated() {
                    let value = tiles[keyTime]!.data + window * n * 3 * c + 2 * c + head * headDim
                    sgemm(transposeA: false, transposeB: false, m: n, n: headDim, k: n,
                          a: scores + block * n, lda: rowStride, b: value, ldb: 3 * c,
                          beta: block == 0 ? 0 : 1, c: output, ldc: c)
                }
                for row in 0..<n {
                    let out = output + row * c, inverse = 1 / rowSums[row]
                    for d in 0..<headDim { out[d] *= inverse }
                }
            }
        }
    }

    /// Multiply-adds ×2 of one block on `slices` new slices whose queries see `keySlices` key slices in all.
    static func blockFlops(_ block: SwinBlock, partition: WindowPartition, slices: Int, keySlices: Int) -> Double {
        let c = Double(block.channels), n = Double(partition.tokensPerWindow)
        let windowedRows = Double(slices * partition.windowCount * partition.tokensPerWindow)
        let tokens = Double(slices * partition.gridHeight * partition.gridWidth)
        return 2 * windowedRows * c * 4 * c                                       // qkv + proj
            + 2 * 2 * Double(keySlices * partition.windowCount) * n * n * c       // q·kᵀ and attn·v
            + 2 * tokens * c * Double(block.fc1.outFeatures) * 2                  // fc1 + fc2
    }

    /// Multiply-adds ×2 of a clip of `frames` frames from scratch (a stream starting at time 0).
    public static func clipFlops(model: VideoSwin, frames: Int, height: Int, width: Int) -> Double {
        let grid = model.tokenGrid(frames: frames, height: height, width: width)
        let slices = grid[0], windowTemporal = model.config.windowSize[0]
        var total = 2 * Double(grid.reduce(1, *)) * Double(model.patchEmbed.inFeatures * model.patchEmbed.outFeatures)
        var (h, w) = (grid[1], grid[2])
        for stage in 0..<model.stages.count {
            for block in model.stages[stage] {
                let shift = block.shifted ? windowTemporal / 2 : 0
                var keySlices = 0
                for time in 0..<slices {
                    let start = Int((Double(time - shift) / Double(windowTemporal)).rounded(.down)) * windowTemporal + shift
                    keySlices += time - max(start, 0) + 1
                }
                let layout = SpatialLayout(block: block, height: h, width: w)
                total += blockFlops(block, partition: layout.partition, slices: slices, keySlices: keySlices)
            }
            if stage < model.merges.count {
                let c = Double(model.config.channels(stage: stage))
                (h, w) = ((h + 1) / 2, (w + 1) / 2)
                total += 2 * Double(slices * h * w) * 4 * c * 2 * c
            }
        }
        return total + 2 * Double(model.head.inFeatures * model.head.outFeatures)
    }
}

/// A stage's spatial window geometry for unshifted and shifted blocks.
struct StreamStageLayout {
    let unshifted: SpatialLayout
    let shifted: SpatialLayout
}

/// Spatial windows of one token slice (Video Swin's per-frame part): clamp with `<=`, pad, roll,
/// -100 mask between shift regions. Relative position biases by temporal offset, per block.
final class SpatialLayout: @unchecked Sendable {
    let partition: WindowPartition
    let mask: ShiftMask?
    private var biases: [ObjectIdentifier: Tensor] = [:]
    private let lock = NSLock()

    init(block: SwinBlock, height: Int, width: Int) {
        let configured = block.windowSize
        // Time is unbounded in a stream, so only the spatial axes can clamp.
        let (window, shift) = WindowLayout.clamp(grid: [Int.max, height, width], window: configured,
                                                 shift: block.shifted ? configured.map { $0 / 2 } : [0, 0, 0])
        // Temporal structure is handled by the stream; each slice is a [1, H, W] grid here.
        partition = WindowPartition(grid: [1, height, width], window: [1, window[1], window[2]], shift: [0, shift[1], shift[2]])
        mask = shift[1] > 0 || shift[2] > 0
            ? ShiftMask(labels: WindowLayout.shiftMaskLabels(partition), tokensPerWindow: partition.tokensPerWindow) : nil
    }

    /// [Wt, heads, N, N]: bias between a query and a key `dt` slices older, from true offsets with
    /// the configured window's table layout.
    func bias(for block: SwinBlock) -> Tensor {
        let key = ObjectIdentifier(block.relativePositionBiasTable)
        lock.lock()
        defer { lock.unlock() }
        if let cached = biases[key] { return cached }
        let (wt, wh, ww) = (block.windowSize[0], block.windowSize[1], block.windowSize[2])
        let (sh, sw) = (partition.windowSizeHeight, partition.windowSizeWidth)
        let n = sh * sw, heads = block.heads
        let bias = Tensor(uninitialized: [wt, heads, n, n])
        let table = block.relativePositionBiasTable.data
        for dt in 0..<wt {
            for i in 0..<n {
                let (hi, wi) = (i / sw, i % sw)
                for j in 0..<n {
                    let (hj, wj) = (j / sw, j % sw)
                    let index = (dt + wt - 1) * (2 * wh - 1) * (2 * ww - 1) + (hi - hj + wh - 1) * (2 * ww - 1) + (wi - wj + ww - 1)
                    for h in 0..<heads { bias.data[((dt * heads + h) * n + i) * n + j] = table[index * heads + h] }
                }
            }
        }
        biases[key] = bias
        return bias
    }
}

/// One slice's keys and values of a block packed for `gemmPacked`, per (spatial window, head):
/// keys as B = kᵀ [headDim, N], values as B = v [N, headDim].
final class PackedKeysValues: @unchecked Sendable {
    let keyFloats: Int, valueFloats: Int
    let storage: Tensor
    let pairs: Int

    init(pairs: Int, tokens n: Int, headDim: Int) {
        keyFloats = PackedMatrix.floats(k: headDim, n: n)
        valueFloats = PackedMatrix.floats(k: n, n: headDim)
        self.pairs = pairs
        storage = Tensor(uninitialized: [pairs * (keyFloats + valueFloats)])
    }

    /// Packed keys and values of (window · heads + head).
    @inline(__always) func keys(_ pair: Int) -> UnsafeMutablePointer<Float> { storage.data + pair * keyFloats }
    @inline(__always) func values(_ pair: Int) -> UnsafeMutablePointer<Float> { storage.data + pairs * keyFloats + pair * valueFloats }

    /// Packs every slice of qkv: [slices · windows · N, 3C] (rows laid out (3, heads, headDim)).
    static func pack(qkv: UnsafePointer<Float>, slices: Int, windows: Int, tokens n: Int, heads: Int, headDim: Int) -> [PackedKeysValues] {
        let c = heads * headDim, pairs = windows * heads
        let packed = (0..<slices).map { _ in PackedKeysValues(pairs: pairs, tokens: n, headDim: headDim) }
        Parallel.forRanges(slices * pairs) { range in
            for item in range {
                let slice = item / pairs, pair = item % pairs
                let window = pair / heads, head = pair % heads
                SwinBlock.packKeysValues(qkv: qkv + (slice * windows + window) * n * 3 * c, head: head, channels: c,
                                         headDim: headDim, tokens: n, keys: packed[slice].keys(pair),
                                         values: packed[slice].values(pair))
            }
        }
        return packed
    }
}

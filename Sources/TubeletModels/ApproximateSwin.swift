// The stale-token approximation for clip-trained Video Swin (../shared/notes/streaming-reuse.md,
// "Approximate reuse on clip-trained weights"): between refreshes, each hop computes only the
// newest token slices at every block; their queries attend, under the current clip's window
// partition, to the cached keys and values of the older tokens, and the older tokens keep their
// cached outputs. A refresh recomputes the clip exactly and refills the caches. Measured on a
// small model, top-1 agreed with full recompute on only 58-82% of clips: it is never a default,
// and the scheduler reports its agreement.
import Foundation
import TubeletKernels

public final class ApproximateSwinClip {
    public let model: VideoSwin
    /// Multiply-adds ×2 of the last `refresh` or `advance`.
    public private(set) var lastFlops: Double = 0

    /// Per block (stages flattened), in grid order of the current clip: qkv rows [tokens, 3C]
    /// and block outputs [tokens, C].
    private var qkvCache: [Tensor] = []
    private var outputCache: [Tensor] = []
    /// Token grid of each stage for the current clip geometry.
    private var stageGrids: [[Int]] = []

    public init(model: VideoSwin) {
        precondition(!model.config.streaming, "the stale-token approximation is for clip-trained models")
        self.model = model
    }

    public var isPrimed: Bool { !qkvCache.isEmpty }

    /// Exact logits of the clip whose patch embeddings are `tokens` [T', H', W', C] (consumed), filling the caches.
    public func refresh(tokens x: Tensor, grid: [Int]) -> Tensor {
        qkvCache.removeAll()
        outputCache.removeAll()
        stageGrids.removeAll()
        var (x, grid) = (x, grid)
        var flops = 0.0
        for stage in 0..<model.stages.count {
            stageGrids.append(grid)
            let tokens = grid.reduce(1, *)
            for block in model.stages[stage] {
                let layout = WindowLayout(block: block, grid: grid)
                let c = block.channels
                // The block's qkv for every token in grid order (what later hops attend to).
                let normed = Tensor(uninitialized: [tokens, c])
                block.norm1(x.data, rows: tokens, into: normed.data)
                let qkv = Tensor(uninitialized: [tokens, 3 * c])
                block.qkv(normed.data, rows: tokens, into: qkv.data)
                qkvCache.append(qkv)
                flops += 2 * Double(tokens) * Double(c * 3 * c)
                let scratch = BlockScratch(windowedTokens: layout.partition.windowCount * layout.partition.tokensPerWindow,
                                           channels: c)
                block(x, grid: grid, layout: layout, scratch: scratch)
                outputCache.append(x.copy())
            }
            if stage < model.merges.count {
                (x, grid) = model.merges[stage](x, grid: grid, channels: model.config.channels(stage: stage))
            }
        }
        lastFlops = flops + model.flops(frames: stageGrids[0][0] * model.config.patchSize[0],
                                        height: stageGrids[0][1] * model.config.patchSize[1],
                                        width: stageGrids[0][2] * model.config.patchSize[2])
        return model.classify(x, grid: grid)
    }

    /// Slides the clip by the slices of `newTokens` [h, H', W', C] (patch embeddings of the newest
    /// tubelets) and returns the approximate logits: only the new slices are computed.
    public func advance(newTokens: Tensor) -> Tensor {
        precondition(isPrimed, "refresh once before advancing")
        let newSlices = newTokens.shape[0]
        precondition(newSlices > 0 && newSlices < stageGrids[0][0], "a hop must be shorter than the clip")
        var x = newTokens.copy()
        var flops = 0.0
        var blockIndex = 0
        for stage in 0..<model.stages.count {
            let grid = stageGrids[stage]
            for block in model.stages[stage] {
                flops += advanceBlock(block, index: blockIndex, grid: grid, newInput: x, newSlices: newSlices)
                x = Tensor(borrowing: outputCache[blockIndex].data + (grid[0] - newSlices) * grid[1] * grid[2] * block.channels,
                           shape: [newSlices, grid[1], grid[2], block.channels], owner: outputCache[blockIndex])
                blockIndex += 1
            }
            if stage < model.merges.count {
                let c = model.config.channels(stage: stage)
                x = model.merges[stage](x, grid: [newSlices, grid[1], grid[2]], channels: c).0
                flops += 2 * Double(x.count / (2 * c)) * Double(4 * c * 2 * c)
            }
        }
        lastFlops = flops
        return model.classify(outputCache[blockIndex - 1], grid: stageGrids.last!)
    }

    /// One block on the newest `newSlices` slices: caches shift by those slices, new rows are computed.
    private func advanceBlock(_ block: SwinBlock, index: Int, grid: [Int], newInput: Tensor, newSlices: Int) -> Double {
        let c = block.channels, heads = block.heads, headDim = c / heads
        let perSlice = grid[1] * grid[2], tokens = grid.reduce(1, *)
        let newTokens = newSlices * perSlice, firstNew = tokens - newTokens
        let qkvAll = qkvCache[index], outputAll = outputCache[index]
        // The clip slides: old rows move up by the new slices; the new rows are computed below.
        (qkvAll.data).update(from: qkvAll.data + newTokens * 3 * c, count: firstNew * 3 * c)
        (outputAll.data).update(from: outputAll.data + newTokens * c, count: firstNew * c)

        let normed = Tensor(uninitialized: [newTokens, c])
        block.norm1(newInput.data, rows: newTokens, into: normed.data)
        block.qkv(normed.data, rows: newTokens, into: qkvAll.data + firstNew * 3 * c)

        // Attention of the new tokens' queries over their windows in the current clip's partition.
        let layout = WindowLayout(block: block, grid: grid)
        let partition = layout.partition
        let n = partition.tokensPerWindow
        let bias = block.relativePositionBias(tokens: n)
        let scale = 1 / Float(headDim).squareRoot()
        let qkvBias = block.qkv.bias!.data  // a zero-padded token's q, k, v: the qkv bias
        let attention = Tensor(uninitialized: [newTokens, c])
        var queryCount = 0
        let sources = partition.sourceIndex
        for window in 0..<partition.windowCount {
            for token in 0..<n where Int(sources[window * n + token]) >= firstNew { queryCount += 1 }
        }
        Parallel.forRanges(partition.windowCount) { range in
            let window3C = UnsafeMutablePointer<Float>.allocate(capacity: n * 3 * c)
            let queryRows = UnsafeMutablePointer<Float>.allocate(capacity: n * headDim)
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
            let outputRows = UnsafeMutablePointer<Float>.allocate(capacity: n * headDim)
            defer { window3C.deallocate(); queryRows.deallocate(); scores.deallocate(); outputRows.deallocate() }
            for window in range {
                let positions = (0..<n).map { Int(sources[window * n + $0]) }
                let queries = positions.indices.filter { positions[$0] >= firstNew }
                if queries.isEmpty { continue }
                // Every token of the window: cached or new qkv, or the bias for padding.
                for (token, source) in positions.enumerated() {
                    (window3C + token * 3 * c).update(from: source >= 0 ? qkvAll.data + source * 3 * c : qkvBias, count: 3 * c)
                }
                let m = queries.count
                for head in 0..<heads {
                    for (row, query) in queries.enumerated() {
                        (queryRows + row * headDim).update(from: window3C + query * 3 * c + head * headDim, count: headDim)
                        (scores + row * n).update(from: bias.data + (head * n + query) * n, count: n)
                        layout.mask?.applyRow(window: window, row: query, to: scores + row * n)
                    }
                    sgemm(transposeA: false, transposeB: true, m: m, n: n, k: headDim, alpha: scale,
                          a: queryRows, lda: headDim, b: window3C + c + head * headDim, ldb: 3 * c, beta: 1, c: scores, ldc: n)
                    for row in 0..<m {
                        let inverse = 1 / exponentiateRow(scores + row * n, count: n)
                        for key in 0..<n { scores[row * n + key] *= inverse }
                    }
                    sgemm(transposeA: false, transposeB: false, m: m, n: headDim, k: n,
                          a: scores, lda: n, b: window3C + 2 * c + head * headDim, ldb: 3 * c, c: outputRows, ldc: headDim)
                    for (row, query) in queries.enumerated() {
                        (attention.data + (positions[query] - firstNew) * c + head * headDim).update(from: outputRows + row * headDim, count: headDim)
                    }
                }
            }
        }
        // proj + residual, then the MLP, for the new tokens only.
        let newOutput = outputAll.data + firstNew * c
        newOutput.update(from: newInput.data, count: newTokens * c)
        block.proj(attention.data, rows: newTokens, into: newOutput, accumulate: true)
        block.norm2(newOutput, rows: newTokens, into: normed.data)
        let hidden = Tensor(uninitialized: [newTokens, block.fc1.outFeatures])
        block.fc1(normed.data, rows: newTokens, into: hidden.data)
        geluExact(hidden.data, count: hidden.count)
        block.fc2(hidden.data, rows: newTokens, into: newOutput, accumulate: true)
        return 2 * Double(newTokens) * Double(c) * Double(4 * c)             // qkv + proj
            + 2 * 2 * Double(queryCount * n) * Double(c)                        // q·kᵀ and attn·v
            + 2 * 2 * Double(newTokens) * Double(c) * Double(block.fc1.outFeatures)  // fc1 + fc2
    }
}

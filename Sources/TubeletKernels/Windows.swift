/// 3D (shifted) window partition over a [T, H, W, C] token grid, as in Video Swin.
///
/// The grid is zero-padded at the end of each axis to a multiple of the window, rolled by
/// -shift (torch.roll semantics), and cut into windows in (t, h, w) order; tokens inside a
/// window are in (t, h, w) order too. `sourceIndex` maps each windowed token back to its
/// token in the unpadded grid, or -1 for padding, so partition, reverse, roll-back and crop
/// are one gather and one scatter.
public struct WindowPartition: Sendable {
    public let gridTemporal: Int, gridHeight: Int, gridWidth: Int
    public let windowSizeTemporal: Int, windowSizeHeight: Int, windowSizeWidth: Int
    public let shiftTemporal: Int, shiftHeight: Int, shiftWidth: Int
    public let paddedTemporal: Int, paddedHeight: Int, paddedWidth: Int
    public let windowCount: Int
    public let tokensPerWindow: Int
    /// [windowCount * tokensPerWindow]: index into the unpadded grid, or -1 for a padding token.
    public let sourceIndex: [Int32]

    public init(grid: [Int], window: [Int], shift: [Int]) {
        precondition(grid.count == 3 && window.count == 3 && shift.count == 3)
        precondition(zip(shift, window).allSatisfy { $0 >= 0 && $0 < $1 }, "shift \(shift) must be in [0, window \(window))")
        (gridTemporal, gridHeight, gridWidth) = (grid[0], grid[1], grid[2])
        (windowSizeTemporal, windowSizeHeight, windowSizeWidth) = (window[0], window[1], window[2])
        (shiftTemporal, shiftHeight, shiftWidth) = (shift[0], shift[1], shift[2])
        func padded(_ size: Int, _ window: Int) -> Int { (size + window - 1) / window * window }
        paddedTemporal = padded(grid[0], window[0])
        paddedHeight = padded(grid[1], window[1])
        paddedWidth = padded(grid[2], window[2])
        let windowsT = paddedTemporal / window[0], windowsH = paddedHeight / window[1], windowsW = paddedWidth / window[2]
        windowCount = windowsT * windowsH * windowsW
        tokensPerWindow = window[0] * window[1] * window[2]
        var map = [Int32](repeating: -1, count: windowCount * tokensPerWindow)
        var position = 0
        for wt in 0..<windowsT { for wh in 0..<windowsH { for ww in 0..<windowsW {
            for it in 0..<window[0] { for ih in 0..<window[1] { for iw in 0..<window[2] {
                // Rolled coordinate (wt*Wt + it) holds padded coordinate (that + shift) mod padded size.
                let t = (wt * window[0] + it + shift[0]) % paddedTemporal
                let h = (wh * window[1] + ih + shift[1]) % paddedHeight
                let w = (ww * window[2] + iw + shift[2]) % paddedWidth
                if t < grid[0] && h < grid[1] && w < grid[2] {
                    map[position] = Int32((t * grid[1] + h) * grid[2] + w)
                }
                position += 1
            }}}
        }}}
        sourceIndex = map
    }

    /// Coordinates (t, h, w) of windowed token `position` in the rolled, padded grid (where the references paint their shift masks).
    @inline(__always)
    public func rolledCoordinates(_ position: Int) -> (Int, Int, Int) {
        let window = position / tokensPerWindow, token = position % tokensPerWindow
        let windowsH = paddedHeight / windowSizeHeight, windowsW = paddedWidth / windowSizeWidth
        let wt = window / (windowsH * windowsW), wh = (window / windowsW) % windowsH, ww = window % windowsW
        let it = token / (windowSizeHeight * windowSizeWidth)
        let ih = (token / windowSizeWidth) % windowSizeHeight, iw = token % windowSizeWidth
        return (wt * windowSizeTemporal + it, wh * windowSizeHeight + ih, ww * windowSizeWidth + iw)
    }

    /// windows[windowCount * tokensPerWindow, channels] ← x[grid tokens, channels]; padding is zero.
    public func partition(_ x: UnsafePointer<Float>, channels: Int, into windows: UnsafeMutablePointer<Float>) {
        gather(x, channels: channels, into: windows) { source, destination in
            destination.update(from: source, count: channels)
        }
    }

    /// `partition` of LayerNorm(x) in one pass: each token is normalised straight into its window row
    /// (padding stays zero, as the references pad after the norm).
    public func partitionLayerNorm(_ x: UnsafePointer<Float>, channels: Int, weight: UnsafePointer<Float>,
                                   bias: UnsafePointer<Float>, eps: Float, into windows: UnsafeMutablePointer<Float>) {
        gather(x, channels: channels, into: windows) { source, destination in
            layerNormRow(source, dim: channels, weight: weight, bias: bias, eps: eps, into: destination)
        }
    }

    /// `partitionLayerNorm` of the windowed positions `positions` only (rows of `windows` start at
    /// the first of them), on the calling thread: one window's rows inside a worker.
    public func partitionLayerNorm(_ x: UnsafePointer<Float>, positions: Range<Int>, channels: Int, weight: UnsafePointer<Float>,
                                   bias: UnsafePointer<Float>, eps: Float, into windows: UnsafeMutablePointer<Float>) {
        gather(x, positions: positions, channels: channels, into: windows) { source, destination in
            layerNormRow(source, dim: channels, weight: weight, bias: bias, eps: eps, into: destination)
        }
    }

    @inline(__always)
    func gather(_ x: UnsafePointer<Float>, channels: Int, into windows: UnsafeMutablePointer<Float>,
                _ row: (_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<Float>) -> Void) {
        Parallel.forRanges(sourceIndex.count, minimum: 1024) { range in
            gather(x, positions: range, channels: channels, into: windows + range.lowerBound * channels, row)
        }
    }

    /// `row(source, destination)` for the windowed positions `positions` (rows of `windows` start at
    /// the first of them), on the calling thread; padding positions are zeroed.
    @inline(__always)
    func gather(_ x: UnsafePointer<Float>, positions: Range<Int>, channels: Int, into windows: UnsafeMutablePointer<Float>,
                _ row: (_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<Float>) -> Void) {
        sourceIndex.withUnsafeBufferPointer { map in
            for position in positions {
                let destination = windows + (position - positions.lowerBound) * channels
                let source = Int(map[position])
                if source >= 0 {
                    row(x + source * channels, destination)
                } else {
                    destination.update(repeating: 0, count: channels)
                }
            }
        }
    }

    /// x[grid tokens, channels] += windows[...] (+ bias) for every non-padding token: the reverse of
    /// `partition` fused with the residual connection and the preceding linear layer's bias.
    public func reverseAdd(_ windows: UnsafePointer<Float>, channels: Int, bias: UnsafePointer<Float>? = nil,
                           into x: UnsafeMutablePointer<Float>) {
        // Each grid token appears once, so ranges of windowed positions write disjoint rows.
        Parallel.forRanges(sourceIndex.count, minimum: 1024) { range in
            reverseAdd(windows + range.lowerBound * channels, positions: range, channels: channels, bias: bias, into: x)
        }
    }

    /// `reverseAdd` of the windowed positions `positions` only (rows of `windows` start at the first
    /// of them), on the calling thread.
    public func reverseAdd(_ windows: UnsafePointer<Float>, positions: Range<Int>, channels: Int, bias: UnsafePointer<Float>? = nil,
                           into x: UnsafeMutablePointer<Float>) {
        sourceIndex.withUnsafeBufferPointer { map in
            for position in positions {
                let source = Int(map[position])
                if source < 0 { continue }
                let target = x + source * channels
                let row = windows + (position - positions.lowerBound) * channels
                if let bias {
                    for c in 0..<channels { target[c] += row[c] + bias[c] }
                } else {
                    for c in 0..<channels { target[c] += row[c] }
                }
            }
        }
    }
}

/// torch.roll over the three leading axes of x: [T, H, W, C]: y[(t + shiftT) mod T, ...] = x[t, ...].
public func roll3d(_ x: UnsafePointer<Float>, shape: [Int], shifts: [Int], into y: UnsafeMutablePointer<Float>) {
    precondition(shape.count == 4 && shifts.count == 3)
    let (sizeT, sizeH, sizeW, channels) = (shape[0], shape[1], shape[2], shape[3])
    func wrap(_ value: Int, _ size: Int) -> Int { ((value % size) + size) % size }
    for t in 0..<sizeT { for h in 0..<sizeH { for w in 0..<sizeW {
        let target = (wrap(t + shifts[0], sizeT) * sizeH + wrap(h + shifts[1], sizeH)) * sizeW + wrap(w + shifts[2], sizeW)
        (y + target * channels).update(from: x + ((t * sizeH + h) * sizeW + w) * channels, count: channels)
    }}}
}

/// Depthwise 3D convolution (Conv3d with groups = channels, stride 1, zero padding k/2: the
/// output grid equals the input grid) on channels-last tokens, as UniFormer's position encoding
/// (3x3x3) and local aggregation (5x5x5) use it.
///
/// x, y: [T, H, W, C]; weight: [k·k·k, C] (tap-major: the PyTorch weight [C, 1, k, k, k]
/// transposed, see `depthwiseTaps`); bias: [C].
/// y[t, h, w, c] = residual[t, h, w, c] + bias[c] + Σ weight[(dt·k + dh)·k + dw, c] · x[t+dt-p, h+dh-p, w+dw-p, c]
/// with p = k/2 and zeros outside the grid. `residual` may be x itself (y = x + conv(x)); y must not alias x.
///
/// Work items are (channel block, output frame) pairs spread over the `Parallel` pool; blocks are 16
/// channels (one 64-byte cache line of a token), then 8, then a scalar tail. Each output vector is
/// accumulated in registers over all taps, four neighbouring outputs along W at a time so that each
/// weight vector is loaded once per four outputs; border outputs take the bounds-checked path.
public func depthwiseConv3d(_ x: UnsafePointer<Float>, grid: [Int], channels c: Int, kernel k: Int,
                            weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                            residual: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>) {
    precondition(grid.count == 3 && k % 2 == 1 && k > 0, "grid must be [T, H, W] and the kernel odd")
    let (sizeT, sizeH, sizeW) = (grid[0], grid[1], grid[2])
    // Channel blocks as (offset, width): 16-wide, at most one 8-wide, at most one narrower tail.
    var blocks: [(offset: Int, width: Int)] = stride(from: 0, to: c - c % 16, by: 16).map { ($0, 16) }
    if c % 16 >= 8 { blocks.append((c - c % 16, 8)) }
    if c % 8 > 0 { blocks.append((c - c % 8, c % 8)) }
    Parallel.forRanges(blocks.count * sizeT) { range in
        for item in range {
            let (offset, width) = blocks[item / sizeT], t = item % sizeT
            switch width {
            case 16:
                depthwiseFrame(SIMD16<Float>.self, x, sizeT: sizeT, sizeH: sizeH, sizeW: sizeW, channels: c, offset: offset, t: t,
                               kernel: k, weight: weight, bias: bias, residual: residual, into: y)
            case 8:
                depthwiseFrame(SIMD8<Float>.self, x, sizeT: sizeT, sizeH: sizeH, sizeW: sizeW, channels: c, offset: offset, t: t,
                               kernel: k, weight: weight, bias: bias, residual: residual, into: y)
            default:
                depthwiseFrameScalar(x, sizeT: sizeT, sizeH: sizeH, sizeW: sizeW, channels: c, offset: offset, count: width,
                                     t: t, kernel: k, weight: weight, bias: bias, residual: residual, into: y)
            }
        }
    }
}

/// PyTorch depthwise Conv3d weight [C, 1, k, k, k] → tap-major [k³, C] for `depthwiseConv3d`.
public func depthwiseTaps(_ weight: UnsafePointer<Float>, channels c: Int, taps: Int, into out: UnsafeMutablePointer<Float>) {
    for channel in 0..<c {
        for tap in 0..<taps { out[tap * c + channel] = weight[channel * taps + tap] }
    }
}

/// One output frame t of the channel block [offset, offset + V.scalarCount).
@inline(__always)
private func depthwiseFrame<V: SIMD>(_: V.Type, _ x: UnsafePointer<Float>, sizeT: Int, sizeH: Int, sizeW: Int, channels c: Int,
                                     offset: Int, t: Int, kernel k: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                     residual: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>) where V.Scalar == Float {
    @inline(__always) func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    let p = k / 2
    let biasVector = load(bias + offset)
    let dtLow = max(0, p - t), dtHigh = min(k, sizeT + p - t)
    let weights = weight + offset
    // Outputs w in [p, sizeW - p) read columns w - p ... w + p, all inside the grid.
    let interiorLow = min(p, sizeW), interiorHigh = max(interiorLow, sizeW - p)
    for h in 0..<sizeH {
        let dhLow = max(0, p - h), dhHigh = min(k, sizeH + p - h)
        let rowOut = ((t * sizeH + h) * sizeW) * c + offset

        /// Bounds-checked single output at column w.
        @inline(__always) func single(_ w: Int) {
            var acc = biasVector
            let dwLow = max(0, p - w), dwHigh = min(k, sizeW + p - w)
            for dt in dtLow..<dtHigh {
                for dh in dhLow..<dhHigh {
                    let source = x + (((t + dt - p) * sizeH + (h + dh - p)) * sizeW + (w - p)) * c + offset
                    let taps = weights + ((dt * k + dh) * k) * c
                    for dw in dwLow..<dwHigh { acc = acc.addingProduct(load(taps + dw * c), load(source + dw * c)) }
                }
            }
            store(acc, at: rowOut + w * c)
        }
        @inline(__always) func store(_ value: V, at index: Int) {
            var out = value
            if let residual { out += load(residual + index) }
            UnsafeMutableRawPointer(y + index).storeBytes(of: out, as: V.self)
        }

        var w = 0
        while w < interiorLow { single(w); w += 1 }
        while w + 4 <= interiorHigh {
            var a0 = biasVector, a1 = biasVector, a2 = biasVector, a3 = biasVector
            for dt in dtLow..<dtHigh {
                for dh in dhLow..<dhHigh {
                    var source = x + (((t + dt - p) * sizeH + (h + dh - p)) * sizeW + (w - p)) * c + offset
                    var taps = weights + ((dt * k + dh) * k) * c
                    for _ in 0..<k {
                        let tap = load(taps)
                        a0 = a0.addingProduct(tap, load(source))
                        a1 = a1.addingProduct(tap, load(source + c))
                        a2 = a2.addingProduct(tap, load(source + 2 * c))
                        a3 = a3.addingProduct(tap, load(source + 3 * c))
                        source += c
                        taps += c
                    }
                }
            }
            store(a0, at: rowOut + w * c)
            store(a1, at: rowOut + (w + 1) * c)
            store(a2, at: rowOut + (w + 2) * c)
            store(a3, at: rowOut + (w + 3) * c)
            w += 4
        }
        while w < sizeW { single(w); w += 1 }
    }
}

/// Channels [offset, offset + count) of output frame t, one value at a time (count < 8).
private func depthwiseFrameScalar(_ x: UnsafePointer<Float>, sizeT: Int, sizeH: Int, sizeW: Int, channels c: Int, offset: Int,
                                  count: Int, t: Int, kernel k: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                  residual: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>) {
    let p = k / 2
    for h in 0..<sizeH {
        for w in 0..<sizeW {
            let index = ((t * sizeH + h) * sizeW + w) * c
            for channel in offset..<(offset + count) {
                var acc = bias[channel]
                for dt in 0..<k where t + dt - p >= 0 && t + dt - p < sizeT {
                    for dh in 0..<k where h + dh - p >= 0 && h + dh - p < sizeH {
                        for dw in 0..<k where w + dw - p >= 0 && w + dw - p < sizeW {
                            let source = (((t + dt - p) * sizeH + (h + dh - p)) * sizeW + (w + dw - p)) * c + channel
                            acc += weight[((dt * k + dh) * k + dw) * c + channel] * x[source]
                        }
                    }
                }
                y[index + channel] = (residual?[index + channel] ?? 0) + acc
            }
        }
    }
}

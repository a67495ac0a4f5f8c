/// LayerNorm over the last axis, as `torch.nn.functional.layer_norm`: biased variance, eps inside the sqrt.
/// x, y: [rows, dim] (may alias); weight, bias: [dim].
public func layerNorm(_ x: UnsafePointer<Float>, rows: Int, dim: Int,
                      weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, eps: Float,
                      into y: UnsafeMutablePointer<Float>) {
    Parallel.forRanges(rows, minimum: 256) { range in
        for r in range {
            layerNormRow(x + r * dim, dim: dim, weight: weight, bias: bias, eps: eps, into: y + r * dim)
        }
    }
}

/// One row of `layerNorm`, for callers that fuse it into another pass (serial).
@inline(__always)
public func layerNormRow(_ x: UnsafePointer<Float>, dim: Int, weight: UnsafePointer<Float>,
                  bias: UnsafePointer<Float>, eps: Float, into y: UnsafeMutablePointer<Float>) {
    // Two passes in fp32 with 8 lanes: mean, then centred variance (stable for large means).
    var sum8 = SIMD8<Float>()
    var i = 0
    while i + 8 <= dim {
        sum8 += UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
        i += 8
    }
    var sum = sum8.sum()
    while i < dim { sum += x[i]; i += 1 }
    let mean = sum / Float(dim)
    var sq8 = SIMD8<Float>()
    i = 0
    let mean8 = SIMD8<Float>(repeating: mean)
    while i + 8 <= dim {
        let d = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self) - mean8
        sq8 = sq8.addingProduct(d, d)
        i += 8
    }
    var sq = sq8.sum()
    while i < dim { let d = x[i] - mean; sq += d * d; i += 1 }
    let inverseStd = 1 / (sq / Float(dim) + eps).squareRoot()
    for j in 0..<dim {
        y[j] = (x[j] - mean) * inverseStd * weight[j] + bias[j]
    }
}

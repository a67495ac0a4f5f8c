import CTubeletGemm

/// Elementwise maths: vectorised exp, exact (erf) GELU, tanh GELU and row softmax.

/// exp on 8 lanes: Cody-Waite range reduction and the Cephes expf polynomial (about 1 ulp on
/// [-87, 88]); inputs are clamped to that range, so exp(-100) returns ~1e-38 rather than 0,
/// which is immaterial beside a softmax row's maximum term of 1.
@inline(__always)
public func exp8(_ input: SIMD8<Float>) -> SIMD8<Float> {
    // Clamp with lane selects: the generic SIMD min/max/clamped are not specialised and are slow.
    let low = SIMD8<Float>(repeating: -87.33), high = SIMD8<Float>(repeating: 88.37)
    var x = input.replacing(with: low, where: input .< low)
    x = x.replacing(with: high, where: x .> high)
    // Adding 1.5·2²³ rounds x·log2(e) to the nearest integer n and leaves n in the low mantissa
    // bits, so 2ⁿ is built from the bits without a (slow, generic) float-to-int conversion.
    let magic = SIMD8<Float>(repeating: 12582912)
    let shifted = x * 1.44269504088896341 + magic
    let n = shifted - magic
    var r = x - n * 0.693359375
    r = r - n * -2.12194440e-4
    var p = SIMD8<Float>(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    p = p * (r * r) + r + 1
    let exponent = (unsafeBitCast(shifted, to: SIMD8<Int32>.self) &+ 127) &<< 23
    return p * unsafeBitCast(exponent, to: SIMD8<Float>.self)
}

/// GELU as `torch.nn.GELU()` (approximate='none'): 0.5·x·(1 + erf(x/√2)), in place. The C
/// `tubelet_gelu_rows`, the same function as the packed GEMM's GELU epilogue (erf by a rational
/// approximation, absolute error about 3e-7).
public func geluExact(_ x: UnsafeMutablePointer<Float>, count: Int) {
    // Split into rows of `width` so that workers take whole rows (at least 4 each).
    let width = 8192, rows = count / width, tail = count - rows * width
    Parallel.forRanges(rows, minimum: 4) { range in
        tubelet_gelu_rows(x + range.lowerBound * width, Int32(range.count), Int32(width), width, nil)
    }
    if tail > 0 { tubelet_gelu_rows(x + rows * width, 1, Int32(tail), tail, nil) }
}

/// x[r, j] = GELU(x[r, j] + bias[j]) (exact GELU) for x: [rows, width], in place, on the calling
/// thread: a linear layer's bias and its activation in one pass (for use inside a worker).
public func addBiasGeluExact(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int, bias: UnsafePointer<Float>) {
    tubelet_gelu_rows(x, Int32(rows), Int32(width), width, bias)
}

/// GELU with the tanh approximation (`gelu_pytorch_tanh`, "gelu_fast"), in place:
/// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
public func geluTanh(_ x: UnsafeMutablePointer<Float>, count: Int) {
    @inline(__always) func gelu(_ v: SIMD8<Float>) -> SIMD8<Float> {
        let inner = 0.7978845608028654 * (v + 0.044715 * v * v * v)
        // tanh(u) = 1 - 2 / (exp(2u) + 1); exp8 clamps, so large |u| saturate to ±1.
        let tanh = 1 - 2 / (exp8(2 * inner) + 1)
        return 0.5 * v * (1 + tanh)
    }
    Parallel.forRanges(count / 8, minimum: 4096) { range in
        for v in range {
            let p = UnsafeMutableRawPointer(x + v * 8)
            p.storeBytes(of: gelu(p.loadUnaligned(as: SIMD8<Float>.self)), as: SIMD8<Float>.self)
        }
    }
    for i in (count / 8 * 8)..<count {
        var lanes = SIMD8<Float>(repeating: 0)
        lanes[0] = x[i]
        x[i] = gelu(lanes)[0]
    }
}

/// Replaces a row by exp(x - max(x)) and returns Σ exp(x - max): a softmax without its division,
/// for callers that divide a smaller product instead. In C (`tubelet_exponentiate_row`): exp as
/// 2^((x - max)·log2 e) with a degree-6 polynomial (relative error about 1e-7), not `exp8`.
@inline(__always)
public func exponentiateRow(_ x: UnsafeMutablePointer<Float>, count: Int) -> Float {
    tubelet_exponentiate_row(x, Int32(count))
}

/// Softmax of one row in place: exp(x - max) / Σ.
@inline(__always)
public func softmaxRow(_ x: UnsafeMutablePointer<Float>, count: Int) {
    let inverse = 1 / exponentiateRow(x, count: count)
    for j in 0..<count { x[j] *= inverse }
}

/// Softmax over the last axis of x: [rows, count], in place.
public func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, count: Int) {
    Parallel.forRanges(rows, minimum: 64) { range in
        for r in range { softmaxRow(x + r * count, count: count) }
    }
}

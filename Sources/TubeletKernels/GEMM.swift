#if TUBELET_BLAS_BLIS
import CBLIS
#else
import CBLAS
#endif

/// C[m, n] = alpha * op(A) * op(B) + beta * C through `cblas_sgemm`, row-major.
/// Single-threaded (see `Parallel`): callers split the work.
@inline(__always)
public func sgemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                  alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    _ = Parallel.blasConfigured
    cblas_sgemm(CblasRowMajor,
                transposeA ? CblasTrans : CblasNoTrans,
                transposeB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// y[rows, outFeatures] = x[rows, inFeatures] · weightᵀ + bias, the PyTorch `F.linear` convention
/// (weight is [outFeatures, inFeatures]). With `accumulate`, adds into y instead (a fused residual).
/// Rows are split across the worker threads; each does one single-threaded GEMM.
public func linear(_ x: UnsafePointer<Float>, rows: Int, inFeatures: Int,
                   weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, outFeatures: Int,
                   into y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
    // Below ~64 rows a split costs more than it saves.
    Parallel.forRanges(rows, minimum: 64) { range in
        linearRows(x + range.lowerBound * inFeatures, rows: range.count, inFeatures: inFeatures, weight: weight,
                   bias: bias, outFeatures: outFeatures, into: y + range.lowerBound * outFeatures, accumulate: accumulate)
    }
}

/// `linear` on the calling thread (inside a worker): one single-threaded GEMM, then the bias.
public func linearRows(_ x: UnsafePointer<Float>, rows: Int, inFeatures: Int,
                       weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, outFeatures: Int,
                       into y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
    sgemm(transposeA: false, transposeB: true, m: rows, n: outFeatures, k: inFeatures,
          a: x, lda: inFeatures, b: weight, ldb: inFeatures,
          beta: accumulate ? 1 : 0, c: y, ldc: outFeatures)
    if let bias {
        for r in 0..<rows {
            let row = y + r * outFeatures
            for j in 0..<outFeatures { row[j] += bias[j] }
        }
    }
}

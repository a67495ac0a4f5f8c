import CTubeletGemm
import Foundation

/// Which GEMM the linear layers and window attention use: our packed-panel AVX2 kernel
/// (`CTubeletGemm`, default) or cblas for every product (`TUBELET_GEMM=blas`, for comparison in
/// the same build, e.g. `TUBELET_GEMM=blas tubelet bench`).
public enum GEMMBackend {
    public static let packed: Bool = ProcessInfo.processInfo.environment["TUBELET_GEMM"] != "blas"
}

/// A GEMM right-hand side B [k, n] packed once into 16-column panels (`tubelet_pack_b`).
public final class PackedMatrix: @unchecked Sendable {
    public let k: Int, n: Int
    let storage: Tensor
    public var data: UnsafePointer<Float> { UnsafePointer(storage.data) }

    /// Floats a packed [k, n] matrix takes.
    public static func floats(k: Int, n: Int) -> Int { Int(tubelet_packed_floats(Int32(k), Int32(n))) }

    /// A PyTorch linear weight [outFeatures, inFeatures] (y = x·Wᵀ), as B = Wᵀ [in, out].
    public init(linearWeight weight: UnsafePointer<Float>, outFeatures: Int, inFeatures: Int) {
        k = inFeatures
        n = outFeatures
        storage = Tensor(uninitialized: [PackedMatrix.floats(k: k, n: n)])
        packB(weight, strideK: 1, strideN: inFeatures, k: k, n: n, into: storage.data)
    }
}

/// Packs B [k, n], element (kk, j) at b[kk·strideK + j·strideN], into `packed`
/// (`PackedMatrix.floats(k:n:)` floats).
@inline(__always)
public func packB(_ b: UnsafePointer<Float>, strideK: Int, strideN: Int, k: Int, n: Int,
                  into packed: UnsafeMutablePointer<Float>) {
    tubelet_pack_b(b, strideK, strideN, Int32(k), Int32(n), packed)
}

/// C[m, n] = alpha·rowScale[i]·(A·B) (+ C if accumulate) + addend + bias, then GELU if asked;
/// B packed by `packB`. The addend's row i is at addend + i·addendStride, or at addendRows[i] where
/// given. Single-threaded: callers split rows.
@inline(__always)
public func gemmPacked(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b packed: UnsafePointer<Float>,
                       c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, accumulate: Bool = false,
                       addend: UnsafePointer<Float>? = nil, addendStride: Int = 0,
                       addendRows: UnsafePointer<UnsafePointer<Float>?>? = nil,
                       bias: UnsafePointer<Float>? = nil, rowScale: UnsafePointer<Float>? = nil, gelu: Bool = false) {
    var epilogue = tubelet_epilogue(alpha: alpha, accumulate: accumulate ? 1 : 0, addend: addend,
                                    addendStride: addendStride, addendRows: addendRows, bias: bias,
                                    rowScale: rowScale, gelu: gelu ? 1 : 0)
    tubelet_sgemm_packed(Int32(m), Int32(n), Int32(k), a, lda, packed, c, ldc, &epilogue)
}

/// y[rows, n] (+)= x[rows, k] · B + bias (then GELU), B a packed linear weight; rows are split
/// across the worker threads.
public func linearPacked(_ x: UnsafePointer<Float>, rows: Int, weight: PackedMatrix, bias: UnsafePointer<Float>?,
                         into y: UnsafeMutablePointer<Float>, accumulate: Bool = false, gelu: Bool = false) {
    let (k, n) = (weight.k, weight.n)
    Parallel.claimRowBlocks(rows) { next in
        while let block = next() {
            gemmPacked(m: block.count, n: n, k: k, a: x + block.lowerBound * k, lda: k, b: weight.data,
                       c: y + block.lowerBound * n, ldc: n, accumulate: accumulate, bias: bias, gelu: gelu)
        }
    }
}

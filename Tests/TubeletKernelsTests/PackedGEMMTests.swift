import Foundation
import XCTest
import TubeletKernels

/// Our packed-panel GEMM against a naive loop in Double: shapes with partial register tiles (m not
/// a multiple of 6, n not a multiple of 16), several k blocks (k over 512), strided operands, and
/// every epilogue step; and the property streaming reuse relies on: a row's result does not depend
/// on how many rows the call had or where the row sat.
final class PackedGEMMTests: XCTestCase {
    var generator = SplitMix64(seed: 11)

    func random(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -1...1, using: &generator) } }

    func gelu(_ x: Double) -> Double { 0.5 * x * (1 + erf(x / 2.0.squareRoot())) }

    func testMatchesNaiveLoopWithEveryEpilogue() {
        let shapes: [(m: Int, n: Int, k: Int)] = [(1, 1, 1), (7, 17, 5), (13, 96, 96), (50, 40, 1100), (6, 16, 512), (97, 33, 513)]
        for (m, n, k) in shapes {
            let lda = k + 3, ldc = n + 5
            let a = random(m * lda), w = random(n * k), initial = random(m * ldc), addend = random(m * n)
            let bias = random(n), rowScale = random(m)
            let packed = PackedMatrix(linearWeight: w, outFeatures: n, inFeatures: k)
            for variant in 0..<5 {
                let alpha: Float = variant == 1 ? 0.37 : 1
                let accumulate = variant == 2 || variant == 4
                let useAddend = variant == 3, useBias = variant >= 2, useGelu = variant == 4, useRowScale = variant == 1
                var c = initial
                a.withUnsafeBufferPointer { a in addend.withUnsafeBufferPointer { addend in
                    bias.withUnsafeBufferPointer { bias in rowScale.withUnsafeBufferPointer { rowScale in
                        c.withUnsafeMutableBufferPointer { c in
                            gemmPacked(m: m, n: n, k: k, a: a.baseAddress!, lda: lda, b: packed.data, c: c.baseAddress!, ldc: ldc,
                                       alpha: alpha, accumulate: accumulate, addend: useAddend ? addend.baseAddress : nil,
                                       addendStride: n, bias: useBias ? bias.baseAddress : nil,
                                       rowScale: useRowScale ? rowScale.baseAddress : nil, gelu: useGelu)
                        }
                    }}
                }}
                var worst = 0.0
                for i in 0..<m {
                    for j in 0..<n {
                        var sum = 0.0
                        for kk in 0..<k { sum += Double(a[i * lda + kk]) * Double(w[j * k + kk]) }
                        var value = Double(alpha) * (useRowScale ? Double(rowScale[i]) : 1) * sum
                        if accumulate { value += Double(initial[i * ldc + j]) }
                        if useAddend { value += Double(addend[i * n + j]) }
                        if useBias { value += Double(bias[j]) }
                        if useGelu { value = gelu(value) }
                        worst = max(worst, abs(value - Double(c[i * ldc + j])) / max(1, abs(value)))
                    }
                    // Padding between rows is never written.
                    for j in n..<ldc { XCTAssertEqual(c[i * ldc + j], initial[i * ldc + j], "m \(m) n \(n) k \(k): wrote past n") }
                }
                XCTAssertLessThan(worst, 2e-5, "m \(m) n \(n) k \(k) variant \(variant)")
            }
        }
    }

    func testPackingAStridedOperand() {
        // B given transposed inside wider rows (keys of one head in a qkv buffer): B[kk, j] = keys[j · 24 + 8 + kk].
        let (m, n, k, rowWidth) = (11, 21, 8, 24)
        let a = random(m * k), keys = random(n * rowWidth)
        var packed = [Float](repeating: .nan, count: PackedMatrix.floats(k: k, n: n))
        var c = [Float](repeating: 0, count: m * n)
        keys.withUnsafeBufferPointer { keys in
            packed.withUnsafeMutableBufferPointer { packB(keys.baseAddress! + 8, strideK: 1, strideN: rowWidth, k: k, n: n, into: $0.baseAddress!) }
        }
        a.withUnsafeBufferPointer { a in packed.withUnsafeBufferPointer { b in c.withUnsafeMutableBufferPointer { c in
            gemmPacked(m: m, n: n, k: k, a: a.baseAddress!, lda: k, b: b.baseAddress!, c: c.baseAddress!, ldc: n)
        }}}
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for kk in 0..<k { sum += Double(a[i * k + kk]) * Double(keys[j * rowWidth + 8 + kk]) }
                XCTAssertEqual(Double(c[i * n + j]), sum, accuracy: 1e-5)
            }
        }
    }

    func testPackedLayout() {
        // Panel p holds rows kk of B[kk, 16p ..< 16p + 16], zero past n; both stride orders, with k
        // and n off the 8x8 blocks the transposing path copies by.
        for (k, n) in [(19, 21), (32, 392), (8, 8), (5, 3)] {
            let rowWidth = k + 7
            let source = random(max(n, k) * rowWidth)
            for transposed in [true, false] {
                let (strideK, strideN) = transposed ? (1, rowWidth) : (rowWidth, 1)
                var packed = [Float](repeating: .nan, count: PackedMatrix.floats(k: k, n: n))
                source.withUnsafeBufferPointer { b in packed.withUnsafeMutableBufferPointer {
                    packB(b.baseAddress! + 2, strideK: strideK, strideN: strideN, k: k, n: n, into: $0.baseAddress!)
                }}
                for p in 0..<(n + 15) / 16 {
                    for kk in 0..<k {
                        for j in 0..<16 {
                            let column = p * 16 + j
                            let expected = column < n ? source[2 + kk * strideK + column * strideN] : 0
                            XCTAssertEqual(packed[(p * k + kk) * 16 + j], expected, "k \(k) n \(n) strideK \(strideK): (\(kk), \(column))")
                        }
                    }
                }
            }
        }
    }

    func testRowResultsDoNotDependOnTheCall() {
        let (m, n, k) = (61, 70, 600)
        let a = random(m * k), w = random(n * k), bias = random(n)
        let packed = PackedMatrix(linearWeight: w, outFeatures: n, inFeatures: k)
        func run(rows: Range<Int>) -> [Float] {
            var c = [Float](repeating: 0, count: rows.count * n)
            a.withUnsafeBufferPointer { a in bias.withUnsafeBufferPointer { bias in c.withUnsafeMutableBufferPointer { c in
                gemmPacked(m: rows.count, n: n, k: k, a: a.baseAddress! + rows.lowerBound * k, lda: k, b: packed.data,
                           c: c.baseAddress!, ldc: n, bias: bias.baseAddress, gelu: true)
            }}}
            return c
        }
        let all = run(rows: 0..<m)
        for rows in [0..<1, 5..<6, 13..<20, 40..<61, 59..<61] {
            XCTAssertEqual(run(rows: rows), Array(all[rows.lowerBound * n..<rows.upperBound * n]), "rows \(rows)")
        }
    }

    func testExponentiateRow() {
        // Spread-out scores, far from zero (the max's rounding must not scale the row), and a shift
        // mask's -100 on every third score (exp underflows there: about 0, never garbage).
        let rows: [[Float]] = [1, 7, 8, 9, 392].map { random($0).map { $0 * 30 } }
            + [random(392).map { $0 * 30 + 500 }]
            + [random(392).enumerated().map { $0.offset % 3 == 0 ? $0.element - 100 : $0.element }]
        for original in rows {
            let count = original.count
            var row = original
            let sum = row.withUnsafeMutableBufferPointer { exponentiateRow($0.baseAddress!, count: count) }
            let maximum = Double(original.max()!)
            var expectedSum = 0.0
            for j in 0..<count {
                let expected = Foundation.exp(Double(original[j]) - maximum)
                expectedSum += expected
                XCTAssertEqual(Double(row[j]), expected, accuracy: 1e-6 * max(1, expected))
            }
            XCTAssertEqual(Double(sum), expectedSum, accuracy: 1e-5 * expectedSum)
        }
    }
}

import Foundation
import XCTest
import TubeletKernels

/// Each kernel against a naive loop in Double.
final class KernelTests: XCTestCase {
    var generator = SplitMix64(seed: 42)

    func randomTensor(_ shape: [Int], scale: Float = 1) -> Tensor {
        let t = Tensor(uninitialized: shape)
        for i in 0..<t.count { t[i] = Float.random(in: -scale...scale, using: &generator) }
        return t
    }

    func assertClose(_ a: Tensor, _ b: [Double], tolerance: Double, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        var worst = 0.0
        for i in 0..<a.count { worst = max(worst, abs(Double(a[i]) - b[i]) / max(1, abs(b[i]))) }
        XCTAssertLessThanOrEqual(worst, tolerance, message, file: file, line: line)
    }

    func testLinearMatchesNaiveLoop() {
        for (rows, inFeatures, outFeatures) in [(1, 5, 3), (37, 17, 9), (300, 64, 48)] {
            let x = randomTensor([rows, inFeatures]), w = randomTensor([outFeatures, inFeatures]), b = randomTensor([outFeatures])
            let y = Tensor(zeros: [rows, outFeatures])
            linear(x.data, rows: rows, inFeatures: inFeatures, weight: w.data, bias: b.data, outFeatures: outFeatures, into: y.data)
            var expected = [Double](repeating: 0, count: rows * outFeatures)
            for r in 0..<rows { for o in 0..<outFeatures {
                var s = Double(b[o])
                for i in 0..<inFeatures { s += Double(x[r * inFeatures + i]) * Double(w[o * inFeatures + i]) }
                expected[r * outFeatures + o] = s
            }}
            assertClose(y, expected, tolerance: 1e-5, "linear \(rows)x\(inFeatures)x\(outFeatures)")
            // accumulate: y += x·Wᵀ + b
            linear(x.data, rows: rows, inFeatures: inFeatures, weight: w.data, bias: b.data, outFeatures: outFeatures, into: y.data, accumulate: true)
            assertClose(y, expected.map { 2 * $0 }, tolerance: 1e-5, "linear accumulate")
        }
    }

    func testStridedGemmWithAlpha() {
        // q·kᵀ on rows strided inside a wider matrix, as windowed attention does.
        let (n, d, stride) = (13, 6, 20)
        let qk = randomTensor([n, stride]), out = Tensor(zeros: [n, n])
        sgemm(transposeA: false, transposeB: true, m: n, n: n, k: d, alpha: 0.5, a: qk.data, lda: stride,
              b: qk.data + 7, ldb: stride, c: out.data, ldc: n)
        var expected = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n {
            var s = 0.0
            for k in 0..<d { s += Double(qk[i * stride + k]) * Double(qk[j * stride + 7 + k]) }
            expected[i * n + j] = 0.5 * s
        }}
        assertClose(out, expected, tolerance: 1e-6)
    }

    func testLayerNormMatchesNaiveLoop() {
        for dim in [7, 16, 96, 131] {
            let rows = 33
            let x = randomTensor([rows, dim], scale: 3), w = randomTensor([dim]), b = randomTensor([dim])
            for i in 0..<x.count { x[i] += 10 }  // a large mean must not hurt the variance
            let y = Tensor(zeros: [rows, dim])
            layerNorm(x.data, rows: rows, dim: dim, weight: w.data, bias: b.data, eps: 1e-5, into: y.data)
            var expected = [Double](repeating: 0, count: rows * dim)
            for r in 0..<rows {
                let row = (0..<dim).map { Double(x[r * dim + $0]) }
                let mean = row.reduce(0, +) / Double(dim)
                let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(dim)
                for j in 0..<dim { expected[r * dim + j] = (row[j] - mean) / (variance + 1e-5).squareRoot() * Double(w[j]) + Double(b[j]) }
            }
            assertClose(y, expected, tolerance: 2e-5, "layerNorm dim \(dim)")
        }
    }

    func testSoftmaxMatchesNaiveLoop() {
        for count in [1, 5, 8, 49, 392] {
            let rows = 9
            let x = randomTensor([rows, count], scale: 20)
            if count > 3 { x[2] = -100 }  // masked entries as Swin uses them
            var expected = [Double](repeating: 0, count: rows * count)
            for r in 0..<rows {
                let row = (0..<count).map { Double(x[r * count + $0]) }
                let m = row.max()!
                let e = row.map { Foundation.exp($0 - m) }
                let s = e.reduce(0, +)
                for j in 0..<count { expected[r * count + j] = e[j] / s }
            }
            softmaxRows(x.data, rows: rows, count: count)
            var worst = 0.0
            for i in 0..<x.count { worst = max(worst, abs(Double(x[i]) - expected[i])) }
            XCTAssertLessThan(worst, 1e-6, "softmax \(count)")
        }
    }

    func testExpIsAccurate() {
        var worst = 0.0
        var x: Float = -87
        while x < 88 {
            let lanes = SIMD8<Float>((0..<8).map { x + Float($0) * 0.0137 })
            let e = exp8(lanes)
            for i in 0..<8 {
                let exact = Foundation.exp(Double(lanes[i]))
                worst = max(worst, abs(Double(e[i]) - exact) / exact)
            }
            x += 0.173
        }
        XCTAssertLessThan(worst, 3e-7)
    }

    func testGeluExactAndTanhMatchDefinitions() {
        let n = 1000
        let x = Tensor(uninitialized: [n])
        for i in 0..<n { x[i] = Float(i - n / 2) * 0.02 }  // [-10, 10)
        let exact = x.copy(), tanhApproximation = x.copy()
        geluExact(exact.data, count: n)
        geluTanh(tanhApproximation.data, count: n)
        var expectedExact = [Double](), expectedTanh = [Double]()
        for i in 0..<n {
            let v = Double(x[i])
            expectedExact.append(0.5 * v * (1 + Foundation.erf(v / 2.0.squareRoot())))
            expectedTanh.append(0.5 * v * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v))))
        }
        var worstExact = 0.0, worstTanh = 0.0
        for i in 0..<n {
            worstExact = max(worstExact, abs(Double(exact[i]) - expectedExact[i]))
            worstTanh = max(worstTanh, abs(Double(tanhApproximation[i]) - expectedTanh[i]))
        }
        XCTAssertLessThan(worstExact, 2e-6)
        XCTAssertLessThan(worstTanh, 2e-6)
        // The two GELUs really differ: a kernel that mixed them up would fail here.
        XCTAssertGreaterThan(abs(exact[n / 2 + 50] - tanhApproximation[n / 2 + 50]), 1e-5)
    }

    /// The bias + GELU pass other models' linear layers use: widths with a sub-8 tail, bias added
    /// before the activation, every row (the packed GEMM's epilogue is tested in PackedGEMMTests).
    func testAddBiasGeluMatchesDefinition() {
        for width in [5, 8, 13, 96] {
            let rows = 3
            let x = randomTensor([rows, width], scale: 6), bias = randomTensor([width], scale: 2)
            let y = x.copy()
            addBiasGeluExact(y.data, rows: rows, width: width, bias: bias.data)
            var expected = [Double]()
            for r in 0..<rows {
                for j in 0..<width {
                    let v = Double(x[r * width + j] + bias[j])
                    expected.append(0.5 * v * (1 + Foundation.erf(v / 2.0.squareRoot())))
                }
            }
            assertClose(y, expected, tolerance: 2e-6, "bias + GELU width \(width)")
        }
    }

    /// Naive pad → torch.roll(-shift) → partition, element by element.
    func naivePartition(_ x: Tensor, grid: [Int], window: [Int], shift: [Int], channels: Int) -> [Float] {
        let padded = zip(grid, window).map { ($0 + $1 - 1) / $1 * $1 }
        func value(_ t: Int, _ h: Int, _ w: Int, _ c: Int) -> Float {
            // rolled[i] = padded[(i + shift) % P]
            let (st, sh, sw) = ((t + shift[0]) % padded[0], (h + shift[1]) % padded[1], (w + shift[2]) % padded[2])
            if st >= grid[0] || sh >= grid[1] || sw >= grid[2] { return 0 }
            return x[((st * grid[1] + sh) * grid[2] + sw) * channels + c]
        }
        var out: [Float] = []
        for wt in 0..<padded[0] / window[0] { for wh in 0..<padded[1] / window[1] { for ww in 0..<padded[2] / window[2] {
            for it in 0..<window[0] { for ih in 0..<window[1] { for iw in 0..<window[2] {
                for c in 0..<channels { out.append(value(wt * window[0] + it, wh * window[1] + ih, ww * window[2] + iw, c)) }
            }}}
        }}}
        return out
    }

    func testWindowPartitionAndReverseMatchNaive() {
        let channels = 3
        for (grid, window, shift) in [([5, 9, 7], [2, 3, 3], [1, 1, 1]), ([4, 7, 7], [4, 7, 7], [0, 0, 0]),
                                      ([9, 15, 15], [8, 7, 7], [4, 3, 3]), ([3, 4, 6], [3, 4, 3], [0, 0, 1])] {
            let x = randomTensor(grid + [channels])
            let partition = WindowPartition(grid: grid, window: window, shift: shift)
            let windows = Tensor(zeros: [partition.windowCount * partition.tokensPerWindow, channels])
            partition.partition(x.data, channels: channels, into: windows.data)
            XCTAssertEqual(windows.array, naivePartition(x, grid: grid, window: window, shift: shift, channels: channels), "\(grid) \(window) \(shift)")
            // reverseAdd of the partition onto zeros gives back x exactly (padding dropped, roll undone).
            let back = Tensor(zeros: x.shape)
            partition.reverseAdd(windows.data, channels: channels, into: back.data)
            XCTAssertEqual(back.array, x.array)
        }
    }

    func testRollMatchesDefinition() {
        let shape = [3, 4, 5, 2]
        let x = randomTensor(shape), y = Tensor(zeros: shape)
        roll3d(x.data, shape: shape, shifts: [-1, 2, -3], into: y.data)
        for t in 0..<3 { for h in 0..<4 { for w in 0..<5 { for c in 0..<2 {
            let target = (((t - 1 + 3) % 3 * 4 + (h + 2) % 4) * 5 + (w - 3 + 5) % 5) * 2 + c
            XCTAssertEqual(y[target], x[((t * 4 + h) * 5 + w) * 2 + c])
        }}}}
    }
}

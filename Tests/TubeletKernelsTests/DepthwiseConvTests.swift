import Foundation
import XCTest
import TubeletKernels

/// `depthwiseConv3d` against a naive loop in Double, on grids that exercise every path: 8-channel
/// blocks and a scalar channel tail, four-wide interior tiles and bounds-checked borders, grids
/// smaller than the kernel, with and without a residual.
final class DepthwiseConvTests: XCTestCase {
    func testDepthwiseConv3dMatchesNaiveLoop() {
        var generator = SplitMix64(seed: 7)
        func random(_ count: Int) -> Tensor {
            let t = Tensor(uninitialized: [count])
            for i in 0..<count { t[i] = Float.random(in: -1...1, using: &generator) }
            return t
        }
        let cases: [(grid: [Int], channels: Int, kernel: Int)] = [
            ([4, 7, 13], 16, 5), ([3, 5, 9], 12, 3), ([2, 2, 3], 8, 5), ([5, 6, 11], 3, 5), ([1, 1, 1], 9, 3), ([8, 4, 4], 24, 3),
        ]
        for (grid, c, k) in cases {
            let (sizeT, sizeH, sizeW) = (grid[0], grid[1], grid[2])
            let n = grid.reduce(1, *), taps = k * k * k
            let x = random(n * c), torchWeight = random(c * taps), bias = random(c), residual = random(n * c)
            let weight = Tensor(uninitialized: [taps, c])
            depthwiseTaps(torchWeight.data, channels: c, taps: taps, into: weight.data)
            var expected = [Double](repeating: 0, count: n * c)
            let p = k / 2
            for t in 0..<sizeT { for h in 0..<sizeH { for w in 0..<sizeW { for ch in 0..<c {
                var sum = Double(bias[ch])
                for dt in 0..<k { for dh in 0..<k { for dw in 0..<k {
                    let (tt, hh, ww) = (t + dt - p, h + dh - p, w + dw - p)
                    guard tt >= 0 && tt < sizeT && hh >= 0 && hh < sizeH && ww >= 0 && ww < sizeW else { continue }
                    // PyTorch weight [C, 1, k, k, k]
                    sum += Double(torchWeight[ch * taps + (dt * k + dh) * k + dw]) * Double(x[((tt * sizeH + hh) * sizeW + ww) * c + ch])
                }}}
                expected[((t * sizeH + h) * sizeW + w) * c + ch] = sum
            }}}}
            for withResidual in [false, true] {
                let y = Tensor(zeros: [n * c])
                depthwiseConv3d(x.data, grid: grid, channels: c, kernel: k, weight: weight.data, bias: bias.data,
                                residual: withResidual ? UnsafePointer(residual.data) : nil, into: y.data)
                var worst = 0.0
                for i in 0..<(n * c) {
                    let reference = expected[i] + (withResidual ? Double(residual[i]) : 0)
                    worst = max(worst, abs(Double(y[i]) - reference))
                }
                XCTAssertLessThanOrEqual(worst, 1e-5, "grid \(grid), \(c) channels, kernel \(k), residual \(withResidual)")
            }
        }
    }
}

import TubeletKernels
import XCTest

/// Parity with a reference implementation: max|Δ| ≤ 1e-4 · max(1, max|expected|), what every model
/// family's logits are held to.
func assertParity(_ actual: Tensor, _ expected: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "\(what): element count", file: file, line: line)
    guard actual.count == expected.count else { return }
    var worst: Float = 0, largest: Float = 0
    for i in 0..<actual.count {
        worst = max(worst, abs(actual[i] - expected[i]))
        largest = max(largest, abs(expected[i]))
    }
    XCTAssertLessThanOrEqual(worst, 1e-4 * max(1, largest), "\(what): max|Δ| \(worst), max|expected| \(largest)", file: file, line: line)
}

import TubeletLoading
import XCTest

final class RawTensorTests: XCTestCase {
    /// Every one of the 65536 half-precision bit patterns decodes exactly like the standard library's Float16.
    func testHalfDecodingIsExactForEveryBitPattern() throws {
        #if arch(x86_64) || arch(arm64)
        let patterns = (0...UInt16.max).map { $0 }
        let bytes = patterns.flatMap { p in withUnsafeBytes(of: p.littleEndian) { Array($0) } }
        let decoded = try RawTensor(dtype: .f16, shape: [patterns.count], bytes: bytes).floats().array
        for (p, value) in zip(patterns, decoded) {
            let reference = Float(Float16(bitPattern: p))
            if reference.isNaN {
                XCTAssertTrue(value.isNaN, "0x\(String(p, radix: 16))")
                XCTAssertEqual(value.sign, reference.sign)
            } else {
                XCTAssertEqual(value.bitPattern, reference.bitPattern, "0x\(String(p, radix: 16))")
            }
        }
        #endif
    }

    func testBFloat16AndIntegerConversions() throws {
        let bf16: [UInt16] = [0x3F80, 0xC049, 0x0001, 0x7F80, 0xFF80, 0x7FC0, 0x8000]
        let values = try RawTensor(dtype: .bf16, shape: [7], bytes: bf16.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }).floats().array
        XCTAssertEqual(values[0], 1)
        XCTAssertEqual(values[1], -3.140625)
        XCTAssertEqual(values[2], Float(bitPattern: 0x0001_0000))  // subnormal
        XCTAssertEqual(values[3], .infinity)
        XCTAssertEqual(values[4], -.infinity)
        XCTAssertTrue(values[5].isNaN)
        XCTAssertEqual(values[6].bitPattern, 0x8000_0000)

        let i8 = RawTensor(dtype: .i8, shape: [3], bytes: [0xFF, 0x80, 0x7F])
        XCTAssertEqual(try i8.int64s(), [-1, -128, 127])
        XCTAssertEqual(try i8.floats().array, [-1, -128, 127])
        XCTAssertEqual(try RawTensor(dtype: .bool, shape: [2], bytes: [0, 2]).floats().array, [0, 1])
        XCTAssertThrowsError(try RawTensor(dtype: .f32, shape: [1], bytes: [0, 0, 0, 0]).int64s())
    }
}

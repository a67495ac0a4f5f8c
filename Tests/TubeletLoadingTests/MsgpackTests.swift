import Foundation
import TubeletKernels
import TubeletLoading
import XCTest

/// The flax msgpack reader: what flax.serialization.to_bytes writes, and malformed input as LoadError.
final class MsgpackTests: XCTestCase {
    // A minimal encoder for the test documents.
    func str(_ s: String) -> [UInt8] {
        let b = Array(s.utf8)
        precondition(b.count < 32)
        return [0xa0 | UInt8(b.count)] + b
    }
    func bin32(_ b: [UInt8]) -> [UInt8] { [0xc6] + be32(b.count) + b }
    func be32(_ n: Int) -> [UInt8] { [UInt8(n >> 24 & 0xff), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] }
    func map(_ entries: [([UInt8], [UInt8])]) -> [UInt8] { [0x80 | UInt8(entries.count)] + entries.flatMap { $0.0 + $0.1 } }
    func ext(_ type: Int8, _ payload: [UInt8]) -> [UInt8] { [0xc9] + be32(payload.count) + [UInt8(bitPattern: type)] + payload }
    /// flax _ndarray_to_bytes: msgpack (shape, dtype name, bytes) in ext type 1.
    func ndarray(_ shape: [Int], _ dtype: String, _ data: [UInt8], type: Int8 = 1) -> [UInt8] {
        let payload = [0x93, 0x90 | UInt8(shape.count)] + shape.map { UInt8($0) } + str(dtype) + bin32(data)
        return ext(type, payload)
    }
    func floats(_ values: [Float]) -> [UInt8] { values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } } }

    var document: [UInt8] {
        map([(str("params"), map([(str("dense"), map([(str("kernel"), ndarray([2, 3], "float32", floats([1, 2, 3, 4, 5, -6])))])),
                                  (str("scale"), ndarray([], "float32", floats([0.5]), type: 2))])),
             (str("step"), [0xcd, 0x01, 0x00])])
    }

    func testFlaxTreeIsRead() throws {
        let tensors = try FlaxCheckpoint.decode(bytes: document, file: "doc.msgpack")
        XCTAssertEqual(tensors.map(\.name), ["params/dense/kernel", "params/scale"])
        XCTAssertEqual(tensors[0].tensor.shape, [2, 3])
        XCTAssertEqual(try tensors[0].tensor.floats().array, [1, 2, 3, 4, 5, -6])
        XCTAssertEqual(tensors[1].tensor.shape, [])
        XCTAssertEqual(try tensors[1].tensor.floats().array, [0.5])
    }

    func assertLoadError(_ bytes: [UInt8], _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try FlaxCheckpoint.decode(bytes: bytes, file: "bad.msgpack"), file: file, line: line) { error in
            guard let error = error as? LoadError else { return XCTFail("not a LoadError: \(error)", file: file, line: line) }
            XCTAssertEqual(error.file, "bad.msgpack", file: file, line: line)
            XCTAssertTrue(error.description.contains(fragment), "'\(error)' does not mention '\(fragment)'", file: file, line: line)
        }
    }

    func testEveryTruncationIsALoadError() {
        let bytes = document
        for length in 0..<bytes.count {
            XCTAssertThrowsError(try FlaxCheckpoint.decode(bytes: Array(bytes.prefix(length)), file: "cut.msgpack")) { error in
                XCTAssertTrue(error is LoadError, "\(error)")
            }
        }
        assertLoadError(Array(bytes.dropLast()), "remain")
    }

    func testLengthsPastTheEnd() {
        assertLoadError([0xc6, 0xff, 0xff, 0xff, 0xff, 0x00], "bin32 payload needs 4294967295 bytes, only 1 remain")
        assertLoadError([0xdd, 0x7f, 0xff, 0xff, 0xff], "array of 2147483647 elements")
        assertLoadError([0xdf, 0xff, 0xff, 0xff, 0xff], "map of 4294967295 entries")
        assertLoadError([0xdb, 0x00, 0x01, 0x00, 0x00, 0x41], "string needs 65536 bytes")
        // An array whose data is shorter than its shape says.
        assertLoadError(map([(str("w"), ndarray([2, 3], "float32", floats([1, 2, 3, 4, 5])))]), "needs 24 bytes, the payload holds 20")
    }

    /// A shape whose element count fits an Int but whose byte count does not used to trap while
    /// formatting the error message (count * 8).
    func testByteCountOverflowIsALoadError() {
        let dim: [UInt8] = [0xce, 0x7f, 0xff, 0xff, 0xff]  // uint32 2^31 - 1
        let payload = [0x93, 0x93] + dim + dim + [0x02] + str("float64") + bin32([])
        assertLoadError(map([(str("w"), ext(1, payload))]), "needs more than Int.max bytes")
    }

    func testUnknownExtTypeAndOtherGarbage() {
        assertLoadError(map([(str("w"), ext(5, [0x90]))]), "ext type 5")
        assertLoadError([0xc1], "invalid type byte 0xc1")
        assertLoadError(map([(str("w"), ndarray([2], "complex64", floats([1, 2, 3, 4])))]), "dtype 'complex64' is not supported")
        assertLoadError(document + [0x00], "trailing bytes")
        assertLoadError([UInt8](repeating: 0x91, count: 200) + [0x00], "nesting deeper")
        assertLoadError(map([([0xc4, 0x01, 0x41], ndarray([1], "float32", floats([1])))]), "key under")
    }

    /// Seeded random corruption of a valid document: a LoadError or a tree, never a crash.
    func testRandomCorruptionNeverCrashes() {
        var generator = SplitMix64(seed: 7)
        let original = document
        for _ in 0..<2000 {
            var bytes = original
            for _ in 0..<3 { bytes[Int(generator.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: generator.next()) }
            do { _ = try FlaxCheckpoint.decode(bytes: bytes, file: "fuzz.msgpack") } catch {
                XCTAssertTrue(error is LoadError, "\(error)")
            }
        }
    }
}

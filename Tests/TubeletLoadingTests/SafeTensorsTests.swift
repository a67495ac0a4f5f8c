import Foundation
import TubeletKernels
import TubeletLoading
import XCTest

final class SafeTensorsTests: XCTestCase {
    func testWriterRoundTrip() throws {
        let dir = try TemporaryDirectory()
        let path = dir.url.appendingPathComponent("round.safetensors").path
        let weights = Tensor(shape: [2, 3], values: [1, -2, 3.5, .infinity, -0.0, Float(bitPattern: 0x3FF)])
        let index: [Int64] = [-1, 0, 1 << 40]
        let indexBytes = index.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        try SafeTensorsWriter.write([
            .init(name: "weights", tensor: weights),
            .init(name: "index", dtype: .i64, shape: [3], bytes: indexBytes),
            .init(name: "empty", dtype: .f16, shape: [0, 4], bytes: []),
            .init(name: "name with \"quotes\" and ü", dtype: .u8, shape: [1], bytes: [7]),
        ], metadata: ["format": "pt", "note": "line\nbreak"], to: path)

        // Header is padded so the data section starts at a multiple of 8.
        let raw = try Data(contentsOf: URL(fileURLWithPath: path))
        let headerLength = raw.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        XCTAssertEqual(headerLength % 8, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".tmp"))

        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.names, ["weights", "index", "empty", "name with \"quotes\" and ü"])
        XCTAssertEqual(file.metadata, ["format": "pt", "note": "line\nbreak"])
        let back = try XCTUnwrap(file.tensor("weights"))
        XCTAssertEqual(back.dtype, .f32)
        XCTAssertEqual(back.shape, [2, 3])
        assertSameFloats(try back.floats().array, weights.array.map(\.bitPattern), "weights")
        XCTAssertEqual(try XCTUnwrap(file.tensor("index")).int64s(), index)
        XCTAssertEqual(try XCTUnwrap(file.tensor("empty")).count, 0)
        XCTAssertEqual(try XCTUnwrap(file.tensor("name with \"quotes\" and ü")).int64s(), [7])
        XCTAssertNil(file.tensor("missing"))
        XCTAssertThrowsError(try back.int64s())
    }

    func testWriterRejectsBadEntries() throws {
        let dir = try TemporaryDirectory()
        let path = dir.url.appendingPathComponent("bad.safetensors").path
        assertLoadError(path, contains: "needs 8 bytes") {
            try SafeTensorsWriter.write([.init(name: "a", dtype: .f32, shape: [2], bytes: [0, 0, 0])], metadata: [:], to: path)
        }
        assertLoadError(path, contains: "duplicate") {
            try SafeTensorsWriter.write([.init(name: "a", dtype: .u8, shape: [1], bytes: [0]),
                                         .init(name: "a", dtype: .u8, shape: [1], bytes: [0])], metadata: [:], to: path)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.url.path), [], "no temp files left behind")
    }

    /// The Python safetensors library's file: every tensor matches torch's own float32 conversion.
    func testFixtureMatchesExpectedValues() throws {
        let file = try SafeTensorsFile(path: Fixtures.path("weights.safetensors"))
        let expected = try Fixtures.expected()
        XCTAssertEqual(Set(file.names), Set(expected.keys))
        XCTAssertEqual(file.metadata, ["format": "pt"])
        for (name, want) in expected {
            let tensor = try XCTUnwrap(file.tensor(name), name)
            XCTAssertEqual(tensor.shape, want.shape, name)
            XCTAssertEqual(tensor.dtype, torchDType(want.torchDType), name)
            assertSameFloats(try tensor.floats().array, want.floatBits, name)
            if let ints = want.int64s { XCTAssertEqual(try tensor.int64s(), ints, name) }
        }
    }

    // MARK: malformed files — each must be a LoadError naming the file, never a crash

    /// Builds a safetensors file from a header string and a data section.
    private func file(header: String, data: [UInt8], declaredLength: UInt64? = nil) -> [UInt8] {
        let json = Array(header.utf8)
        var bytes: [UInt8] = []
        bytes.appendLE(declaredLength ?? UInt64(json.count))
        return bytes + json + data
    }

    private func assertRejected(_ bytes: [UInt8], _ fragment: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("broken.safetensors", bytes)
        assertLoadError(path, contains: fragment, file: file, line: line) { try SafeTensorsFile(path: path) }
    }

    private let eight = [UInt8](repeating: 1, count: 8)

    func testAcceptsWellFormedHandBuiltFile() throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("ok.safetensors", file(header: #"{"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: eight))
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(f.names, ["b", "a"])  // header order, not offset order
    }

    func testOverlappingOffsets() throws {
        try assertRejected(file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#, data: eight), "overlap")
    }

    func testGapInOffsets() throws {
        try assertRejected(file(header: #"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}"#, data: eight), "gap")
    }

    func testTrailingBytesAfterTensors() throws {
        try assertRejected(file(header: #"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#, data: eight), "trailing")
    }

    func testOffsetsOutOfBounds() throws {
        try assertRejected(file(header: #"{"a":{"dtype":"U8","shape":[16],"data_offsets":[0,16]}}"#, data: eight), "past the end")
    }

    func testHeaderLengthLargerThanFile() throws {
        try assertRejected(file(header: "{}", data: [], declaredLength: 1 << 60), "larger than the rest of the file")
    }

    func testTooShortForHeaderLength() throws {
        try assertRejected([1, 2, 3], "at least 8")
    }

    func testBadJSON() throws {
        try assertRejected(file(header: #"{"a":{"dtype":"F32",}"#, data: []), "invalid JSON")
    }

    func testHeaderNotAnObject() throws {
        try assertRejected(file(header: "[1,2]", data: []), "must be a JSON object")
    }

    func testUnknownDType() throws {
        try assertRejected(file(header: #"{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}"#, data: [0]), "unknown dtype \"F8\"")
    }

    func testShapeByteCountMismatch() throws {
        try assertRejected(file(header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: eight), "needs 12 bytes")
    }

    func testNonIntegerShapeAndOffsets() throws {
        try assertRejected(file(header: #"{"a":{"dtype":"U8","shape":[8.0],"data_offsets":[0,8]}}"#, data: eight), "non-negative integers")
        try assertRejected(file(header: #"{"a":{"dtype":"U8","shape":[-8],"data_offsets":[0,8]}}"#, data: eight), "non-negative integers")
        try assertRejected(file(header: #"{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,99999999999999999999999]}}"#, data: eight), "data_offsets")
        try assertRejected(file(header: #"{"a":{"dtype":"F64","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#, data: eight), "overflows")
    }

    func testDuplicateNames() throws {
        try assertRejected(file(header: #"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}"#, data: eight), "duplicate key \"a\"")
    }

    func testBadMetadata() throws {
        try assertRejected(file(header: #"{"__metadata__":{"n":1}}"#, data: []), "must be a string")
    }

    func testEmptyFile() throws {
        try assertRejected([], "empty")
    }

    func testMissingFile() {
        assertLoadError("/nonexistent/nowhere.safetensors", contains: "cannot open") {
            try SafeTensorsFile(path: "/nonexistent/nowhere.safetensors")
        }
    }
}

/// Maps torch dtype names in expected.json to safetensors dtypes.
func torchDType(_ name: String) -> DType? {
    ["float32": .f32, "float16": .f16, "bfloat16": .bf16, "float64": .f64, "int64": .i64, "int32": .i32,
     "int16": .i16, "int8": .i8, "uint8": .u8, "bool": .bool][name]
}

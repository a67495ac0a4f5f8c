import Foundation
import TubeletLoading
import XCTest

enum Fixtures {
    static let directory = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// expected.json from tools/make_loading_fixtures.py: name -> (dtype, shape, float32 bits, int64 values).
    struct Expected {
        let name: String
        let torchDType: String
        let shape: [Int]
        let floatBits: [UInt32]
        let int64s: [Int64]?
    }

    static func expected() throws -> [String: Expected] {
        let data = try Data(contentsOf: directory.appendingPathComponent("expected.json"))
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: [String: Any]])
        var result: [String: Expected] = [:]
        for (name, entry) in root {
            let bits = try XCTUnwrap(entry["f32_bits"] as? [NSNumber]).map { UInt32(bitPattern: $0.int32Value) }
            let ints = (entry["int64"] as? [NSNumber])?.map { $0.int64Value }
            result[name] = Expected(name: name, torchDType: try XCTUnwrap(entry["dtype"] as? String),
                                    shape: try XCTUnwrap(entry["shape"] as? [Int]), floatBits: bits, int64s: ints)
        }
        return result
    }
}

/// A fresh temporary directory per test, removed afterwards.
final class TemporaryDirectory {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("tubelet-loading-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }

    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = url.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }
}

/// Asserts that `body` throws a LoadError whose one-line description names `path`'s file and contains `fragment`.
func assertLoadError<T>(_ path: String, contains fragment: String, file: StaticString = #filePath, line: UInt = #line,
                        _ body: () throws -> T) {
    do {
        _ = try body()
        XCTFail("expected a LoadError containing '\(fragment)'", file: file, line: line)
    } catch let error as LoadError {
        let text = error.description
        let fileName = URL(fileURLWithPath: path).lastPathComponent
        XCTAssertTrue(text.contains(fileName), "'\(text)' does not name \(fileName)", file: file, line: line)
        XCTAssertTrue(text.contains(fragment), "'\(text)' does not contain '\(fragment)'", file: file, line: line)
        XCTAssertFalse(text.contains("\n"), "error description should be one line: \(text)", file: file, line: line)
    } catch {
        XCTFail("expected a LoadError, got \(error)", file: file, line: line)
    }
}

/// Compares float32 bit patterns exactly (any NaN matches any NaN).
func assertSameFloats(_ actual: [Float], _ expectedBits: [UInt32], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expectedBits.count, "\(label): count", file: file, line: line)
    for (i, (a, bits)) in zip(actual, expectedBits).enumerated() {
        let e = Float(bitPattern: bits)
        if a.isNaN && e.isNaN { continue }
        if a.bitPattern != bits {
            XCTFail("\(label)[\(i)]: got \(a) (0x\(String(a.bitPattern, radix: 16))), expected \(e) (0x\(String(bits, radix: 16)))", file: file, line: line)
            return
        }
    }
}

/// Little-endian byte helpers for building files in tests.
extension Array where Element == UInt8 {
    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}

/// A minimal zip writer (stored entries, CRC left zero — the reader does not check it) for malformed-input tests.
func makeZip(_ entries: [(name: String, data: [UInt8])], method: UInt16 = 0) -> [UInt8] {
    var body: [UInt8] = [], central: [UInt8] = []
    for (name, data) in entries {
        let nameBytes = Array(name.utf8)
        let offset = UInt32(body.count)
        body.appendLE(UInt32(0x0403_4B50)); body.appendLE(UInt16(20)); body.appendLE(UInt16(0)); body.appendLE(method)
        body.appendLE(UInt32(0)); body.appendLE(UInt32(0))
        body.appendLE(UInt32(data.count)); body.appendLE(UInt32(data.count))
        body.appendLE(UInt16(nameBytes.count)); body.appendLE(UInt16(0))
        body += nameBytes + data
        central.appendLE(UInt32(0x0201_4B50)); central.appendLE(UInt16(20)); central.appendLE(UInt16(20))
        central.appendLE(UInt16(0)); central.appendLE(method); central.appendLE(UInt32(0)); central.appendLE(UInt32(0))
        central.appendLE(UInt32(data.count)); central.appendLE(UInt32(data.count))
        central.appendLE(UInt16(nameBytes.count)); central.appendLE(UInt16(0)); central.appendLE(UInt16(0))
        central.appendLE(UInt16(0)); central.appendLE(UInt16(0)); central.appendLE(UInt32(0)); central.appendLE(offset)
        central += nameBytes
    }
    var out = body + central
    out.appendLE(UInt32(0x0605_4B50)); out.appendLE(UInt16(0)); out.appendLE(UInt16(0))
    out.appendLE(UInt16(entries.count)); out.appendLE(UInt16(entries.count))
    out.appendLE(UInt32(central.count)); out.appendLE(UInt32(body.count)); out.appendLE(UInt16(0))
    return out
}

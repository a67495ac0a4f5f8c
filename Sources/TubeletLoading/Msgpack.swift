import Foundation

/// A decoded MessagePack value (https://github.com/msgpack/msgpack/blob/master/spec.md). Binary
/// payloads (bin, ext) are kept as byte ranges of the input, not copied.
public indirect enum MsgpackValue: Sendable {
    case nil_
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case float(Double)
    case string(String)
    /// Byte range of the input.
    case binary(Range<Int>)
    case array([MsgpackValue])
    /// Keys in file order (flax writes string keys).
    case map([(key: MsgpackValue, value: MsgpackValue)])
    /// Extension type and the byte range of its payload.
    case ext(type: Int8, Range<Int>)

    public var string: String? { if case .string(let s) = self { return s } else { return nil } }
    public var integer: Int? {
        switch self {
        case .int(let v): return Int(exactly: v)
        case .uint(let v): return Int(exactly: v)
        default: return nil
        }
    }
}

/// Bounded, validating MessagePack reader: every length is checked against the bytes that remain
/// before anything is allocated, nesting is limited, and every failure is a LoadError naming the
/// file, the byte offset and what was expected.
public struct MsgpackReader {
    public let bytes: [UInt8]
    public let file: String
    public let maxDepth: Int
    private(set) var offset: Int

    public init(bytes: [UInt8], file: String, offset: Int = 0, maxDepth: Int = 64) {
        self.bytes = bytes
        self.file = file
        self.offset = offset
        self.maxDepth = maxDepth
    }

    func fail(_ message: String, at position: Int? = nil) -> LoadError {
        LoadError(file: file, offset: position ?? offset, message: "msgpack: \(message)")
    }

    /// Decodes exactly one value spanning the whole input (trailing bytes are an error).
    public static func decodeDocument(_ bytes: [UInt8], file: String) throws -> MsgpackValue {
        var reader = MsgpackReader(bytes: bytes, file: file)
        let value = try reader.readValue()
        guard reader.offset == bytes.count else {
            throw reader.fail("\(bytes.count - reader.offset) trailing bytes after the top-level value")
        }
        return value
    }

    /// Decodes one value from the byte range `range` of `bytes` (an ext payload), which it must fill.
    public static func decode(_ bytes: [UInt8], range: Range<Int>, file: String) throws -> MsgpackValue {
        var reader = MsgpackReader(bytes: Array(bytes[range]), file: file)
        do {
            let value = try reader.readValue()
            guard reader.offset == range.count else { throw reader.fail("\(range.count - reader.offset) trailing bytes in the payload") }
            return value
        } catch let error as LoadError {
            // Report offsets in the outer file.
            throw LoadError(file: file, offset: (error.offset ?? 0) + range.lowerBound, message: error.message)
        }
    }

    private var remaining: Int { bytes.count - offset }

    private mutating func take(_ count: Int, _ what: String) throws -> Range<Int> {
        guard count >= 0, count <= remaining else {
            throw fail("\(what) needs \(count) bytes, only \(remaining) remain")
        }
        defer { offset += count }
        return offset..<(offset + count)
    }

    private mutating func uint(_ size: Int, _ what: String) throws -> UInt64 {
        let range = try take(size, what)
        var value: UInt64 = 0
        for i in range { value = value << 8 | UInt64(bytes[i]) }  // big-endian
        return value
    }

    private mutating func length(_ size: Int, _ what: String) throws -> Int {
        let value = try uint(size, "\(what) length")
        guard value <= UInt64(Int.max) else { throw fail("\(what) length \(value) is too large") }
        return Int(value)
    }

    public mutating func readValue() throws -> MsgpackValue { try readValue(depth: 0) }

    private mutating func readValue(depth: Int) throws -> MsgpackValue {
        guard depth <= maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
        let start = offset
        let marker = bytes[try take(1, "a value's type byte").lowerBound]
        switch marker {
        case 0x00...0x7f: return .uint(UInt64(marker))
        case 0xe0...0xff: return .int(Int64(Int8(bitPattern: marker)))
        case 0x80...0x8f: return try readMap(count: Int(marker & 0x0f), depth: depth)
        case 0x90...0x9f: return try readArray(count: Int(marker & 0x0f), depth: depth)
        case 0xa0...0xbf: return try readString(count: Int(marker & 0x1f))
        case 0xc0: return .nil_
        case 0xc2: return .bool(false)
        case 0xc3: return .bool(true)
        case 0xc4: return .binary(try take(try length(1, "bin8"), "bin8 payload"))
        case 0xc5: return .binary(try take(try length(2, "bin16"), "bin16 payload"))
        case 0xc6: return .binary(try take(try length(4, "bin32"), "bin32 payload"))
        case 0xc7, 0xc8, 0xc9:
            let count = try length(marker == 0xc7 ? 1 : marker == 0xc8 ? 2 : 4, "ext")
            let type = Int8(bitPattern: UInt8(try uint(1, "ext type")))
            return .ext(type: type, try take(count, "ext payload"))
        case 0xca: return .float(Double(Float(bitPattern: UInt32(try uint(4, "float32")))))
        case 0xcb: return .float(Double(bitPattern: try uint(8, "float64")))
        case 0xcc: return .uint(try uint(1, "uint8"))
        case 0xcd: return .uint(try uint(2, "uint16"))
        case 0xce: return .uint(try uint(4, "uint32"))
        case 0xcf: return .uint(try uint(8, "uint64"))
        case 0xd0: return .int(Int64(Int8(truncatingIfNeeded: try uint(1, "int8"))))
        case 0xd1: return .int(Int64(Int16(truncatingIfNeeded: try uint(2, "int16"))))
        case 0xd2: return .int(Int64(Int32(truncatingIfNeeded: try uint(4, "int32"))))
        case 0xd3: return .int(Int64(bitPattern: try uint(8, "int64")))
        case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
            let count = 1 << Int(marker - 0xd4)
            let type = Int8(bitPattern: UInt8(try uint(1, "fixext type")))
            return .ext(type: type, try take(count, "fixext payload"))
        case 0xd9: return try readString(count: try length(1, "str8"))
        case 0xda: return try readString(count: try length(2, "str16"))
        case 0xdb: return try readString(count: try length(4, "str32"))
        case 0xdc: return try readArray(count: try length(2, "array16"), depth: depth)
        case 0xdd: return try readArray(count: try length(4, "array32"), depth: depth)
        case 0xde: return try readMap(count: try length(2, "map16"), depth: depth)
        case 0xdf: return try readMap(count: try length(4, "map32"), depth: depth)
        default:  // 0xc1 is never used
            throw fail(String(format: "invalid type byte 0x%02x", marker), at: start)
        }
    }

    private mutating func readString(count: Int) throws -> MsgpackValue {
        let start = offset
        let range = try take(count, "string")
        guard let text = String(validating: bytes[range], as: UTF8.self) else { throw fail("string is not valid UTF-8", at: start) }
        return .string(text)
    }

    private mutating func readArray(count: Int, depth: Int) throws -> MsgpackValue {
        // Every element takes at least one byte: a count beyond the remaining bytes is corrupt.
        guard count <= remaining else { throw fail("array of \(count) elements, only \(remaining) bytes remain") }
        var items: [MsgpackValue] = []
        items.reserveCapacity(count)
        for _ in 0..<count { items.append(try readValue(depth: depth + 1)) }
        return .array(items)
    }

    private mutating func readMap(count: Int, depth: Int) throws -> MsgpackValue {
        guard count <= remaining / 2 else { throw fail("map of \(count) entries, only \(remaining) bytes remain") }
        var entries: [(key: MsgpackValue, value: MsgpackValue)] = []
        entries.reserveCapacity(count)
        for _ in 0..<count {
            let key = try readValue(depth: depth + 1)
            entries.append((key, try readValue(depth: depth + 1)))
        }
        return .map(entries)
    }
}

/// flax checkpoints: `flax.serialization.to_bytes(tree)` — nested maps with string keys, arrays as
/// msgpack ext type 1 (`_MsgpackExtType.ndarray`) and numpy scalars as ext type 2, each payload
/// itself msgpack of (shape, dtype name, C-order little-endian bytes) (flax
/// serialization._ndarray_to_bytes / _ndarray_from_bytes).
public enum FlaxCheckpoint {
    /// Reads a flax msgpack file into "a/b/c" paths → tensors.
    public static func read(path: String) throws -> [(name: String, tensor: RawTensor)] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LoadError(file: path, message: "cannot read the file")
        }
        return try decode(bytes: [UInt8](data), file: path)
    }

    public static func decode(bytes: [UInt8], file: String) throws -> [(name: String, tensor: RawTensor)] {
        let root = try MsgpackReader.decodeDocument(bytes, file: file)
        var out: [(name: String, tensor: RawTensor)] = []
        func walk(_ value: MsgpackValue, _ path: String) throws {
            switch value {
            case .map(let entries):
                for (key, child) in entries {
                    guard let name = key.string ?? key.integer.map(String.init) else {
                        throw LoadError(file: file, message: "flax tree: key under '\(path)' is not a string")
                    }
                    try walk(child, path.isEmpty ? name : path + "/" + name)
                }
            case .ext(let type, let range):
                guard type == 1 || type == 2 else {
                    throw LoadError(file: file, offset: range.lowerBound,
                                    message: "flax tree: '\(path)' is msgpack ext type \(type); expected 1 (ndarray) or 2 (numpy scalar)")
                }
                out.append((path, try ndarray(bytes, range: range, file: file, path: path)))
            case .nil_, .bool, .int, .uint, .float, .string, .binary, .array:
                break  // non-array leaves (step counters, empty states) carry no weights
            }
        }
        try walk(root, "")
        return out
    }

    /// One ext-1 payload: msgpack (shape: [int], dtype: str, data: bin).
    static func ndarray(_ bytes: [UInt8], range: Range<Int>, file: String, path: String) throws -> RawTensor {
        func fail(_ message: String) -> LoadError {
            LoadError(file: file, offset: range.lowerBound, message: "flax array '\(path)': \(message)")
        }
        guard case .array(let parts) = try MsgpackReader.decode(bytes, range: range, file: file), parts.count == 3 else {
            throw fail("expected an ext payload of (shape, dtype, bytes)")
        }
        guard case .array(let dims) = parts[0] else { throw fail("shape is not an array") }
        var shape: [Int] = []
        for dim in dims {
            guard let n = dim.integer, n >= 0, n <= Int(Int32.max) else { throw fail("shape \(dims) has an invalid dimension") }
            shape.append(n)
        }
        guard let dtypeName = parts[1].string else { throw fail("dtype is not a string") }
        let dtypes: [String: DType] = ["float32": .f32, "float64": .f64, "float16": .f16, "bfloat16": .bf16,
                                       "int64": .i64, "int32": .i32, "int16": .i16, "int8": .i8, "uint8": .u8, "bool": .bool]
        guard let dtype = dtypes[dtypeName] else { throw fail("dtype '\(dtypeName)' is not supported") }
        guard case .binary(let dataRange) = parts[2] else { throw fail("data is not a msgpack bin") }
        var count = 1
        for n in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: n)
            guard !overflow else { throw fail("shape \(shape) overflows") }
            count = product
        }
        // The message must not multiply either: count * byteSize can overflow even when count does not.
        let (needed, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, needed == dataRange.count else {
            throw fail("shape \(shape) of \(dtypeName) needs \(overflow ? "more than Int.max" : String(needed)) bytes, the payload holds \(dataRange.count)")
        }
        // dataRange is relative to the payload.
        let absolute = (range.lowerBound + dataRange.lowerBound)..<(range.lowerBound + dataRange.upperBound)
        return RawTensor(dtype: dtype, shape: shape, bytes: Array(bytes[absolute]), source: "\(file):\(path)")
    }
}

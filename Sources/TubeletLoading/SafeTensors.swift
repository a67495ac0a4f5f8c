/// A memory-mapped .safetensors file, validated completely when opened:
/// header length, JSON shape, dtypes, shapes, byte counts, and that the tensors
/// tile the data section exactly (no overlaps, no gaps, nothing past the end).
public final class SafeTensorsFile: @unchecked Sendable {
    public let path: String
    public let metadata: [String: String]
    /// Tensor names in header order.
    public let names: [String]
    private let tensors: [String: RawTensor]

    /// Headers beyond this are not plausible (the reference implementation uses the same cap).
    static let maxHeaderLength = 100_000_000

    public init(path: String) throws {
        self.path = path
        let file = try MappedFile(path: path)
        let bytes = file.region.buffer
        func fail(_ offset: Int?, _ message: String) -> LoadError { LoadError(file: path, offset: offset, message: message) }

        guard file.size >= 8 else {
            throw fail(0, "file is \(file.size) bytes, expected at least 8 (the header length)")
        }
        let declared = bytes.u64(0)
        guard declared <= UInt64(file.size - 8) else {
            throw fail(0, "header length \(declared) is larger than the rest of the file (\(file.size - 8) bytes)")
        }
        guard declared <= UInt64(Self.maxHeaderLength) else {
            throw fail(0, "header length \(declared) exceeds the \(Self.maxHeaderLength)-byte limit")
        }
        let headerLength = Int(declared)
        let dataStart = 8 + headerLength
        let dataLength = file.size - dataStart

        let header: JSONValue
        do {
            header = try JSONParser.parse(UnsafeRawBufferPointer(rebasing: bytes[8..<dataStart]))
        } catch {
            throw fail(8 + error.offset, "invalid JSON header: \(error.message)")
        }
        guard case .object(let members) = header else {
            throw fail(8, "header must be a JSON object, found \(header.kindName)")
        }

        var placements: [TensorPlacement] = []
        var metadata: [String: String] = [:]
        for (name, value) in members {
            if name == "__metadata__" {
                guard case .object(let pairs) = value else {
                    throw fail(8, "__metadata__ must be an object of strings, found \(value.kindName)")
                }
                for (key, item) in pairs {
                    guard case .string(let text) = item else {
                        throw fail(8, "__metadata__[\"\(key)\"] must be a string, found \(item.kindName)")
                    }
                    metadata[key] = text
                }
                continue
            }
            placements.append(try Self.parseEntry(name: name, value: value, fail: fail))
        }
        // Duplicate names are rejected by the JSON parser (duplicate object keys).

        // Sorted by begin, the tensors must tile [0, dataLength) exactly.
        let sorted = placements.sorted { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var expected = 0
        for p in sorted {
            if p.begin < expected {
                throw fail(dataStart + p.begin, "tensor '\(p.name)' data_offsets [\(p.begin), \(p.end)] overlap the previous tensor, which ends at \(expected)")
            }
            if p.begin > expected {
                throw fail(dataStart + expected, "gap in the data section: tensor '\(p.name)' starts at \(p.begin), expected \(expected)")
            }
            if p.end > dataLength {
                throw fail(dataStart + p.begin, "tensor '\(p.name)' data_offsets [\(p.begin), \(p.end)] run past the end of the data section (\(dataLength) bytes)")
            }
            expected = p.end
        }
        if expected != dataLength {
            throw fail(dataStart + expected, "data section is \(dataLength) bytes but the tensors cover only \(expected) (trailing bytes)")
        }

        let region = file.region
        var tensors: [String: RawTensor] = [:]
        for p in placements {
            tensors[p.name] = RawTensor(dtype: p.dtype, shape: p.shape,
                                        region: region.slice(dataStart + p.begin, p.end - p.begin),
                                        source: "\(path): \(p.name)")
        }
        self.tensors = tensors
        self.names = placements.map(\.name)
        self.metadata = metadata
    }

    public func tensor(_ name: String) -> RawTensor? { tensors[name] }

    private static func parseEntry(name: String, value: JSONValue,
                                   fail: (Int?, String) -> LoadError) throws -> TensorPlacement {
        guard case .object(let fields) = value else {
            throw fail(8, "tensor '\(name)' must be an object, found \(value.kindName)")
        }
        func field(_ key: String) throws -> JSONValue {
            guard let v = fields.first(where: { $0.key == key })?.value else {
                throw fail(8, "tensor '\(name)' has no \"\(key)\"")
            }
            return v
        }
        guard case .string(let dtypeName) = try field("dtype") else {
            throw fail(8, "tensor '\(name)': dtype must be a string")
        }
        guard let dtype = DType(rawValue: dtypeName) else {
            let known = DType.allCases.map(\.rawValue).joined(separator: ", ")
            throw fail(8, "tensor '\(name)': unknown dtype \"\(dtypeName)\" (expected one of \(known))")
        }
        guard case .array(let dims) = try field("shape") else {
            throw fail(8, "tensor '\(name)': shape must be an array")
        }
        var shape: [Int] = []
        var numel = 1
        for dim in dims {
            guard case .integer(let d) = dim, d >= 0 else {
                throw fail(8, "tensor '\(name)': shape entries must be non-negative integers, found \(dim.kindName)")
            }
            let (product, overflow) = numel.multipliedReportingOverflow(by: d)
            guard !overflow else { throw fail(8, "tensor '\(name)': shape \(dims.count)-d product overflows") }
            numel = product
            shape.append(d)
        }
        guard case .array(let offsets) = try field("data_offsets"), offsets.count == 2,
              case .integer(let begin) = offsets[0], case .integer(let end) = offsets[1] else {
            throw fail(8, "tensor '\(name)': data_offsets must be [begin, end] integers")
        }
        guard begin >= 0, end >= begin else {
            throw fail(8, "tensor '\(name)': data_offsets [\(begin), \(end)] must satisfy 0 <= begin <= end")
        }
        let (byteCount, overflow) = numel.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, end - begin == byteCount else {
            throw fail(8, "tensor '\(name)': shape \(shape) of \(dtype.rawValue) needs \(overflow ? "too many" : String(byteCount)) bytes but data_offsets [\(begin), \(end)] span \(end - begin)")
        }
        return TensorPlacement(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }
}

/// One header entry: where a tensor's bytes sit in the data section.
struct TensorPlacement {
    let name: String
    let dtype: DType
    let shape: [Int]
    let begin: Int
    let end: Int
}

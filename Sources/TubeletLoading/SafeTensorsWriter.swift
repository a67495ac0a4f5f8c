#if canImport(Glibc)
import Glibc
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
import Darwin
private let systemWrite = Darwin.write
#endif
import TubeletKernels

/// Writes .safetensors files that `SafeTensorsFile` (and the Python library) accept.
public enum SafeTensorsWriter {
    public struct Entry {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        public let bytes: [UInt8]

        public init(name: String, dtype: DType, shape: [Int], bytes: [UInt8]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
            self.bytes = bytes
        }

        /// An F32 entry holding a copy of `tensor`'s values.
        public init(name: String, tensor: Tensor) {
            let bytes = [UInt8](UnsafeRawBufferPointer(start: tensor.data, count: tensor.count * MemoryLayout<Float>.size))
            self.init(name: name, dtype: .f32, shape: tensor.shape, bytes: bytes)
        }
    }

    /// Writes atomically: into a temporary file next to `path`, then renamed over it,
    /// so readers never see a half-written file.
    public static func write(_ entries: [Entry], metadata: [String: String], to path: String) throws {
        func fail(_ message: String) -> LoadError { LoadError(file: path, message: message) }

        var names = Set<String>()
        var header = "{"
        var fields: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }.map { "\(jsonQuoted($0.key)):\(jsonQuoted($0.value))" }
            fields.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        var offset = 0
        for entry in entries {
            guard entry.name != "__metadata__" else { throw fail("'__metadata__' is reserved and cannot name a tensor") }
            guard names.insert(entry.name).inserted else { throw fail("duplicate tensor name '\(entry.name)'") }
            guard entry.shape.allSatisfy({ $0 >= 0 }) else { throw fail("tensor '\(entry.name)' has a negative dimension in \(entry.shape)") }
            let expected = entry.shape.reduce(1, *) * entry.dtype.byteSize
            guard entry.bytes.count == expected else {
                throw fail("tensor '\(entry.name)': shape \(entry.shape) of \(entry.dtype.rawValue) needs \(expected) bytes, got \(entry.bytes.count)")
            }
            let shape = entry.shape.map(String.init).joined(separator: ",")
            fields.append("\(jsonQuoted(entry.name)):{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + expected)]}")
            offset += expected
        }
        header += fields.joined(separator: ",") + "}"
        // Padding to a multiple of 8 keeps the data section 8-byte aligned for readers that map it.
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }

        var prefix = [UInt8](repeating: 0, count: 8)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { prefix = Array($0) }

        let temporary = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var ok = false
        defer {
            if !ok { unlink(temporary) }
        }
        do {
            defer { close(fd) }
            try writeAll(fd, prefix, path: temporary)
            try writeAll(fd, headerBytes, path: temporary)
            for entry in entries { try writeAll(fd, entry.bytes, path: temporary) }
            guard fsync(fd) == 0 else { throw fail("fsync failed: \(String(cString: strerror(errno)))") }
        }
        guard rename(temporary, path) == 0 else {
            throw fail("cannot rename \(temporary) into place: \(String(cString: strerror(errno)))")
        }
        ok = true
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        try bytes.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count {
                let n = systemWrite(fd, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw LoadError(file: path, offset: done, message: "write failed: \(String(cString: strerror(errno)))")
                }
                done += n
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. Tensors borrow its bytes and keep it alive.
final class MappedFile: @unchecked Sendable {
    let path: String
    let base: UnsafeRawPointer
    let size: Int

    init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw LoadError(file: path, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw LoadError(file: path, message: "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw LoadError(file: path, message: "not a regular file")
        }
        size = Int(info.st_size)
        // mmap rejects zero-length maps; an empty file is never a valid model file anyway.
        guard size > 0 else { throw LoadError(file: path, offset: 0, message: "file is empty") }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw LoadError(file: path, message: "cannot mmap \(size) bytes: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(mapped)
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: base), size)
    }

    /// The whole file as a region (callers slice it after bounds checks).
    var region: ByteRegion { ByteRegion(start: base, count: size, owner: self) }
}

/// An immutable run of bytes together with whatever keeps them alive
/// (a `MappedFile`, or nothing when the region owns a heap allocation).
final class ByteRegion: @unchecked Sendable {
    let start: UnsafeRawPointer
    let count: Int
    private let owner: AnyObject?
    private let ownsAllocation: Bool

    init(start: UnsafeRawPointer, count: Int, owner: AnyObject) {
        self.start = start
        self.count = count
        self.owner = owner
        self.ownsAllocation = false
    }

    /// Copies `bytes` into a new heap allocation.
    init(copying bytes: UnsafeRawBufferPointer) {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        if bytes.count > 0 { memory.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
        self.start = UnsafeRawPointer(memory)
        self.count = bytes.count
        self.owner = nil
        self.ownsAllocation = true
    }

    /// Takes ownership of memory from `UnsafeMutableRawPointer.allocate`.
    init(adopting memory: UnsafeMutableRawPointer, count: Int) {
        self.start = UnsafeRawPointer(memory)
        self.count = count
        self.owner = nil
        self.ownsAllocation = true
    }

    deinit {
        if ownsAllocation { UnsafeMutableRawPointer(mutating: start).deallocate() }
    }

    var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: start, count: count) }

    /// A sub-range sharing the same owner. The caller has checked the bounds.
    func slice(_ offset: Int, _ length: Int) -> ByteRegion {
        precondition(offset >= 0 && length >= 0 && offset <= count - length, "slice out of bounds")
        return ByteRegion(start: start + offset, count: length, owner: self)
    }
}

/// Little-endian reads at unaligned offsets. Callers check bounds first.
extension UnsafeRawBufferPointer {
    func u16(_ at: Int) -> UInt16 { UInt16(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
    func u32(_ at: Int) -> UInt32 { UInt32(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
    func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
}

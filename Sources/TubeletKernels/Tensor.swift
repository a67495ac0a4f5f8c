import CMalloc
import Foundation

/// A dense, row-major fp32 tensor with an explicit shape.
///
/// Reference semantics (like a buffer in llm.c): copying the value shares the memory.
/// Memory is either owned (64-byte aligned, freed on deinit) or borrowed from an `owner`
/// that keeps it alive, such as a memory-mapped model file.
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let count: Int
    public let data: UnsafeMutablePointer<Float>
    /// Keeps borrowed memory alive; nil when this tensor owns `data`.
    private let owner: AnyObject?

    /// Allocates a zero-filled tensor.
    public init(zeros shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.data = Tensor.allocate(count)
        self.data.initialize(repeating: 0, count: count)
        self.owner = nil
    }

    /// Allocates a tensor without clearing it; every element must be written before it is read.
    public init(uninitialized shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.data = Tensor.allocate(count)
        self.owner = nil
    }

    public convenience init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count,
                     "shape \(shape) holds \(shape.reduce(1, *)) values, got \(values.count)")
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: values.count) }
    }

    /// Wraps memory owned by `owner` (no copy). `data` must stay valid while `owner` lives.
    public init(borrowing data: UnsafeMutablePointer<Float>, shape: [Int], owner: AnyObject) {
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.data = data
        self.owner = owner
    }

    deinit {
        if owner == nil { free(data) }
    }

    /// glibc serves large blocks (over 128 KiB, rising to 32 MiB) with fresh mmaps and unmaps them on
    /// free, so every forward pass page-faulted (and the kernel zeroed) its activations again: 10% of
    /// a Swin-T clip in `perf`. With mmap off and a high trim threshold, large blocks come from the
    /// heap, which keeps freed pages for the next pass; resident memory stays at the peak working set.
    private static let heapConfigured: Bool = {
        mallopt(M_MMAP_MAX, 0)
        mallopt(M_TRIM_THRESHOLD, 1 << 30)
        return true
    }()

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        _ = heapConfigured
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            fatalError("out of memory allocating \(bytes) bytes")
        }
        return raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    public var rank: Int { shape.count }

    public var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: data, count: count)
    }

    public var array: [Float] { Array(buffer) }

    /// A view with another shape over the same memory.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(borrowing: data, shape: newShape, owner: self)
    }

    /// A deep copy that owns its memory.
    public func copy() -> Tensor {
        let result = Tensor(uninitialized: shape)
        result.data.update(from: data, count: count)
        return result
    }

    public subscript(_ index: Int) -> Float {
        get { data[index] }
        set { data[index] = newValue }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String { "Tensor\(shape)" }
}

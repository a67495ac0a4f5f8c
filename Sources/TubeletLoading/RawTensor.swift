import TubeletKernels

/// A tensor as stored in a file: dtype, shape and its bytes (contiguous, row-major, little-endian),
/// kept alive by an owner object such as the file's memory map.
public struct RawTensor: Sendable {
    public let dtype: DType
    public let shape: [Int]
    /// Where the bytes came from, for error messages.
    public let source: String
    let region: ByteRegion

    public var count: Int { shape.reduce(1, *) }
    public var byteCount: Int { region.count }

    init(dtype: DType, shape: [Int], region: ByteRegion, source: String) {
        precondition(region.count == shape.reduce(1, *) * dtype.byteSize, "RawTensor byte count mismatch")
        self.dtype = dtype
        self.shape = shape
        self.region = region
        self.source = source
    }

    /// A tensor over a copy of `bytes` (little-endian element encoding).
    public init(dtype: DType, shape: [Int], bytes: [UInt8], source: String = "<memory>") {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(bytes.count == shape.reduce(1, *) * dtype.byteSize,
                     "shape \(shape) of \(dtype.rawValue) needs \(shape.reduce(1, *) * dtype.byteSize) bytes, got \(bytes.count)")
        let region = bytes.withUnsafeBytes { ByteRegion(copying: $0) }
        self.init(dtype: dtype, shape: shape, region: region, source: source)
    }

    /// The stored bytes, valid only inside `body`.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(region.buffer)
    }

    /// Converts to fp32. F16/BF16 decode exactly (subnormals, inf and nan included);
    /// F64 and 64-bit integers round to the nearest Float.
    public func floats() throws -> Tensor {
        let result = Tensor(uninitialized: shape)
        let n = count
        let bytes = region.buffer
        let out = result.data
        switch dtype {
        case .f32:
            // memcpy: the source may not be 4-byte aligned (safetensors does not promise it).
            if n > 0 { UnsafeMutableRawPointer(out).copyMemory(from: bytes.baseAddress!, byteCount: n * 4) }
        case .f64:
            for i in 0..<n { out[i] = Float(Double(bitPattern: bytes.u64(i * 8))) }
        case .f16:
            for i in 0..<n { out[i] = floatFromHalfBits(bytes.u16(i * 2)) }
        case .bf16:
            // bfloat16 is the top half of an IEEE float, so widening is a shift.
            for i in 0..<n { out[i] = Float(bitPattern: UInt32(bytes.u16(i * 2)) << 16) }
        case .i64:
            for i in 0..<n { out[i] = Float(Int64(bitPattern: bytes.u64(i * 8))) }
        case .i32:
            for i in 0..<n { out[i] = Float(Int32(bitPattern: bytes.u32(i * 4))) }
        case .i16:
            for i in 0..<n { out[i] = Float(Int16(bitPattern: bytes.u16(i * 2))) }
        case .i8:
            for i in 0..<n { out[i] = Float(Int8(bitPattern: bytes[i])) }
        case .u8:
            for i in 0..<n { out[i] = Float(bytes[i]) }
        case .bool:
            for i in 0..<n { out[i] = bytes[i] != 0 ? 1 : 0 }
        }
        return result
    }

    /// The values of an integer (or bool) tensor, e.g. relative_position_index (int64).
    public func int64s() throws -> [Int64] {
        let n = count
        let bytes = region.buffer
        switch dtype {
        case .i64: return (0..<n).map { Int64(bitPattern: bytes.u64($0 * 8)) }
        case .i32: return (0..<n).map { Int64(Int32(bitPattern: bytes.u32($0 * 4))) }
        case .i16: return (0..<n).map { Int64(Int16(bitPattern: bytes.u16($0 * 2))) }
        case .i8: return (0..<n).map { Int64(Int8(bitPattern: bytes[$0])) }
        case .u8: return (0..<n).map { Int64(bytes[$0]) }
        case .bool: return (0..<n).map { bytes[$0] != 0 ? 1 : 0 }
        case .f64, .f32, .f16, .bf16:
            throw LoadError(file: source, message: "expected an integer tensor, found \(dtype.rawValue) with shape \(shape)")
        }
    }
}

extension RawTensor: CustomStringConvertible {
    public var description: String { "RawTensor(\(dtype.rawValue), \(shape))" }
}

/// IEEE half → float by bit manipulation: exact for every input, including
/// subnormals (renormalised), infinities and nans (payload kept in the top mantissa bits).
func floatFromHalfBits(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = UInt32(h >> 10) & 0x1F
    var mantissa = UInt32(h) & 0x3FF
    if exponent == 0x1F {  // inf or nan
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    }
    if exponent != 0 {  // normal: rebias 15 -> 127
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }
    if mantissa == 0 { return Float(bitPattern: sign) }  // signed zero
    // Subnormal half: value = mantissa * 2^-24; shift until the implicit bit appears.
    var e: UInt32 = 113  // biased float exponent of 2^-14
    while mantissa & 0x400 == 0 {
        mantissa <<= 1
        e -= 1
    }
    mantissa &= 0x3FF
    return Float(bitPattern: sign | (e << 23) | (mantissa << 13))
}

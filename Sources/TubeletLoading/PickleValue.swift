/// A value from a weights-only unpickler: never executes anything.
public indirect enum PickleValue: Sendable {
    case none
    case bool(Bool)
    case int(Int64)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case list([PickleValue])
    case tuple([PickleValue])
    case dict([(key: PickleValue, value: PickleValue)])
    case tensor(RawTensor)
    /// An unknown global, or an object built from one, named e.g. "numpy._core.multiarray.scalar".
    case opaque(String)

    /// The value under a string key, when this is a dict.
    public subscript(key: String) -> PickleValue? {
        guard case .dict(let entries) = self else { return nil }
        return entries.first { if case .string(key) = $0.key { return true } else { return false } }?.value
    }

    public var tensor: RawTensor? {
        if case .tensor(let t) = self { return t }
        return nil
    }

    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}

import Foundation

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

extension PickleValue {
    /// The value as a JSON-compatible object (dicts with string keys, lists, numbers, strings,
    /// booleans, null), or nil if it holds anything else (tensors, bytes, opaque objects).
    public var jsonObject: Any? {
        switch self {
        case .none: return NSNull()
        case .bool(let b): return b
        case .int(let i): return i
        case .float(let d): return d
        case .string(let s): return s
        case .list(let items), .tuple(let items):
            let converted = items.map(\.jsonObject)
            return converted.contains { $0 == nil } ? nil : converted.map { $0! }
        case .dict(let entries):
            var object: [String: Any] = [:]
            for (key, value) in entries {
                guard case .string(let name) = key, let converted = value.jsonObject else { return nil }
                object[name] = converted
            }
            return object
        case .bytes, .tensor, .opaque: return nil
        }
    }
}

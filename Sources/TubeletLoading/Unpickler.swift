/// A restricted unpickler for the pickles torch.save writes (protocols 2-5).
///
/// It only builds data: dicts, lists, tuples, scalars, strings, and tensors through a fixed set of
/// known torch rebuild functions. Any other global becomes an opaque placeholder, and calling or
/// building one just yields another placeholder — nothing from the file is ever executed.
struct Unpickler {
    /// A storage resolved by the persistent-id callback (a zip entry viewed as elements of `dtype`).
    struct Storage {
        let typeName: String
        let dtype: DType?  // nil: a storage class we cannot convert (complex, quantized, ...)
        let region: ByteRegion
        let elementCount: Int
    }

    /// Objects under construction. Containers are classes so memo references see later
    /// mutations, as in Python (torch memoizes a dict before filling it).
    final class ListBox { var items: [Node] = [] }
    final class DictBox { var entries: [(key: Node, value: Node)] = [] }
    /// Tuples are boxed too, so that `release` can tell when it holds the last reference.
    final class TupleBox: RandomAccessCollection {
        var items: [Node]
        init(_ items: [Node]) { self.items = items }
        var startIndex: Int { items.startIndex }
        var endIndex: Int { items.endIndex }
        subscript(index: Int) -> Node { items[index] }
    }

    enum Node {
        case mark
        case leaf(PickleValue)  // none, bool, int, float, string, bytes, tensor, opaque
        case list(ListBox)
        case dict(DictBox)
        case tuple(TupleBox)
        case global(String)  // "module.name", not yet called
        case storage(Storage)
    }

    static let maxStack = 1 << 20
    static let maxMemo = 1 << 20
    static let maxDepth = 1000
    /// The only oversized integers torch files hold are the legacy magic number and user config; past 8 bytes we give up.
    static let maxLongBytes = 8
    /// A non-contiguous view is copied; the copy may be as large as its storage, or this.
    static let maxGatherBytes = 64 << 20

    let file: String
    let entryName: String
    let bytes: UnsafeRawBufferPointer
    let persistentLoad: (Node, Int) throws -> Node

    private var position = 0
    private var opcodeOffset = 0
    private var stack: [Node] = []
    private var markPositions: [Int] = []
    private var memo: [Int: Node] = [:]
    /// Every container popped off the stack, kept until the next opcode so that no local variable
    /// ever holds the last reference to one (see `release`).
    private var popped: [Node] = []

    init(file: String, entryName: String, bytes: UnsafeRawBufferPointer, persistentLoad: @escaping (Node, Int) throws -> Node) {
        self.file = file
        self.entryName = entryName
        self.bytes = bytes
        self.persistentLoad = persistentLoad
    }

    func error(_ message: String, at offset: Int? = nil) -> LoadError {
        LoadError(file: file, offset: offset ?? opcodeOffset, message: "\(message) (byte offset within \(entryName))")
    }

    // MARK: reading

    private mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= bytes.count - position else {
            throw error("truncated pickle: need \(n) bytes at \(position), only \(bytes.count - position) left")
        }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)])
    }

    private mutating func u8() throws -> Int { Int(try take(1)[0]) }
    private mutating func u16() throws -> Int { Int(try take(2).u16(0)) }
    private mutating func u32() throws -> Int { Int(try take(4).u32(0)) }
    private mutating func i32() throws -> Int { Int(Int32(bitPattern: try take(4).u32(0))) }
    private mutating func u64() throws -> Int {
        let value = try take(8).u64(0)
        // Any length this large cannot fit in the remaining bytes; `take` rejects it.
        return value > UInt64(Int.max) ? Int.max : Int(value)
    }

    private mutating func utf8String(_ n: Int) throws -> String {
        let raw = try take(n)
        guard let s = String(validating: raw, as: UTF8.self) else { throw error("string is not valid UTF-8") }
        return s
    }

    /// A newline-terminated line (GLOBAL's module and name), bounded to keep errors cheap.
    private mutating func line() throws -> String {
        let start = position
        while position < bytes.count, bytes[position] != 0x0A {
            position += 1
            if position - start > 1024 { throw error("GLOBAL name longer than 1024 bytes") }
        }
        guard position < bytes.count else { throw error("truncated pickle: unterminated GLOBAL name") }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        position += 1
        return text
    }

    // MARK: stack

    private mutating func push(_ node: Node) throws {
        guard stack.count < Self.maxStack else { throw error("pickle stack exceeds \(Self.maxStack) entries") }
        stack.append(node)
    }

    private mutating func pop() throws -> Node {
        guard let top = stack.popLast() else { throw error("pickle stack underflow") }
        if case .mark = top { throw error("unexpected MARK on the pickle stack") }
        if stack.count < (markPositions.last ?? 0) { throw error("pickle pops past a MARK") }
        if top.isContainer { popped.append(top) }
        return top
    }

    private func top() throws -> Node {
        guard let last = stack.last, stack.count > (markPositions.last ?? 0) else { throw error("pickle stack underflow") }
        return last
    }

    /// Items pushed since the last MARK, removing them and the mark.
    private mutating func popToMark() throws -> [Node] {
        guard let mark = markPositions.popLast() else { throw error("no MARK on the pickle stack") }
        let items = Array(stack[mark...])
        stack.removeSubrange((mark - 1)...)  // the .mark placeholder sits at mark - 1
        popped.append(contentsOf: items.filter(\.isContainer))
        return items
    }

    private mutating func memoize(_ index: Int, _ node: Node) throws {
        guard memo.count < Self.maxMemo || memo[index] != nil else { throw error("pickle memo exceeds \(Self.maxMemo) entries") }
        memo[index] = node
    }

    private func recall(_ index: Int) throws -> Node {
        guard let node = memo[index] else { throw error("memo key \(index) was never stored") }
        return node
    }

    // MARK: main loop

    mutating func load() throws -> PickleValue {
        defer {  // the node graph is not needed once converted to values (tensors keep their storages)
            var everything = stack + popped + Array(memo.values)
            stack = []
            popped = []
            memo = [:]
            Self.release(&everything, everything: true)
        }
        while true {
            if popped.count >= 4096 { Self.release(&popped) }  // between opcodes, no local holds a container
            opcodeOffset = position
            guard position < bytes.count else { throw error("truncated pickle: no STOP opcode", at: position) }
            let opcode = bytes[position]
            position += 1
            switch opcode {
            case 0x80: // PROTO
                let version = try u8()
                guard (2...5).contains(version) else { throw error("unsupported pickle protocol \(version) (expected 2-5)") }
            case 0x95: _ = try u64()  // FRAME: framing is only a buffering hint
            case 0x2E: // STOP
                let result = try pop()
                var budget = max(1_000_000, bytes.count * 4)
                var path = Set<ObjectIdentifier>()
                return try value(of: result, depth: 0, budget: &budget, path: &path)
            case 0x28: // MARK
                try push(.mark)
                markPositions.append(stack.count)
            case 0x30: _ = try pop()  // POP
            case 0x31: _ = try popToMark()  // POP_MARK
            case 0x32: try push(try top())  // DUP

            case 0x4E: try push(.leaf(.none))
            case 0x88: try push(.leaf(.bool(true)))
            case 0x89: try push(.leaf(.bool(false)))
            case 0x4A: try push(.leaf(.int(Int64(try i32()))))  // BININT
            case 0x4B: try push(.leaf(.int(Int64(try u8()))))  // BININT1
            case 0x4D: try push(.leaf(.int(Int64(try u16()))))  // BININT2
            case 0x8A: try push(try long(length: try u8()))  // LONG1
            case 0x8B: // LONG4
                let n = try i32()
                guard n >= 0 else { throw error("negative LONG4 length \(n)") }
                try push(try long(length: n))
            case 0x47: try push(.leaf(.float(Double(bitPattern: UInt64(bigEndian: try take(8).loadUnaligned(as: UInt64.self))))))  // BINFLOAT
            case 0x49: try push(try textInt())  // INT (protocol 0/1, e.g. "I01\n" booleans)

            case 0x58: try push(.leaf(.string(try utf8String(try u32()))))  // BINUNICODE
            case 0x8C: try push(.leaf(.string(try utf8String(try u8()))))  // SHORT_BINUNICODE
            case 0x8D: try push(.leaf(.string(try utf8String(try u64()))))  // BINUNICODE8
            case 0x54: // BINSTRING: Python 2 str, decoded as latin-1 like pickle's default
                let n = try i32()
                guard n >= 0 else { throw error("negative BINSTRING length \(n)") }
                try push(.leaf(.string(String(try take(n).map { Character(Unicode.Scalar($0)) }))))
            case 0x55: // SHORT_BINSTRING
                try push(.leaf(.string(String(try take(try u8()).map { Character(Unicode.Scalar($0)) }))))
            case 0x42: try push(.leaf(.bytes(Array(try take(try u32())))))  // BINBYTES
            case 0x43: try push(.leaf(.bytes(Array(try take(try u8())))))  // SHORT_BINBYTES
            case 0x8E, 0x96: try push(.leaf(.bytes(Array(try take(try u64())))))  // BINBYTES8, BYTEARRAY8

            case 0x7D: try push(.dict(DictBox()))  // EMPTY_DICT
            case 0x5D: try push(.list(ListBox()))  // EMPTY_LIST
            case 0x29: try push(.tuple(TupleBox([])))  // EMPTY_TUPLE
            case 0x8F: try push(.list(ListBox()))  // EMPTY_SET: sets become lists
            case 0x74: try push(.tuple(TupleBox(try popToMark())))  // TUPLE
            case 0x85: let a = try pop(); try push(.tuple(TupleBox([a])))  // TUPLE1
            case 0x86: let b = try pop(), a = try pop(); try push(.tuple(TupleBox([a, b])))  // TUPLE2
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); try push(.tuple(TupleBox([a, b, c])))  // TUPLE3
            case 0x6C, 0x91: // LIST, FROZENSET
                let box = ListBox()
                box.items = try popToMark()
                try push(.list(box))
            case 0x64: // DICT
                let items = try popToMark()
                let box = DictBox()
                try addPairs(items, to: box)
                try push(.dict(box))
            case 0x61: // APPEND
                let item = try pop()
                try appendItems([item])
            case 0x65, 0x90: // APPENDS, ADDITEMS
                let items = try popToMark()
                try appendItems(items)
            case 0x73: // SETITEM
                let value = try pop(), key = try pop()
                try setItems([key, value])
            case 0x75: // SETITEMS
                // A local first: a non-mutating call would capture `self` before popToMark() ran.
                let items = try popToMark()
                try setItems(items)

            case 0x71: try memoize(try u8(), try top())  // BINPUT
            case 0x72: try memoize(try u32(), try top())  // LONG_BINPUT
            case 0x94: try memoize(memo.count, try top())  // MEMOIZE
            case 0x68: let key = try u8(); try push(try recall(key))  // BINGET
            case 0x6A: let key = try u32(); try push(try recall(key))  // LONG_BINGET

            case 0x63: // GLOBAL
                let module = try line(), name = try line()
                try push(.global(module + "." + name))
            case 0x93: // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard case .leaf(.string(let n)) = name, case .leaf(.string(let m)) = module else {
                    throw error("STACK_GLOBAL expects two strings")
                }
                try push(.global(m + "." + n))
            case 0x52: // REDUCE
                let args = try pop(), callable = try pop()
                try push(try call(callable, args))
            case 0x81: // NEWOBJ
                let args = try pop(), cls = try pop()
                try push(try call(cls, args))
            case 0x92: // NEWOBJ_EX
                _ = try pop()  // kwargs
                let args = try pop(), cls = try pop()
                try push(try call(cls, args))
            case 0x62: // BUILD: object state (__setstate__) is never applied; opaque objects stay opaque.
                _ = try pop()
                _ = try top()
            case 0x51: // BINPERSID
                let pid = try pop()
                try push(try persistentLoad(pid, opcodeOffset))

            default:
                throw error("unsupported pickle opcode 0x\(String(opcode, radix: 16, uppercase: true))")
            }
        }
    }

    private mutating func long(length: Int) throws -> Node {
        let raw = try take(length)  // bounds-checks the length before we use it
        guard length <= Self.maxLongBytes else { return .leaf(.opaque("int (\(length)-byte integer)")) }
        guard length > 0 else { return .leaf(.int(0)) }
        // Little-endian two's complement, sign-extended from the top byte.
        var value: UInt64 = raw[length - 1] & 0x80 != 0 ? UInt64.max : 0
        for i in stride(from: length - 1, through: 0, by: -1) {
            value = (value << 8) | UInt64(raw[i])
        }
        return .leaf(.int(Int64(bitPattern: value)))
    }

    private mutating func textInt() throws -> Node {
        let text = try line()
        if text == "00" { return .leaf(.bool(false)) }
        if text == "01" { return .leaf(.bool(true)) }
        guard let v = Int64(text) else { throw error("invalid INT literal") }
        return .leaf(.int(v))
    }

    private func appendItems(_ items: [Node]) throws {
        guard case .list(let box) = try top() else {
            // Appending to a non-list (e.g. an opaque object's __extend__) is ignored, never executed.
            if case .leaf(.opaque) = try top() { return }
            throw error("APPEND to a value that is not a list")
        }
        box.items.append(contentsOf: items)
    }

    private func setItems(_ items: [Node]) throws {
        guard case .dict(let box) = try top() else {
            if case .leaf(.opaque) = try top() { return }
            throw error("SETITEM on a value that is not a dict")
        }
        try addPairs(items, to: box)
    }

    private func addPairs(_ items: [Node], to box: DictBox) throws {
        guard items.count % 2 == 0 else { throw error("odd number of items for a dict") }
        for i in stride(from: 0, to: items.count, by: 2) { box.entries.append((items[i], items[i + 1])) }
    }

    // MARK: calling globals (a fixed table; everything else is opaque)

    private func call(_ callable: Node, _ args: Node) throws -> Node {
        guard case .global(let name) = callable else {
            if case .leaf(.opaque(let name)) = callable { return .leaf(.opaque(name)) }
            throw error("REDUCE/NEWOBJ on a value that is not a global")
        }
        guard case .tuple(let a) = args else { return .leaf(.opaque(name)) }
        switch name {
        case "collections.OrderedDict", "builtins.dict", "__builtin__.dict":
            let box = DictBox()
            // OrderedDict may be reduced with a list of [key, value] pairs.
            if let first = a.first, case .list(let pairs) = first {
                for pair in pairs.items {
                    switch pair {
                    case .tuple(let kv) where kv.count == 2: box.entries.append((kv[0], kv[1]))
                    case .list(let kv) where kv.items.count == 2: box.entries.append((kv.items[0], kv.items[1]))
                    default: throw error("\(name) expects (key, value) pairs")
                    }
                }
            }
            return .dict(box)
        case "builtins.set", "__builtin__.set", "builtins.frozenset", "__builtin__.frozenset", "builtins.list", "__builtin__.list":
            let box = ListBox()
            if let first = a.first, case .list(let items) = first { box.items = items.items }
            if let first = a.first, case .tuple(let items) = first { box.items = items.items }
            return .list(box)
        case "_codecs.encode":
            // Protocol 2 stores bytes as _codecs.encode(text, "latin1"): plain data, safe to decode.
            guard a.count == 2, case .leaf(.string(let text)) = a[0], case .leaf(.string(let encoding)) = a[1],
                  encoding == "latin1" || encoding == "latin-1" else { return .leaf(.opaque(name)) }
            var out: [UInt8] = []
            for scalar in text.unicodeScalars {
                guard scalar.value < 256 else { throw error("_codecs.encode: character outside latin-1") }
                out.append(UInt8(scalar.value))
            }
            return .leaf(.bytes(out))
        case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
            guard a.count >= 4 else { throw error("\(name) expects (storage, offset, size, stride, ...)") }
            return try rebuildTensor(storage: a[0], offset: a[1], size: a[2], stride: a[3])
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard let data = a.first else { throw error("\(name) expects (data, requires_grad, ...)") }
            return data
        default:
            return .leaf(.opaque(name))
        }
    }

    private func ints(_ node: Node, _ what: String) throws -> [Int] {
        let items: [Node]
        switch node {
        case .tuple(let t): items = t.items
        case .list(let l): items = l.items
        default: throw error("tensor \(what) must be a tuple of ints")
        }
        return try items.map {
            guard case .leaf(.int(let v)) = $0, v >= 0, v <= Int64(Int32.max) * 1024 else {
                throw error("tensor \(what) must hold non-negative ints")
            }
            return Int(v)
        }
    }

    /// torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, ...): a strided view
    /// of a storage. Contiguous views borrow the storage bytes; others are gathered into a copy.
    private func rebuildTensor(storage storageNode: Node, offset offsetNode: Node, size sizeNode: Node, stride strideNode: Node) throws -> Node {
        guard case .storage(let storage) = storageNode else { throw error("tensor rebuilt from something that is not a storage") }
        guard let dtype = storage.dtype else { return .leaf(.opaque("tensor of \(storage.typeName)")) }
        guard case .leaf(.int(let offset64)) = offsetNode, offset64 >= 0, offset64 <= Int64(storage.elementCount) else {
            throw error("tensor storage offset must be an int within the storage (\(storage.elementCount) elements)")
        }
        let offset = Int(offset64)
        let size = try ints(sizeNode, "size"), stride = try ints(strideNode, "stride")
        guard size.count == stride.count else { throw error("tensor size \(size) and stride \(stride) differ in rank") }

        var count = 1, lastIndex = offset, overflow = false
        for (n, s) in zip(size, stride) {
            (count, overflow) = count.multipliedReportingOverflow(by: n)
            if overflow { throw error("tensor size \(size) overflows") }
            if n > 0 {
                let (span, o1) = (n - 1).multipliedReportingOverflow(by: s)
                let (sum, o2) = lastIndex.addingReportingOverflow(span)
                if o1 || o2 { throw error("tensor stride \(stride) overflows") }
                lastIndex = sum
            }
        }
        let element = dtype.byteSize
        if count == 0 {
            return .leaf(.tensor(RawTensor(dtype: dtype, shape: size, region: storage.region.slice(0, 0), source: file)))
        }
        guard lastIndex < storage.elementCount else {
            throw error("tensor view (offset \(offset), size \(size), stride \(stride)) reaches element \(lastIndex) of a \(storage.elementCount)-element storage")
        }

        // Row-major contiguous (dimensions of size 1 may have any stride).
        var expected = 1, contiguous = true
        for (n, s) in zip(size, stride).reversed() where n != 1 {
            if s != expected { contiguous = false; break }
            expected *= n
        }
        if contiguous {
            let region = storage.region.slice(offset * element, count * element)
            return .leaf(.tensor(RawTensor(dtype: dtype, shape: size, region: region, source: file)))
        }

        // Gather: walk the index space in row-major order with an odometer. Stride 0 (a broadcast view)
        // lets a one-element storage describe any size, so the copy is bounded before allocating it.
        let (copyBytes, copyOverflow) = count.multipliedReportingOverflow(by: element)
        guard !copyOverflow, copyBytes <= max(storage.region.count, Self.maxGatherBytes) else {
            throw error("tensor view (size \(size), stride \(stride)) of a \(storage.elementCount)-element storage would be copied into \(copyOverflow ? "more than Int.max" : String(copyBytes)) bytes; at most \(max(storage.region.count, Self.maxGatherBytes)) (the storage's size or 64 MiB) are allowed")
        }
        let memory = UnsafeMutableRawPointer.allocate(byteCount: copyBytes, alignment: 64)
        let source = storage.region.start
        var index = [Int](repeating: 0, count: size.count)
        var sourceElement = offset
        for i in 0..<count {
            (memory + i * element).copyMemory(from: source + sourceElement * element, byteCount: element)
            var d = size.count - 1
            while d >= 0 {
                index[d] += 1
                sourceElement += stride[d]
                if index[d] < size[d] { break }
                sourceElement -= stride[d] * size[d]
                index[d] = 0
                d -= 1
            }
        }
        let region = ByteRegion(adopting: memory, count: count * element)
        return .leaf(.tensor(RawTensor(dtype: dtype, shape: size, region: region, source: file)))
    }

    // MARK: releasing

    /// Drops nodes without recursion. A pickle can nest containers a million deep at one byte per level
    /// (TUPLE1 repeated, or lists appended through the memo), and Swift frees such a chain recursively,
    /// overflowing the stack. Here a container is emptied first and its children are dropped from the same
    /// loop: while parsing, only containers nothing else references; at the end (`everything`), all of
    /// them, which also breaks reference cycles (a list appended to itself) that would otherwise leak.
    static func release(_ nodes: inout [Node], everything: Bool = false) {
        var pending = nodes
        nodes = []
        while let node = pending.popLast() {
            switch consume node {
            case .tuple(var box):
                if everything || isKnownUniquelyReferenced(&box) { pending.append(contentsOf: box.items); box.items = [] }
            case .list(var box):
                if everything || isKnownUniquelyReferenced(&box) { pending.append(contentsOf: box.items); box.items = [] }
            case .dict(var box):
                if everything || isKnownUniquelyReferenced(&box) {
                    for entry in box.entries { pending.append(entry.key); pending.append(entry.value) }
                    box.entries = []
                }
            default: break
            }
        }
    }

    // MARK: finishing

    /// Freezes the object graph into values. `budget` caps the total node count so a small pickle
    /// that references one list many times cannot expand into an enormous tree.
    private func value(of node: Node, depth: Int, budget: inout Int, path: inout Set<ObjectIdentifier>) throws -> PickleValue {
        budget -= 1
        guard budget >= 0 else { throw error("pickle expands to too many objects (shared references repeated)", at: bytes.count - 1) }
        guard depth < Self.maxDepth else { throw error("pickle nests deeper than \(Self.maxDepth) levels", at: bytes.count - 1) }
        switch node {
        case .mark: throw error("MARK left on the pickle stack", at: bytes.count - 1)
        case .leaf(let v): return v
        case .global(let name): return .opaque(name)
        case .storage(let s): return .opaque(s.typeName)
        case .tuple(let items):
            return .tuple(try items.map { try value(of: $0, depth: depth + 1, budget: &budget, path: &path) })
        case .list(let box):
            let id = ObjectIdentifier(box)
            guard path.insert(id).inserted else { return .opaque("recursive list") }
            defer { path.remove(id) }
            return .list(try box.items.map { try value(of: $0, depth: depth + 1, budget: &budget, path: &path) })
        case .dict(let box):
            let id = ObjectIdentifier(box)
            guard path.insert(id).inserted else { return .opaque("recursive dict") }
            defer { path.remove(id) }
            return .dict(try box.entries.map {
                (key: try value(of: $0.key, depth: depth + 1, budget: &budget, path: &path),
                 value: try value(of: $0.value, depth: depth + 1, budget: &budget, path: &path))
            })
        }
    }
}

extension Unpickler.Node {
    var isContainer: Bool {
        switch self {
        case .tuple, .list, .dict: return true
        default: return false
        }
    }
}

import Foundation
import TubeletLoading
import XCTest

final class TorchCheckpointTests: XCTestCase {
    /// State-dict names in the order the fixture script inserts them.
    static let stateDictNames = [
        "w_f32", "w_f16", "w_bf16", "w_f64", "relative_position_index", "i32", "i16", "i8", "u8", "mask",
        "transposed", "shared_base", "view_offset", "view_strided", "param", "scalar", "empty",
    ]

    private func checkStateDict(_ root: PickleValue, file: StaticString = #filePath, line: UInt = #line) throws {
        let tensors = try XCTUnwrap(TorchCheckpoint.stateDict(root), file: file, line: line)
        XCTAssertEqual(tensors.map(\.name), Self.stateDictNames, file: file, line: line)
        let expected = try Fixtures.expected()
        for (name, tensor) in tensors {
            let want = try XCTUnwrap(expected[name], file: file, line: line)
            XCTAssertEqual(tensor.shape, want.shape, name, file: file, line: line)
            XCTAssertEqual(tensor.dtype, torchDType(want.torchDType), name, file: file, line: line)
            assertSameFloats(try tensor.floats().array, want.floatBits, name, file: file, line: line)
            if let ints = want.int64s { XCTAssertEqual(try tensor.int64s(), ints, name, file: file, line: line) }
        }
    }

    func testCheckpointFixture() throws {
        var progressCalls: [(Int, Int)] = []
        let root = try TorchCheckpoint.load(path: Fixtures.path("checkpoint.pth")) { progressCalls.append(($0, $1)) }
        try checkStateDict(root)
        XCTAssertEqual(progressCalls.last.map { [$0.0, $0.1] }, progressCalls.last.map { [$0.1, $0.1] })
        XCTAssertGreaterThan(progressCalls.count, 10)

        // Top-level order and the non-tensor parts.
        guard case .dict(let top) = root else { return XCTFail("root is not a dict") }
        XCTAssertEqual(top.compactMap { $0.key.string }, ["meta", "state_dict", "optimizer"])
        let meta = try XCTUnwrap(root["meta"])
        guard case .float(let lr)? = meta["lr"] else { return XCTFail("meta.lr") }
        XCTAssertEqual(lr, 0.1)
        guard case .opaque(let scalarName)? = meta["acc"] else { return XCTFail("numpy scalar should be opaque") }
        XCTAssertTrue(scalarName.hasSuffix("multiarray.scalar"), scalarName)
        guard case .list(let steps)? = meta["steps"] else { return XCTFail("meta.steps") }
        XCTAssertEqual(steps.map { (v: PickleValue) -> Int64 in if case .int(let i) = v { i } else { -1 } }, [1, 2, 3])
        XCTAssertEqual(meta["name"]?.string, "tiny")
        guard case .int(1 << 40)? = meta["big"], case .int(-3)? = meta["neg"] else { return XCTFail("meta ints") }

        // Optimizer state is keyed by int parameter ids.
        let optimizer = try XCTUnwrap(root["optimizer"])
        guard case .dict(let state)? = optimizer["state"], let first = state.first,
              case .int(0) = first.key else { return XCTFail("optimizer.state") }
        let expAvg = try XCTUnwrap(first.value["exp_avg"]?.tensor)
        XCTAssertEqual(expAvg.shape, [3, 4])
        XCTAssertEqual(try expAvg.floats().array, [Float](repeating: 0.25, count: 12))
        XCTAssertEqual(try XCTUnwrap(first.value["step"]?.tensor).floats().array, [3])
        guard case .list(let groups)? = optimizer["param_groups"], case .tuple(let betas)? = groups.first?["betas"],
              case .float(0.9) = betas[0] else { return XCTFail("optimizer.param_groups") }
    }

    func testZip64Archive() throws {
        try checkStateDict(try TorchCheckpoint.load(path: Fixtures.path("zip64.pth")))
    }

    func testStateDictSelection() {
        let t = RawTensor(dtype: .u8, shape: [1], bytes: [1])
        let flat = PickleValue.dict([(.string("a"), .tensor(t)), (.string("n"), .int(3))])
        XCTAssertEqual(TorchCheckpoint.stateDict(flat)?.map(\.name), ["a"])
        let nested = PickleValue.dict([(.string("epoch"), .int(3)), (.string("model"), .dict([(.string("w"), .tensor(t))]))])
        XCTAssertEqual(TorchCheckpoint.stateDict(nested)?.map(\.name), ["w"])
        XCTAssertNil(TorchCheckpoint.stateDict(.dict([(.string("epoch"), .int(3))])))
        XCTAssertNil(TorchCheckpoint.stateDict(.list([])))
    }

    // MARK: files that must be rejected with a LoadError

    func testDeflatedEntryRejected() {
        let path = Fixtures.path("deflated.pth")
        assertLoadError(path, contains: "compression method 8") { try TorchCheckpoint.load(path: path) }
    }

    func testLegacyFormatRejected() {
        let path = Fixtures.path("legacy.pth")
        assertLoadError(path, contains: "legacy") { try TorchCheckpoint.load(path: path) }
    }

    func testNotAZip() throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("random.pth", Array("this is not a checkpoint at all".utf8))
        assertLoadError(path, contains: "not a zip archive") { try TorchCheckpoint.load(path: path) }
    }

    func testTruncatedCheckpoint() throws {
        let whole = try Array(Data(contentsOf: URL(fileURLWithPath: Fixtures.path("checkpoint.pth"))))
        let dir = try TemporaryDirectory()
        let half = try dir.write("half.pth", Array(whole.prefix(whole.count / 2)))
        assertLoadError(half, contains: "end-of-central-directory") { try TorchCheckpoint.load(path: half) }
        // Every shorter prefix fails cleanly too (no crash on any cut point).
        for cut in stride(from: 0, to: whole.count, by: 97) {
            let path = try dir.write("cut\(cut).pth", Array(whole.prefix(cut)))
            XCTAssertThrowsError(try TorchCheckpoint.load(path: path)) { XCTAssertTrue($0 is LoadError) }
        }
    }

    func testEntryDataPastEndOfFile() throws {
        // A central directory claiming a 1000-byte entry whose data is not there.
        var zip = makeZip([("archive/data.pkl", [0x80, 0x02, 0x4E, 0x2E])])
        let directoryStart = Int(zip.suffix(6).prefix(4).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })
        zip.replaceSubrange((directoryStart + 20)..<(directoryStart + 28), with: [0xE8, 0x03, 0, 0, 0xE8, 0x03, 0, 0])
        let dir = try TemporaryDirectory()
        let path = try dir.write("short.pth", zip)
        assertLoadError(path, contains: "truncated zip entry 'archive/data.pkl'") { try TorchCheckpoint.load(path: path) }
    }

    func testBigEndianByteorderRejected() throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("be.pth", makeZip([("archive/data.pkl", [0x80, 0x02, 0x4E, 0x2E]), ("archive/byteorder", Array("big".utf8))]))
        assertLoadError(path, contains: "expected \"little\"") { try TorchCheckpoint.load(path: path) }
    }

    // MARK: hand-built pickles

    private func loadPickle(_ pickle: [UInt8], storages: [(String, [UInt8])] = []) throws -> (String, () throws -> PickleValue) {
        let dir = try TemporaryDirectory()
        let entries = [("archive/data.pkl", pickle)] + storages.map { ("archive/data/\($0.0)", $0.1) }
        let path = try dir.write("hand.pth", makeZip(entries))
        return (path, { _ = dir; return try TorchCheckpoint.load(path: path) })
    }

    func testUnknownOpcode() throws {
        let (path, load) = try loadPickle([0x80, 0x02, 0xFF])
        assertLoadError(path, contains: "at byte 2: unsupported pickle opcode 0xFF") { try load() }
    }

    func testTruncatedPickle() throws {
        let (path, load) = try loadPickle([0x80, 0x02, 0x58, 0x10, 0x00, 0x00, 0x00, 0x61])  // BINUNICODE of 16 bytes, 1 present
        assertLoadError(path, contains: "truncated pickle") { try load() }
        let (path2, load2) = try loadPickle([0x80, 0x02, 0x4E])  // no STOP
        assertLoadError(path2, contains: "no STOP") { try load2() }
        let (path3, load3) = try loadPickle([0x80, 0x02, 0x2E])  // STOP with nothing on the stack
        assertLoadError(path3, contains: "underflow") { try load3() }
    }

    func testUnknownGlobalsAreOpaqueNeverCalled() throws {
        // os.system("echo hi") followed by BUILD: must come back as an opaque value.
        var p: [UInt8] = [0x80, 0x02, 0x63] + Array("os\nsystem\n".utf8)
        p += [0x58, 7, 0, 0, 0] + Array("echo hi".utf8) + [0x85, 0x52, 0x7D, 0x62, 0x2E]  // TUPLE1 REDUCE {} BUILD STOP
        let (_, load) = try loadPickle(p)
        guard case .opaque("os.system") = try load() else { return XCTFail("expected opaque os.system") }
    }

    func testMemoSharesContainers() throws {
        // [] memoized, then filled; a later BINGET must see the filled list: ([1], [1]).
        let p: [UInt8] = [0x80, 0x02, 0x5D, 0x71, 0x00, 0x4B, 0x01, 0x61, 0x68, 0x00, 0x86, 0x2E]
        let (_, load) = try loadPickle(p)
        guard case .tuple(let items) = try load(), items.count == 2,
              case .list(let a) = items[0], case .list(let b) = items[1], a.count == 1, b.count == 1 else {
            return XCTFail("memo should alias the filled list")
        }
    }

    func testSharedReferenceExplosionIsBounded() throws {
        // Each DUP+TUPLE2 doubles the tree: 2^60 leaves if expanded naively.
        let p: [UInt8] = [0x80, 0x02, 0x5D] + Array(repeating: [0x32, 0x86], count: 60).flatMap { $0 } + [0x2E]
        let (path, load) = try loadPickle(p)
        assertLoadError(path, contains: "too many objects") { try load() }
    }

    func testDeepNestingIsBounded() throws {
        let p: [UInt8] = [0x80, 0x02, 0x4E] + [UInt8](repeating: 0x85, count: 5000) + [0x2E]  // None wrapped in 5000 1-tuples
        let (path, load) = try loadPickle(p)
        assertLoadError(path, contains: "nests deeper") { try load() }
    }

    /// Found by reasoning, confirmed with Fuzz/FuzzTorchCheckpoint (AddressSanitizer: stack-overflow while
    /// freeing): a million nested 1-tuples in 1 MB used to crash when the unpickler let go of them.
    func testMillionDeepNestingIsReleasedWithoutRecursion() throws {
        let deep: [UInt8] = [0x80, 0x02, 0x4E] + [UInt8](repeating: 0x85, count: 1_000_000)
        let (path, load) = try loadPickle(deep + [0x2E])
        assertLoadError(path, contains: "nests deeper") { try load() }
        // Popped and dropped mid-pickle, then a normal result.
        let (_, load2) = try loadPickle(deep + [0x30, 0x4B, 0x07, 0x2E])  // POP, BININT1 7, STOP
        guard case .int(7) = try load2() else { return XCTFail("expected 7 after dropping the deep tuple") }
        // Lists nested through the memo: [], then [prev] 300,000 times (LONG_BINGET, APPEND, LONG_BINPUT, POP).
        var lists: [UInt8] = [0x80, 0x02, 0x5D, 0x72, 0, 0, 0, 0]
        func le32(_ n: Int) -> [UInt8] { [UInt8(n & 0xff), UInt8(n >> 8 & 0xff), UInt8(n >> 16 & 0xff), UInt8(n >> 24 & 0xff)] }
        for i in 1..<300_000 { lists += [0x5D, 0x6A] + le32(i - 1) + [0x61, 0x72] + le32(i) + [0x30] }
        let (path3, load3) = try loadPickle(lists + [0x6A] + le32(299_999) + [0x2E])
        assertLoadError(path3, contains: "nests deeper") { try load3() }
    }

    /// A list appended to itself: read as a value, then freed (the cycle is broken, not leaked or recursed into).
    func testSelfContainingList() throws {
        let p: [UInt8] = [0x80, 0x02, 0x5D, 0x71, 0x00, 0x68, 0x00, 0x61, 0x2E]  // [] BINPUT 0, BINGET 0, APPEND, STOP
        let (_, load) = try loadPickle(p)
        guard case .list(let items) = try load(), items.count == 1, case .opaque("recursive list") = items[0] else {
            return XCTFail("expected [<recursive list>]")
        }
    }

    /// Only the fixed table of torch rebuild functions and containers is ever interpreted; a pickle that
    /// asks for a shell command, exec or eval gets opaque values back and nothing runs.
    func testDangerousGlobalsRunNothing() throws {
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("tubelet-pwned-\(UUID().uuidString)").path
        for (module, name, argument) in [("os", "system", "touch \(marker)"), ("builtins", "exec", "open('\(marker)', 'w')"),
                                         ("builtins", "eval", "open('\(marker)', 'w')"), ("subprocess", "call", "touch \(marker)")] {
            var p: [UInt8] = [0x80, 0x02, 0x63] + Array("\(module)\n\(name)\n".utf8)
            let text = Array(argument.utf8)
            p += [0x58, UInt8(text.count), 0, 0, 0] + text + [0x85, 0x52, 0x2E]  // TUPLE1 REDUCE STOP
            let (_, load) = try loadPickle(p)
            guard case .opaque("\(module).\(name)") = try load() else { return XCTFail("\(module).\(name) should be opaque") }
            XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "\(module).\(name) ran")
        }
    }

    func testBigIntegersAreOpaque() throws {
        let p: [UInt8] = [0x80, 0x02, 0x8A, 0x09] + [UInt8](repeating: 0xFF, count: 8) + [0x01, 0x2E]  // LONG1, 9 bytes
        let (_, load) = try loadPickle(p)
        guard case .opaque = try load() else { return XCTFail("9-byte int should be opaque") }
        let small: [UInt8] = [0x80, 0x02, 0x8A, 0x02, 0x00, 0xFF, 0x2E]  // LONG1 -256
        let (_, load2) = try loadPickle(small)
        guard case .int(-256) = try load2() else { return XCTFail("LONG1 -256") }
    }

    /// _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', numel), offset, size, stride, False, {})
    private func rebuildPickle(numel: UInt8, offset: UInt8, size: [UInt8], stride: [UInt8]) -> [UInt8] {
        var p: [UInt8] = [0x80, 0x02, 0x63] + Array("torch._utils\n_rebuild_tensor_v2\n".utf8) + [0x28, 0x28]
        p += [0x58, 7, 0, 0, 0] + Array("storage".utf8) + [0x63] + Array("torch\nFloatStorage\n".utf8)
        p += [0x58, 1, 0, 0, 0, 0x30, 0x58, 3, 0, 0, 0] + Array("cpu".utf8) + [0x4B, numel, 0x74, 0x51]
        p += [0x4B, offset, 0x28] + size.flatMap { [0x4B, $0] } + [0x74, 0x28] + stride.flatMap { [0x4B, $0] } + [0x74]
        p += [0x89, 0x7D, 0x74, 0x52, 0x2E]
        return p
    }

    private func floatBytes(_ values: [Float]) -> [UInt8] {
        values.flatMap { v in Swift.withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
    }

    func testStridedViewIsGathered() throws {
        let storage = floatBytes([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        let (_, load) = try loadPickle(rebuildPickle(numel: 10, offset: 1, size: [2, 3], stride: [1, 3]), storages: [("0", storage)])
        let tensor = try XCTUnwrap(try load().tensor)
        XCTAssertEqual(tensor.shape, [2, 3])
        XCTAssertEqual(try tensor.floats().array, [1, 4, 7, 2, 5, 8])
    }

    /// A broadcast view (stride 0) of a one-element storage: small ones are copied, a 255^4-element one
    /// (17 GB from a 4-byte storage) is refused before allocating (found with Fuzz/FuzzTorchCheckpoint).
    func testBroadcastViewCopyIsBounded() throws {
        let (_, load) = try loadPickle(rebuildPickle(numel: 1, offset: 0, size: [4], stride: [0]), storages: [("0", floatBytes([2.5]))])
        XCTAssertEqual(try XCTUnwrap(try load().tensor).floats().array, [2.5, 2.5, 2.5, 2.5])
        let (path2, load2) = try loadPickle(rebuildPickle(numel: 1, offset: 0, size: [255, 255, 255, 255], stride: [0, 0, 0, 0]),
                                            storages: [("0", floatBytes([2.5]))])
        assertLoadError(path2, contains: "would be copied into 16913002500 bytes") { try load2() }
    }

    func testViewOutsideStorageRejected() throws {
        let (path, load) = try loadPickle(rebuildPickle(numel: 2, offset: 0, size: [5], stride: [1]), storages: [("0", floatBytes([1, 2]))])
        assertLoadError(path, contains: "2-element storage") { try load() }
        let (path2, load2) = try loadPickle(rebuildPickle(numel: 4, offset: 0, size: [4], stride: [1]), storages: [("0", floatBytes([1, 2]))])
        assertLoadError(path2, contains: "needs 16 bytes") { try load2() }
        let (path3, load3) = try loadPickle(rebuildPickle(numel: 2, offset: 0, size: [2], stride: [1]))
        assertLoadError(path3, contains: "no zip entry 'archive/data/0'") { try load3() }
    }
}

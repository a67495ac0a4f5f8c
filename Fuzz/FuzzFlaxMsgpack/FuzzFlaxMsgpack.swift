import FuzzSupport
import TubeletLoading

/// libFuzzer entry point: a flax msgpack checkpoint (scenic ViViT), every array converted to fp32.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFlaxMsgpack(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let tensors = try? FlaxCheckpoint.decode(bytes: FuzzInput.bytes(data, size), file: "fuzz.msgpack") else { return 0 }
    for entry in tensors { _ = try? entry.tensor.floats() }
    return 0
}

@_cdecl("FuzzFlaxMsgpack_main")
public func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv, fuzzFlaxMsgpack)
}

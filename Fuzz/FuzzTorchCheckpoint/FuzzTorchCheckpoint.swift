import FuzzSupport
import TubeletLoading

/// libFuzzer entry point: a torch.save zip (zip reader, restricted unpickler, storages, tensor views),
/// then what `tubelet import` does next: pick the state dict and convert every tensor.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTorchCheckpoint(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzInput.withFile(data, size) { path in
        guard let root = try? TorchCheckpoint.load(path: path) else { return }
        _ = root.jsonObject
        for entry in TorchCheckpoint.stateDict(root) ?? [] { _ = try? entry.tensor.floats() }
    }
    return 0
}

@_cdecl("FuzzTorchCheckpoint_main")
public func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv, fuzzTorchCheckpoint)
}

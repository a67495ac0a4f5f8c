import FuzzSupport
import TubeletLoading

/// libFuzzer entry point: a .safetensors file, then a Tubelet model file (the daemon's loader).
/// Errors are expected; crashes, hangs and runaway allocations are the bugs.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzInput.withFile(data, size) { path in
        if let file = try? SafeTensorsFile(path: path) {
            for name in file.names { _ = try? file.tensor(name)?.floats() }
        }
        _ = try? ModelFile.load(path: path)
    }
    return 0
}

@_cdecl("FuzzSafeTensors_main")
public func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv, fuzzSafeTensors)
}

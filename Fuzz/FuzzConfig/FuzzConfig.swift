import FuzzSupport
import TubeletDaemon

/// libFuzzer entry point: the daemon's YAML configuration (Yams/libyaml, then the strict reader).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if let config = try? DaemonConfig.parse(yaml: text, path: "/etc/tubelet/fuzz.yaml") {
        _ = config.cameras.map(\.id)
    }
    return 0
}

@_cdecl("FuzzConfig_main")
public func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runFuzzer(argc, argv, fuzzConfig)
}

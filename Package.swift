// swift-tools-version:6.0
import PackageDescription

// Kernels and models: AVX2/FMA code generation (every machine we target has it) and the Swift 5
// language mode, since their parallel loops hand raw pointers to worker threads.
let fastMaths: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"]), .swiftLanguageMode(.v5)]

// GEMM backend, a build-time choice behind one cblas interface: TUBELET_BLAS=openblas (default, the
// design card's) or TUBELET_BLAS=blis (Debian's libblis-dev), e.g. `TUBELET_BLAS=blis swift build -c release`.
let blas = Context.environment["TUBELET_BLAS"] ?? "openblas"
guard ["openblas", "blis"].contains(blas) else { fatalError("TUBELET_BLAS must be openblas or blis, got '\(blas)'") }
let blasModule = blas == "blis" ? "CBLIS" : "CBLAS"
let kernelSettings = fastMaths + (blas == "blis" ? [.define("TUBELET_BLAS_BLIS")] : [])

// Layers point one way: kernels <- models <- loading <- streaming <- daemon / CLI. Each target declares
// exactly the modules its files import.
let package = Package(
    name: "Tubelet",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "tubelet", targets: ["tubelet"]),
        .executable(name: "tubeletd", targets: ["tubeletd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // Daemon only: graceful shutdown and SIGHUP, YAML with line/column marks.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
    ],
    targets: [
        // C system libraries (Debian -dev packages).
        blas == "blis" ? .systemLibrary(name: "CBLIS", path: "Sources/CBLIS")
                       : .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas"),
        .systemLibrary(name: "CMalloc", path: "Sources/CMalloc"),
        .systemLibrary(name: "CFFmpeg", path: "Sources/CFFmpeg", pkgConfig: "libavformat libavcodec libavutil libswscale"),
        .systemLibrary(name: "CV4L2", path: "Sources/CV4L2", pkgConfig: "libv4l2"),
        .systemLibrary(name: "CZMQ", path: "Sources/CZMQ", pkgConfig: "libzmq"),
        // Wrappers for C APIs Swift cannot call directly (variadic functions, function-like macros).
        .target(name: "CTubeletShim", dependencies: ["CFFmpeg", "CV4L2", "CZMQ"], path: "Sources/CTubeletShim"),
        // Our packed-panel GEMM and fused epilogues (AVX2 + FMA intrinsics).
        .target(name: "CTubeletGemm", path: "Sources/CTubeletGemm",
                cSettings: [.unsafeFlags(["-O3", "-mavx2", "-mfma"])]),

        .target(name: "TubeletKernels", dependencies: [.target(name: blasModule), "CMalloc", "CTubeletGemm"],
                swiftSettings: kernelSettings),
        .target(name: "TubeletModels", dependencies: ["TubeletKernels"],
                swiftSettings: fastMaths),
        .target(name: "TubeletLoading", dependencies: ["TubeletKernels", "TubeletModels"]),
        .target(name: "TubeletStreaming", dependencies: [
            "TubeletKernels", "TubeletModels", "TubeletLoading", "CFFmpeg", "CV4L2", "CTubeletShim",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "TubeletDaemon", dependencies: [
            "TubeletStreaming", "TubeletLoading", "CZMQ",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .executableTarget(name: "tubelet", dependencies: [
            "TubeletKernels", "TubeletModels", "TubeletLoading", "TubeletStreaming", "TubeletDaemon",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "tubeletd", dependencies: [
            "TubeletDaemon",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),

        .testTarget(name: "TubeletKernelsTests", dependencies: ["TubeletKernels"]),
        .testTarget(name: "TubeletLoadingTests", dependencies: ["TubeletLoading", "TubeletKernels"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "TubeletModelsTests", dependencies: ["TubeletModels", "TubeletLoading", "TubeletKernels"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "TubeletStreamingTests", dependencies: ["TubeletStreaming", "TubeletLoading", "TubeletModels", "TubeletKernels"]),
        // Runs the built `tubelet` binary (build it first: `swift build --build-tests`).
        .testTarget(name: "TubeletCLITests", dependencies: ["TubeletLoading", "TubeletKernels"]),
        // Config, decisions, events, HTTP and notify units, and the built `tubeletd` / `tubelet` binaries end to end.
        .testTarget(name: "TubeletDaemonTests", dependencies: [
            "TubeletDaemon", "TubeletLoading", "TubeletModels", "TubeletStreaming", .product(name: "Logging", package: "swift-log"),
        ]),
    ]
)

// libFuzzer targets (Fuzz/run), declared only when TUBELET_FUZZ is set: they need
// `-sanitize=fuzzer`, which the normal build and CI never use.
if Context.environment["TUBELET_FUZZ"] != nil {
    let fuzzers: [(name: String, dependencies: [Target.Dependency])] = [
        ("FuzzSafeTensors", ["TubeletLoading", "FuzzSupport"]),
        ("FuzzTorchCheckpoint", ["TubeletLoading", "FuzzSupport"]),
        ("FuzzFlaxMsgpack", ["TubeletLoading", "FuzzSupport"]),
        ("FuzzConfig", ["TubeletDaemon", "FuzzSupport"]),
    ]
    package.targets.append(.target(name: "FuzzSupport", path: "Fuzz/FuzzSupport"))
    for fuzzer in fuzzers {
        package.targets.append(.executableTarget(name: fuzzer.name, dependencies: fuzzer.dependencies, path: "Fuzz/\(fuzzer.name)"))
        package.products.append(.executable(name: fuzzer.name, targets: [fuzzer.name]))
    }
}

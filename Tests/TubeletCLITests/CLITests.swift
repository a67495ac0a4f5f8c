import Foundation
import XCTest
import TubeletKernels
import TubeletLoading

/// Runs the real `tubelet` binary: the error contract (one line naming the file, exit status 2)
/// and full import → infer round trips.
final class CLITests: XCTestCase {
    /// The Video Swin fixtures of the model tests, read from the source tree.
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../TubeletModelsTests/Fixtures/swin").standardized

    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("tubelet-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    struct Result { let status: Int32; let stdout: String; let stderr: String }

    /// The `tubelet` built next to this test bundle.
    func tubelet(_ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        let directory = Bundle.main.executableURL!.deletingLastPathComponent()
        let binary = directory.appendingPathComponent("tubelet")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw XCTSkip("no tubelet binary at \(binary.path); run `swift build --build-tests` first")
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// Exit 2 with exactly one line on stderr that names `file` and says `expected`.
    func assertOneLineError(_ result: Result, naming file: String, saying expected: String,
                            sourceFile: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.status, 2, result.stderr, file: sourceFile, line: line)
        let lines = result.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "stderr: \(result.stderr)", file: sourceFile, line: line)
        XCTAssertTrue(result.stderr.contains(file), "stderr should name \(file): \(result.stderr)", file: sourceFile, line: line)
        XCTAssertTrue(result.stderr.contains(expected), "stderr should say '\(expected)': \(result.stderr)", file: sourceFile, line: line)
        XCTAssertEqual(result.stdout, "", file: sourceFile, line: line)
    }

    func importFixture(_ name: String = "window_433", _ checkpoint: String = "official.pth") throws -> String {
        let model = scratch.appendingPathComponent("model.safetensors").path
        let result = try tubelet(["import", Self.fixtures.appendingPathComponent("\(name)/\(checkpoint)").path, "-o", model])
        XCTAssertEqual(result.status, 0, result.stderr)
        return model
    }

    /// Both GEMM backends: our packed kernel (default) and cblas for every product (`TUBELET_GEMM=blas`).
    func testImportThenInferClipMatchesReferenceLogits() throws {
        let model = try importFixture()
        var logits: [String: [Double]] = [:]
        for backend in ["packed", "blas"] {
            logits[backend] = try inferMatchesReference(model: model, environment: ["TUBELET_GEMM": backend])
        }
        // Both within tolerance of the reference, and really two backends (they round differently).
        XCTAssertNotEqual(logits["packed"], logits["blas"], "TUBELET_GEMM=blas took effect")
    }

    @discardableResult
    func inferMatchesReference(model: String, environment: [String: String]) throws -> [Double] {
        let result = try tubelet(["infer", "--model", model, "--clip",
                                  Self.fixtures.appendingPathComponent("window_433/clip.safetensors").path, "--json", "--top", "3"],
                                 environment: environment)
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let logits = try XCTUnwrap(json["logits"] as? [Double])
        let expected = try SafeTensorsFile(path: Self.fixtures.appendingPathComponent("window_433/expected.safetensors").path)
            .tensor("logits")!.floats().array
        XCTAssertEqual(logits.count, expected.count)
        let scale = max(1, expected.map { abs(Double($0)) }.max()!)
        for (a, b) in zip(logits, expected) { XCTAssertEqual(a, Double(b), accuracy: 1e-4 * scale) }
        let top = try XCTUnwrap(json["top"] as? [[String: Any]])
        XCTAssertEqual(top.count, 3)
        let best = logits.indices.max { logits[$0] < logits[$1] }!
        XCTAssertEqual(top[0]["index"] as? Int, best)
        XCTAssertEqual(top[0]["label"] as? String, "class_\(best)")
        let scores = top.compactMap { $0["score"] as? Double }
        XCTAssertEqual(scores, scores.sorted(by: >))
        return logits
    }

    func testInferOnARealVideoFilePrintsJSON() throws {
        let video = scratch.appendingPathComponent("sample.mp4").path
        let ffmpeg = Process()
        ffmpeg.executableURL = URL(fileURLWithPath: "/usr/bin/ffmpeg")
        ffmpeg.arguments = ["-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "3",
                            "-c:v", "libx264", "-pix_fmt", "yuv420p", video]
        try ffmpeg.run()
        ffmpeg.waitUntilExit()
        XCTAssertEqual(ffmpeg.terminationStatus, 0)
        let labels = scratch.appendingPathComponent("labels.txt").path
        try "walking\nrunning\njumping\nsitting\nwaving\nclapping\n".write(toFile: labels, atomically: true, encoding: .utf8)
        let model = scratch.appendingPathComponent("model.safetensors").path
        let imported = try tubelet(["import", Self.fixtures.appendingPathComponent("window_433/torchvision.pth").path,
                                    "-o", model, "--labels", labels, "--frames", "16", "--frame-stride", "2"])
        XCTAssertEqual(imported.status, 0, imported.stderr)
        let result = try tubelet(["infer", "--model", model, "--video", video, "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let logits = try XCTUnwrap(json["logits"] as? [Double])
        XCTAssertEqual(logits.count, 6)
        XCTAssertTrue(logits.allSatisfy(\.isFinite))
        let top = try XCTUnwrap(json["top"] as? [[String: Any]])
        XCTAssertEqual(top.count, 5)
        let names = ["walking", "running", "jumping", "sitting", "waving", "clapping"]
        for entry in top { XCTAssertEqual(entry["label"] as? String, names[entry["index"] as! Int]) }
        let total = top.compactMap { $0["score"] as? Double }.reduce(0, +)
        XCTAssertGreaterThan(total, 0.5)
        XCTAssertLessThanOrEqual(total, 1.0 + 1e-9)
    }

    /// `eval-stream --config Config/demo.yaml` measures what the demo daemon runs: the committed model
    /// (the import of models/demo/demo.pth), kv reuse at a quarter-clip hop and the config's decisions.
    func testEvalStreamOnTheDemoConfigMeetsTheDemoTargets() throws {
        let repo = Self.fixtures.appendingPathComponent("../../../..").standardized
        func path(_ relative: String) -> String { repo.appendingPathComponent(relative).path }
        let imported = scratch.appendingPathComponent("demo.safetensors").path
        let result = try tubelet(["import", path("models/demo/demo.pth"), "-o", imported])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: imported)), try Data(contentsOf: URL(fileURLWithPath: path("models/demo/demo.safetensors"))),
                       "models/demo/demo.safetensors is `tubelet import models/demo/demo.pth`")
        let truth = path("models/demo/sample_timeline.json")
        let fromConfig = try tubelet(["eval-stream", "--config", path("Config/demo.yaml"), "--truth", truth, "--json"])
        XCTAssertEqual(fromConfig.status, 0, fromConfig.stderr)
        let metrics = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(fromConfig.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(metrics["reuse"] as? String, "kv")
        XCTAssertEqual(metrics["hop"] as? Int, 4)
        XCTAssertEqual(metrics["clip_frames"] as? Int, 16)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(metrics["f1"] as? Double), 0.85, "issue 6 target: \(metrics)")
        XCTAssertLessThanOrEqual(try XCTUnwrap(metrics["median_delay_s"] as? Double), 1.0, "issue 6 target: \(metrics)")
        // An option on the command line overrides the config's value: a higher min score starts fewer actions.
        let stricter = try tubelet(["eval-stream", "--config", path("Config/demo.yaml"), "--truth", truth, "--json", "--min-score", "0.99"])
        let strict = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(stricter.stdout.utf8)) as? [String: Any])
        XCTAssertLessThan(try XCTUnwrap(strict["detections"] as? Int), try XCTUnwrap(metrics["detections"] as? Int))
    }

    func testTruncatedCheckpointGivesOneLineAndExit2() throws {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("window_433/torchvision.pth"))
        let truncated = scratch.appendingPathComponent("truncated.pth")
        try data.prefix(data.count / 2).write(to: truncated)
        let result = try tubelet(["import", truncated.path, "-o", scratch.appendingPathComponent("out.safetensors").path])
        assertOneLineError(result, naming: "truncated.pth", saying: "zip")
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("out.safetensors").path))
    }

    func testOverlappingOffsetsGiveOneLineAndExit2() throws {
        // Two tensors whose byte ranges overlap: [0, 16) and [8, 24).
        let header = #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#
        var bytes = [UInt8](header.utf8)
        while bytes.count % 8 != 0 { bytes.append(0x20) }
        var file = withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { Array($0) } + bytes
        file += [UInt8](repeating: 0, count: 24)
        let path = scratch.appendingPathComponent("overlap.safetensors")
        try Data(file).write(to: path)
        let result = try tubelet(["infer", "--model", path.path, "--clip", Self.fixtures.appendingPathComponent("window_433/clip.safetensors").path])
        assertOneLineError(result, naming: "overlap.safetensors", saying: "overlap")
    }

    func testClipOfWrongRankGivesOneLineAndExit2() throws {
        let model = try importFixture()
        let clip = scratch.appendingPathComponent("rank3.safetensors").path
        try SafeTensorsWriter.write([.init(name: "clip", tensor: Tensor(zeros: [3, 8, 32]))], metadata: [:], to: clip)
        let result = try tubelet(["infer", "--model", model, "--clip", clip])
        assertOneLineError(result, naming: "rank3.safetensors", saying: "expected [3, T, H, W]")
    }

    func testNotAModelFileGivesOneLineAndExit2() throws {
        let clip = Self.fixtures.appendingPathComponent("window_433/clip.safetensors").path
        let result = try tubelet(["infer", "--model", clip, "--clip", clip])
        assertOneLineError(result, naming: "clip.safetensors", saying: "tubelet import")
    }

    /// `tubelet import DIR` + `tubelet infer --clip` for Hugging Face TimeSformer and ViViT directories
    /// (and the original TimeSformer layout), against transformers' logits.
    func testImportThenInferHFDirectoriesMatchTransformers() throws {
        let root = Self.fixtures.deletingLastPathComponent()
        let cases: [(source: String, clip: String, expected: String, extra: [String], says: String)] = [
            ("timesformer/divided", "timesformer/divided/clip.safetensors", "timesformer/divided/expected.safetensors", [], "TimeSformer (divided_space_time)"),
            ("timesformer/divided/original.pyth", "timesformer/divided/clip.safetensors", "timesformer/divided/expected.safetensors", ["--heads", "2"], "original"),
            ("timesformer/joint", "timesformer/joint/clip.safetensors", "timesformer/joint/expected.safetensors", [], "joint_space_time"),
            ("vivit/v5", "vivit/clip.safetensors", "vivit/expected.safetensors", [], "hf-v5 ViViT Model 1"),
        ]
        for item in cases {
            let model = scratch.appendingPathComponent("model.safetensors").path
            let imported = try tubelet(["import", root.appendingPathComponent(item.source).path, "-o", model] + item.extra)
            XCTAssertEqual(imported.status, 0, imported.stderr)
            XCTAssertTrue(imported.stdout.contains(item.says), imported.stdout)
            let result = try tubelet(["infer", "--model", model, "--clip", root.appendingPathComponent(item.clip).path, "--json"])
            XCTAssertEqual(result.status, 0, result.stderr)
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            let logits = try XCTUnwrap(json["logits"] as? [Double])
            let expected = try SafeTensorsFile(path: root.appendingPathComponent(item.expected).path).tensor("logits")!.floats().array
            XCTAssertEqual(logits.count, expected.count, item.source)
            let scale = max(1, expected.map { abs(Double($0)) }.max()!)
            for (a, b) in zip(logits, expected) { XCTAssertEqual(a, Double(b), accuracy: 1e-4 * scale, item.source) }
        }
        // A clip of the wrong frame size: one line, exit 2, no trap.
        let model = scratch.appendingPathComponent("model.safetensors").path
        XCTAssertEqual(try tubelet(["import", root.appendingPathComponent("vivit/v4").path, "-o", model]).status, 0)
        let clip = scratch.appendingPathComponent("small.safetensors").path
        try SafeTensorsWriter.write([.init(name: "clip", tensor: Tensor(zeros: [3, 4, 16, 16]))], metadata: [:], to: clip)
        assertOneLineError(try tubelet(["infer", "--model", model, "--clip", clip]), naming: "small.safetensors", saying: "32x32")
    }

    /// `tubelet import` of official UniFormer checkpoints (plain and {'model_state': …}) with the head
    /// width from --config, then `tubelet infer --clip`, against the official model's logits.
    func testImportThenInferUniFormerMatchesOfficialModel() throws {
        let root = Self.fixtures.deletingLastPathComponent().appendingPathComponent("uniformer")
        for (name, headDim) in [("plain_8f", 8), ("split_16f_nonsquare", 8)] {
            let checkpoint = root.appendingPathComponent("\(name)/checkpoint.pth").path
            let model = scratch.appendingPathComponent("\(name).safetensors").path
            // The head width is not in the tensors: without --config the default 64 does not fit, and the message says so.
            assertOneLineError(try tubelet(["import", checkpoint, "-o", model]), naming: "checkpoint.pth", saying: "headDim")
            let imported = try tubelet(["import", checkpoint, "-o", model, "--config", "{\"headDim\": \(headDim)}"])
            XCTAssertEqual(imported.status, 0, imported.stderr)
            XCTAssertTrue(imported.stdout.contains("UniFormer"), imported.stdout)
            let result = try tubelet(["infer", "--model", model, "--clip", root.appendingPathComponent("\(name)/clip.safetensors").path, "--json"])
            XCTAssertEqual(result.status, 0, result.stderr)
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            let logits = try XCTUnwrap(json["logits"] as? [Double])
            let expected = try SafeTensorsFile(path: root.appendingPathComponent("\(name)/expected.safetensors").path).tensor("logits")!.floats().array
            XCTAssertEqual(logits.count, expected.count, name)
            let scale = max(1, expected.map { abs(Double($0)) }.max()!)
            for (a, b) in zip(logits, expected) { XCTAssertEqual(a, Double(b), accuracy: 1e-4 * scale, name) }
        }
        assertOneLineError(try tubelet(["import", root.appendingPathComponent("plain_8f/checkpoint.pth").path, "-o", scratch.appendingPathComponent("x.safetensors").path,
                                        "--config", #"{"headdim": 8}"#]), naming: "--config", saying: "unknown key 'headdim'")
    }
}

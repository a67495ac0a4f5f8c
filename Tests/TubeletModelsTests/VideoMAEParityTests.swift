import Foundation
import XCTest
import TubeletKernels
import TubeletLoading
import TubeletModels

/// Parity with Hugging Face transformers 5.x `VideoMAEForVideoClassification`: fixtures made by
/// tools/make_videomae_fixtures.py with every parameter randomised, on configs that are not the defaults
/// (frames, image size, patch, tubelet size, depth, width, heads, both poolings, with and without q/v
/// biases, both GELUs). Each directory goes through `tubelet import`'s path (ModelRegistry →
/// ModelFile.write → ModelFile.load).
final class VideoMAEParityTests: XCTestCase {
    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("videomae")

    func imported(_ name: String) throws -> ImportedModel {
        try ModelRegistry.importModel(try ImportSource(path: Self.fixtures.appendingPathComponent(name).path))
    }

    func load(_ imported: ImportedModel) throws -> TubeletModel {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("tubelet-videomae-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        try imported.write(to: output, source: "test")
        return try ModelFile.load(path: output)
    }

    func tensor(_ relative: String, _ name: String) throws -> Tensor {
        let path = Self.fixtures.appendingPathComponent(relative).path
        return try XCTUnwrap(try SafeTensorsFile(path: path).tensor(name), "\(name) missing in \(relative)").floats()
    }

    func testEveryFixtureMatchesTransformers() throws {
        for name in ["mean_hub", "mean_v5", "first_token"] {
            let model = try load(try imported(name))
            XCTAssertEqual(model.architecture, "videomae", name)
            let clip = try tensor("\(name)/clip.safetensors", "clip")
            XCTAssertNil(model.inputProblem(clip.shape), name)
            assertParity(model.logits(clip), try tensor("\(name)/expected.safetensors", "logits"), name)
        }
    }

    /// The Hub's layout (q_bias / v_bias, qkv_bias) and transformers 5's (query.bias / value.bias, qv_bias) read alike.
    func testBothKeyLayoutsAndBothConfigNames() throws {
        let hub = try imported("mean_hub"), v5 = try imported("mean_v5")
        XCTAssertEqual(hub.layout, "hf")
        XCTAssertEqual(v5.layout, "hf-v5")
        XCTAssertEqual(hub.configJSON, v5.configJSON)
        let config = try XCTUnwrap(hub.config(of: VideoMAE.self))
        XCTAssertEqual(config, VideoMAEConfig(imageSize: 32, patchSize: 8, numChannels: 3, numFrames: 4, tubeletSize: 2, hiddenSize: 48,
                                              numHiddenLayers: 2, numAttentionHeads: 3, intermediateSize: 96, hiddenAct: "gelu",
                                              layerNormEps: 1e-6, qkvBias: true, useMeanPooling: true, numClasses: 5))
        XCTAssertEqual(hub.weights.map(\.name), v5.weights.map(\.name), "stored under one set of names")
        XCTAssertTrue(hub.weights.contains { $0.name == "videomae.encoder.layer.1.attention.attention.q_bias" })
        XCTAssertEqual(hub.labels, (0..<5).map { "action_\($0)" })

        let first = try XCTUnwrap(try imported("first_token").config(of: VideoMAE.self))
        XCTAssertFalse(first.qkvBias)
        XCTAssertFalse(first.useMeanPooling)
        XCTAssertEqual(first.hiddenAct, "gelu_new")
        XCTAssertEqual(first.tubelet, [3, 6, 6])
    }

    /// preprocessor_config.json is read; without one, VideoMAEImageProcessor's defaults at the model's size.
    func testPreprocessing() throws {
        let recipe = try imported("mean_hub").preprocessing
        XCTAssertEqual(recipe.mean, [0.5, 0.4, 0.3])
        XCTAssertEqual(recipe.std, [0.2, 0.25, 0.3])
        XCTAssertEqual(recipe.resizeShortSide, 36)
        XCTAssertEqual(recipe.cropSize, 32)
        XCTAssertEqual(recipe.frames, 4)
        let defaults = try imported("first_token").preprocessing
        XCTAssertEqual(defaults.mean, [0.485, 0.456, 0.406])
        XCTAssertEqual(defaults.cropSize, 24)
        XCTAssertEqual(defaults.frames, 6)
    }

    /// The position table is transformers' get_sinusoid_encoding_table: sin at even, cos at odd columns.
    func testSinusoidTable() {
        let table = VideoMAE.sinusoidTable(positions: 3, dim: 4)
        XCTAssertEqual(table.array, [0, 1, 0, 1,
                                     Float(sin(1.0)), Float(cos(1.0)), Float(sin(0.01)), Float(cos(0.01)),
                                     Float(sin(2.0)), Float(cos(2.0)), Float(sin(0.02)), Float(cos(0.02))])
    }

    /// A clip of another size than the configured one is refused with a message, not a trap.
    func testWrongClipSizeIsAProblem() throws {
        let model = try load(try imported("first_token"))
        XCTAssertEqual(model.inputProblem([3, 4, 24, 24]), "VideoMAE expects 6 frames, got 4")
        XCTAssertEqual(model.inputProblem([3, 6, 32, 32]), "VideoMAE expects 24x24 frames, got 32x32")
    }
}

import Foundation
import XCTest
import TubeletKernels
import TubeletLoading
import TubeletModels

/// Parity with Hugging Face transformers 5.x (TimesformerForVideoClassification,
/// VivitForVideoClassification): fixtures made by tools/make_hf_fixtures.py with every parameter
/// randomised. Each checkpoint goes through `tubelet import`'s code path (HFImport →
/// ModelFile.write → ModelFile.load).
final class HFParityTests: XCTestCase {
    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!

    func writeAndLoad(_ imported: HFImport.Imported) throws -> TubeletModel {
        let output = FileManager.default.temporaryDirectory
            .appendingPathComponent("tubelet-hf-parity-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        try ModelFile.write(architecture: imported.architecture, configJSON: imported.configJSON, weights: imported.weights,
                            preprocessing: imported.preprocessing, labels: imported.labels, source: "test", to: output)
        return try ModelFile.load(path: output)
    }

    func importDirectory(_ relative: String) throws -> TubeletModel {
        try writeAndLoad(try HFImport.importDirectory(path: Self.fixtures.appendingPathComponent(relative).path))
    }

    func tensor(_ relative: String, _ name: String) throws -> Tensor {
        let file = Self.fixtures.appendingPathComponent(relative)
        let raw = try XCTUnwrap(try SafeTensorsFile(path: file.path).tensor(name), "\(name) missing in \(relative)")
        return try raw.floats()
    }

    func testTimeSformerDividedSpaceTime() throws {
        let model = try importDirectory("timesformer/divided")
        XCTAssertEqual(model.architecture, "timesformer")
        guard let timesformer = model.network as? TimeSformer else { return XCTFail("not a TimeSformer") }
        XCTAssertEqual(timesformer.config.attentionType, .dividedSpaceTime)
        XCTAssertEqual(timesformer.config.numFrames, 8)
        let clip = try tensor("timesformer/divided/clip.safetensors", "clip")
        XCTAssertNil(model.inputProblem(clip.shape))
        assertParity(model.logits(clip), try tensor("timesformer/divided/expected.safetensors", "logits"), "divided")
    }

    /// 4 frames into an 8-frame model: time embeddings interpolated (nearest) and, as
    /// transformers does, the divided layers grouping tokens by config.num_frames.
    func testTimeSformerShortClipInterpolatesTimeEmbeddings() throws {
        let model = try importDirectory("timesformer/divided")
        let clip = try tensor("timesformer/divided/clip.safetensors", "clip_short")
        XCTAssertEqual(clip.shape[1], 4)
        assertParity(model.logits(clip), try tensor("timesformer/divided/expected.safetensors", "logits_short"), "divided, 4 of 8 frames")
    }

    func testTimeSformerJointSpaceTimeFromPytorchModelBin() throws {
        let model = try importDirectory("timesformer/joint")
        guard let timesformer = model.network as? TimeSformer else { return XCTFail("not a TimeSformer") }
        XCTAssertEqual(timesformer.config.attentionType, .jointSpaceTime)
        let clip = try tensor("timesformer/joint/clip.safetensors", "clip")
        assertParity(model.logits(clip), try tensor("timesformer/joint/expected.safetensors", "logits"), "joint")
    }

    /// transformers' space-only TimeSformer returns one row of logits per frame.
    func testTimeSformerSpaceOnlyPerFrameLogits() throws {
        let model = try importDirectory("timesformer/space_only")
        guard let timesformer = model.network as? TimeSformer else { return XCTFail("not a TimeSformer") }
        XCTAssertEqual(timesformer.config.attentionType, .spaceOnly)
        let clip = try tensor("timesformer/space_only/clip.safetensors", "clip")
        assertParity(timesformer.frameLogits(clip), try tensor("timesformer/space_only/expected.safetensors", "frame_logits"), "space_only")
    }

    /// The same weights as the divided fixture, in the facebookresearch layout ({'model_state': model.blocks.N…}).
    func testOriginalTimeSformerCheckpoint() throws {
        let path = Self.fixtures.appendingPathComponent("timesformer/divided/original.pyth").path
        let imported = try HFImport.importOriginalTimeSformer(path: path, heads: 2)
        XCTAssertEqual(imported.layout, "original")
        let hf = try HFImport.importDirectory(path: Self.fixtures.appendingPathComponent("timesformer/divided").path)
        var expectedConfig = try XCTUnwrap(hf.config(of: TimeSformer.self))
        expectedConfig.layerFramesFromConfig = false
        XCTAssertEqual(imported.config(of: TimeSformer.self), expectedConfig)
        let model = try writeAndLoad(imported)
        let clip = try tensor("timesformer/divided/clip.safetensors", "clip")
        assertParity(model.logits(clip), try tensor("timesformer/divided/expected.safetensors", "logits"), "original layout")
        // On a 4-frame clip the original groups its divided attention by the clip's 4 frames,
        // transformers by config.num_frames = 8: different functions.
        let short = try tensor("timesformer/divided/clip.safetensors", "clip_short")
        let hfShort = try tensor("timesformer/divided/expected.safetensors", "logits_short")
        let originalShort = model.logits(short)
        XCTAssertGreaterThan((0..<hfShort.count).map { abs(originalShort[$0] - hfShort[$0]) }.max()!, 1e-3)
    }

    func testTimeSformerPreprocessorConfigIsRead() throws {
        let imported = try HFImport.importDirectory(path: Self.fixtures.appendingPathComponent("timesformer/divided").path)
        XCTAssertEqual(imported.preprocessing.mean, [0.45, 0.45, 0.45])
        XCTAssertEqual(imported.preprocessing.std, [0.225, 0.225, 0.225])
        XCTAssertEqual(imported.preprocessing.resizeShortSide, 40)
        XCTAssertEqual(imported.preprocessing.cropSize, 32)
        XCTAssertEqual(imported.preprocessing.frames, 8)
        // No preprocessor_config.json: transformers' ViViT processor defaults (x/127.5 - 1, then mean/std 0.5).
        let vivit = try HFImport.importDirectory(path: Self.fixtures.appendingPathComponent("vivit/v4").path)
        XCTAssertEqual(vivit.preprocessing.mean, [1.5, 1.5, 1.5])
        XCTAssertEqual(vivit.preprocessing.std, [0.5, 0.5, 0.5])
        XCTAssertEqual(vivit.preprocessing.pixelScale, Float(1 / 127.5))
    }

    func testViViTModel1BothKeyLayouts() throws {
        let clip = try tensor("vivit/clip.safetensors", "clip")
        let expected = try tensor("vivit/expected.safetensors", "logits")
        for (layout, name) in [("v4", "hf"), ("v5", "hf-v5")] {
            let imported = try HFImport.importDirectory(path: Self.fixtures.appendingPathComponent("vivit/\(layout)").path)
            XCTAssertEqual(imported.layout, name)
            XCTAssertEqual(imported.config(of: ViViT.self)?.gelu, .tanh)
            let model = try writeAndLoad(imported)
            XCTAssertEqual(model.architecture, "vivit")
            assertParity(model.logits(clip), expected, "vivit \(layout)")
        }
    }

    func testKeyMappings() {
        XCTAssertEqual(HFImport.vivitV5ToV4("vivit.layers.3.attention.q_proj.weight"), "vivit.encoder.layer.3.attention.attention.query.weight")
        XCTAssertEqual(HFImport.vivitV5ToV4("vivit.layers.0.attention.o_proj.bias"), "vivit.encoder.layer.0.attention.output.dense.bias")
        XCTAssertEqual(HFImport.vivitV5ToV4("vivit.layers.1.mlp.fc2.weight"), "vivit.encoder.layer.1.output.dense.weight")
        XCTAssertEqual(HFImport.vivitV5ToV4("vivit.embeddings.cls_token"), "vivit.embeddings.cls_token")
        XCTAssertEqual(HFImport.originalTimeSformerToHF("blocks.5.temporal_attn.qkv.weight"), "timesformer.encoder.layer.5.temporal_attention.attention.qkv.weight")
        XCTAssertEqual(HFImport.originalTimeSformerToHF("blocks.0.temporal_fc.bias"), "timesformer.encoder.layer.0.temporal_dense.bias")
        XCTAssertEqual(HFImport.originalTimeSformerToHF("time_embed"), "timesformer.embeddings.time_embeddings")
        XCTAssertNil(HFImport.originalTimeSformerToHF("blocks.0.unknown.weight"))
    }

    func testNearestInterpolationIndexMatchesPyTorch() {
        // torch.nn.functional.interpolate(torch.arange(8.).view(1,1,8), size=n, mode="nearest")
        XCTAssertEqual((0..<4).map { nearestSourceIndex($0, input: 8, output: 4) }, [0, 2, 4, 6])
        XCTAssertEqual((0..<3).map { nearestSourceIndex($0, input: 8, output: 3) }, [0, 2, 5])
        XCTAssertEqual((0..<16).map { nearestSourceIndex($0, input: 8, output: 16) }, (0..<16).map { $0 / 2 })
        XCTAssertEqual((0..<5).map { nearestSourceIndex($0, input: 3, output: 5) }, [0, 0, 1, 1, 2])
    }
}

import Foundation
import XCTest
import TubeletKernels
import TubeletLoading
import TubeletModels

/// Parity with the official UniFormer video model (Sense-X/UniFormer slowfast/models/uniformer.py,
/// copied into tools/uniformer_reference.py): fixtures made by tools/make_uniformer_fixtures.py with
/// every parameter and BatchNorm statistic randomised. Each checkpoint goes through `tubelet import`'s
/// code path (UniFormerImport → ModelFile.write → ModelFile.load, where BatchNorm is folded).
final class UniFormerParityTests: XCTestCase {
    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("uniformer")

    func importFixture(_ name: String, headDim: Int?) throws -> (HFImport.Imported, TubeletModel) {
        let path = Self.fixtures.appendingPathComponent("\(name)/checkpoint.pth").path
        let imported = try UniFormerImport.importCheckpoint(path: path, options: .init(headDim: headDim))
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("tubelet-uniformer-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        try ModelFile.write(architecture: imported.architecture, configJSON: imported.configJSON, weights: imported.weights,
                            preprocessing: imported.preprocessing, labels: imported.labels, source: "test", to: output)
        return (imported, try ModelFile.load(path: output))
    }

    func tensor(_ name: String, _ file: String, _ key: String) throws -> Tensor {
        let raw = try XCTUnwrap(try SafeTensorsFile(path: Self.fixtures.appendingPathComponent("\(name)/\(file)").path).tensor(key))
        return try raw.floats()
    }

    /// max|Δ| ≤ 1e-4 · max(1, max|expected|)
    func assertParity(_ name: String, headDim: Int, file: StaticString = #filePath, line: UInt = #line) throws -> UniFormerConfig {
        let (imported, model) = try importFixture(name, headDim: headDim)
        XCTAssertEqual(model.architecture, "uniformer", file: file, line: line)
        let clip = try tensor(name, "clip.safetensors", "clip"), expected = try tensor(name, "expected.safetensors", "logits")
        XCTAssertNil(model.inputProblem(clip.shape), file: file, line: line)
        let actual = model.logits(clip)
        XCTAssertEqual(actual.count, expected.count, file: file, line: line)
        var worst: Float = 0, largest: Float = 0
        for i in 0..<expected.count {
            worst = max(worst, abs(actual[i] - expected[i]))
            largest = max(largest, abs(expected[i]))
        }
        print("UniFormer parity \(name): max|Δ| \(worst), max|logit| \(largest)")
        XCTAssertLessThanOrEqual(worst, 1e-4 * max(1, largest), "\(name): max|Δ| \(worst), max|expected| \(largest)", file: file, line: line)
        return try XCTUnwrap(imported.config(of: UniFormer.self))
    }

    /// 8 frames, square, SABlocks with qkv bias, a plain state dict.
    func testPlainStateDict8Frames() throws {
        let config = try assertParity("plain_8f", headDim: 8)
        XCTAssertEqual(config, UniFormerConfig(embedDims: [16, 16, 24, 32], depths: [2, 1, 2, 1], headDim: 8, numClasses: 6))
    }

    /// 16 frames of 32x40, SplitSABlocks, slowfast's {'model_state', 'epoch', 'optimizer_state', 'cfg'}.
    func testModelStateSplitAttention16FramesNonSquare() throws {
        let config = try assertParity("split_16f_nonsquare", headDim: 8)
        XCTAssertTrue(config.split)
        XCTAssertEqual(config.depths, [1, 2, 2, 1])
    }

    /// 7 frames of 36x44 (odd sizes floor), 3x2x2 patch embeddings, no qkv bias, head width 4.
    func testStdPatchEmbeddingsOddSizesNoQKVBias() throws {
        let config = try assertParity("std_odd", headDim: 4)
        XCTAssertTrue(config.stdPatchEmbed)
        XCTAssertFalse(config.qkvBias)
        XCTAssertFalse(config.split)
    }

    /// The head width is not in the tensors: the default 64 does not divide these stages, and says how to set it.
    func testDefaultHeadDimIsCheckedWithAMessage() throws {
        let path = Self.fixtures.appendingPathComponent("plain_8f/checkpoint.pth").path
        XCTAssertThrowsError(try UniFormerImport.importCheckpoint(path: path)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("checkpoint.pth") && text.contains("headDim"), text)
        }
        // A wrong but dividing head width gives other logits: the option is really used.
        let (_, model) = try importFixture("plain_8f", headDim: 4)
        let clip = try tensor("plain_8f", "clip.safetensors", "clip"), expected = try tensor("plain_8f", "expected.safetensors", "logits")
        let logits = model.logits(clip)
        XCTAssertGreaterThan((0..<expected.count).map { abs(logits[$0] - expected[$0]) }.max()!, 1e-3)
    }

    func testOptionsRejectUnknownKeys() throws {
        XCTAssertEqual(try UniFormerImport.Options(json: #"{"headDim": 32}"#).headDim, 32)
        XCTAssertThrowsError(try UniFormerImport.Options(json: #"{"headdim": 32}"#)) { XCTAssertTrue("\($0)".contains("headdim"), "\($0)") }
        XCTAssertThrowsError(try UniFormerImport.Options(json: #"{"headDim": 0}"#))
    }

    /// UniFormer-S and -B topologies build with head width 64, and their FLOP count is the published one:
    /// UniFormer-S 16x224 is 41.8 GFLOPs in the paper (multiply-adds), ~83.6 here (2 per multiply-add).
    func testPublishedTopologiesAndFlops() throws {
        let small = try UniFormer(config: .small(), weights: randomWeights(seed: 3))
        XCTAssertEqual(small.attentionStages.map { $0.count }, [8, 3])
        XCTAssertEqual(small.attentionStages[0][0].attention.heads, 5)
        XCTAssertEqual(small.attentionStages[1][0].attention.heads, 8)
        // LayerNorm eps: 1e-6 in the SA blocks (norm_layer), PyTorch's 1e-5 in the patch embeddings; a
        // 1e-5 vs 1e-6 slip is below the parity tolerance on these activations, so it is checked here.
        XCTAssertEqual(small.attentionStages[0][0].norm1.eps, 1e-6)
        XCTAssertEqual(small.attentionStages[1][2].norm2.eps, 1e-6)
        XCTAssertEqual(small.stemNorm.eps, 1e-5)
        XCTAssertEqual(small.merges.map(\.norm.eps), [1e-5, 1e-5, 1e-5])
        let gflop = small.flops(frames: 16, height: 224, width: 224) / 1e9
        XCTAssertEqual(gflop / 2, 41.8, accuracy: 41.8 * 0.03, "UniFormer-S 16x224: \(gflop / 2) GMACs")
        // Parameters (BatchNorm statistics are buffers): 21,400,400 and 49,813,200 in the reference model.
        func parameters(_ config: UniFormerConfig) -> Int {
            config.parameterShapes().filter { !$0.name.contains("running_") }.reduce(0) { $0 + $1.shape.reduce(1, *) }
        }
        XCTAssertEqual(parameters(.small()), 21_400_400)
        XCTAssertEqual(parameters(.base()), 49_813_200)
    }
}

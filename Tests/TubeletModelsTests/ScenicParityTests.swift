import Foundation
import XCTest
import TubeletKernels
import TubeletLoading
import TubeletModels

/// Parity with the authors' scenic ViViT (Models 2, 3, 4) through tools/vivit_scenic_reference.py
/// (a jax/flax re-implementation of scenic's code): fixtures made by tools/make_vivit_fixtures.py,
/// every parameter randomised, checkpoints as scenic writes them (flax msgpack). Each goes through
/// `tubelet import --vivit-model N`'s code path (ScenicImport → ModelFile.write → ModelFile.load).
final class ScenicParityTests: XCTestCase {
    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("vivit_scenic")

    func load(_ name: String, model: Int) throws -> (TubeletModel, HFImport.Imported) {
        let imported = try ScenicImport.importCheckpoint(path: Self.fixtures.appendingPathComponent("\(name)/checkpoint.msgpack").path,
                                                         model: model, options: .init(numFrames: 8))
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("tubelet-scenic-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        try ModelFile.write(architecture: imported.architecture, configJSON: imported.configJSON, weights: imported.weights,
                            preprocessing: imported.preprocessing, labels: imported.labels, source: "test", to: output)
        return (try ModelFile.load(path: output), imported)
    }

    func tensor(_ relative: String, _ name: String) throws -> Tensor {
        let raw = try XCTUnwrap(try SafeTensorsFile(path: Self.fixtures.appendingPathComponent(relative).path).tensor(name))
        return try raw.floats()
    }

    func run(_ name: String, model number: Int) throws -> (ScenicViViT, Tensor, Tensor) {
        let (model, _) = try load(name, model: number)
        XCTAssertEqual(model.architecture, "vivit_scenic")
        guard let vivit = model.network as? ScenicViViT else { throw XCTSkip("not a scenic ViViT") }
        let clip = try tensor("\(name)/clip.safetensors", "clip")
        XCTAssertNil(model.inputProblem(clip.shape))
        return (vivit, model.logits(clip), try tensor("\(name)/expected.safetensors", "logits"))
    }

    func testModel2FactorisedEncoder() throws {
        let (vivit, logits, expected) = try run("model2", model: 2)
        XCTAssertEqual(vivit.config.variant, .factorisedEncoder)
        XCTAssertEqual(vivit.config.classifier, "token")
        XCTAssertEqual(vivit.config.numFrames, 8)  // from the temporal position embedding
        XCTAssertEqual(vivit.config.imageSize, 32)  // from the spatial one
        XCTAssertEqual(vivit.config.tubeletSize, [2, 8, 8])
        XCTAssertEqual(vivit.config.encoder, .init(layers: 2, heads: 2, mlpDim: 64))
        XCTAssertEqual(vivit.config.temporal, .init(layers: 2, heads: 4, mlpDim: 48))
        assertParity(logits, expected, "model 2")
    }

    /// The spatial encoder computed one tubelet at a time equals the whole clip's, bit for bit.
    func testModel2SpatialTokensPerTubeletAreExact() throws {
        let (model, _) = try load("model2", model: 2)
        guard let vivit = model.network as? ScenicViViT else { return XCTFail("not a scenic ViViT") }
        let clip = try tensor("model2/clip.safetensors", "clip")
        let e = vivit.embedTubelets(clip)
        let whole = vivit.spatialTokens(e)
        let d = vivit.config.hiddenSize, n = e.shape[1]
        for t in 0..<e.shape[0] {
            let slice = Tensor(uninitialized: [1, n, d])
            slice.data.update(from: e.data + t * n * d, count: n * d)
            XCTAssertEqual(vivit.spatialTokens(slice).array, Array(whole.array[(t * d)..<((t + 1) * d)]))
        }
        XCTAssertEqual(vivit.temporalLogits(whole).array, model.logits(clip).array)
    }

    /// Model 2 with scenic's 'gap' classifier: no cls tokens, each encoder's tokens averaged after encoder_norm.
    func testModel2GapClassifier() throws {
        let (model, _) = try load("model2_gap", model: 2)
        guard let vivit = model.network as? ScenicViViT else { return XCTFail("not a scenic ViViT") }
        XCTAssertEqual(vivit.config.classifier, "gap")
        XCTAssertNil(vivit.spatialCls)
        XCTAssertEqual(vivit.config.temporal, .init(layers: 1, heads: 2, mlpDim: 32))
        let clip = try tensor("model2/clip.safetensors", "clip")  // model2_gap shares model2's clip
        assertParity(model.logits(clip), try tensor("model2_gap/expected.safetensors", "logits"), "model 2 gap")
    }

    /// The tree may sit under `optimizer/target` (older scenic train states) and the standard block's
    /// children may be numbered per type (flax ≥ 0.7 auto-names: LayerNorm_0, LayerNorm_1,
    /// MultiHeadDotProductAttention_0, MlpBlock_0): the same weights, the same logits.
    func testOtherTreeRootsAndBlockNumbering() throws {
        let path = Self.fixtures.appendingPathComponent("model4/checkpoint.msgpack").path
        let renames = [("params/", "optimizer/target/"), ("/LayerNorm_2/", "/LayerNorm_1/"),
                       ("/MultiHeadDotProductAttention_1/", "/MultiHeadDotProductAttention_0/"), ("/MlpBlock_3/", "/MlpBlock_0/")]
        let tensors = try FlaxCheckpoint.read(path: path).map { entry in
            (name: renames.reduce(entry.name) { $0.replacingOccurrences(of: $1.0, with: $1.1) }, tensor: entry.tensor)
        }
        XCTAssertTrue(tensors.contains { $0.name == "optimizer/target/Transformer/encoderblock_1/LayerNorm_1/scale" })
        let renamed = try ScenicImport.convert(tensors, path: path, model: 4, options: .init(numFrames: 8))
        let original = try ScenicImport.importCheckpoint(path: path, model: 4, options: .init(numFrames: 8))
        XCTAssertEqual(renamed.weights.map(\.name), original.weights.map(\.name))
        for (a, b) in zip(renamed.weights, original.weights) { XCTAssertEqual(a.tensor.array, b.tensor.array, a.name) }
        // A stray tensor is reported, not ignored.
        let extra = tensors + [(name: "optimizer/target/Transformer/extra/kernel", tensor: tensors[0].tensor)]
        XCTAssertThrowsError(try ScenicImport.convert(extra, path: path, model: 4, options: .init(numFrames: 8))) { error in
            XCTAssertTrue("\(error)".contains("does not use"), "\(error)")
        }
    }

    func testModel3FactorisedSelfAttention() throws {
        let (vivit, logits, expected) = try run("model3", model: 3)
        XCTAssertEqual(vivit.config.variant, .factorisedSelfAttention)
        XCTAssertEqual(vivit.config.encoder, .init(layers: 2, heads: 2, mlpDim: 64))
        XCTAssertEqual(vivit.config.imageSize, 32)
        assertParity(logits, expected, "model 3")
    }

    func testModel4FactorisedDotProduct() throws {
        let (vivit, logits, expected) = try run("model4", model: 4)
        XCTAssertEqual(vivit.config.variant, .factorisedDotProduct)
        XCTAssertEqual(vivit.config.encoder, .init(layers: 2, heads: 4, mlpDim: 64))
        assertParity(logits, expected, "model 4")
    }

    func testWrongModelNumberIsALoadError() {
        let path = Self.fixtures.appendingPathComponent("model3/checkpoint.msgpack").path
        XCTAssertThrowsError(try ScenicImport.importCheckpoint(path: path, model: 4)) { error in
            XCTAssertTrue("\(error)".contains("Model 3"), "\(error)")
        }
        XCTAssertThrowsError(try ScenicImport.importCheckpoint(path: path, model: 2))
        XCTAssertThrowsError(try ScenicImport.importCheckpoint(path: path, model: 1))
        // 64 tokens are not a whole number of 32/2 temporal indices of a square grid.
        XCTAssertThrowsError(try ScenicImport.importCheckpoint(path: path, model: 3, options: .init(numFrames: 6)))
    }
}

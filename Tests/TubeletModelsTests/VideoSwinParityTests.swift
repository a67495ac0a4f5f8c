import Foundation
import XCTest
import TubeletKernels
import TubeletLoading
import TubeletModels

/// Parity with the reference implementations: fixtures made by tools/make_swin_fixtures.py from
/// torchvision's SwinTransformer3d (and the official layout) with every parameter randomised.
/// Each checkpoint goes through `tubelet import`'s code path (SwinImport → ModelFile.write → ModelFile.load).
final class VideoSwinParityTests: XCTestCase {
    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("swin")

    func fixtureDirectories() throws -> [URL] {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.fixtures.path).sorted()
        return names.map { Self.fixtures.appendingPathComponent($0) }
            .filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent("clip.safetensors").path) }
    }

    /// Imports a checkpoint exactly as `tubelet import` does and loads the resulting model file.
    func importAndLoad(_ checkpoint: URL) throws -> TubeletModel {
        let imported = try SwinImport.importCheckpoint(path: checkpoint.path)
        let output = FileManager.default.temporaryDirectory
            .appendingPathComponent("tubelet-parity-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        try ModelFile.write(videoSwin: imported.config, weights: imported.weights, preprocessing: imported.defaultPreprocessing,
                            labels: [], source: checkpoint.lastPathComponent, to: output)
        return try ModelFile.load(path: output)
    }

    func tensor(_ file: URL, _ name: String) throws -> Tensor {
        let raw = try XCTUnwrap(try SafeTensorsFile(path: file.path).tensor(name), "\(name) missing in \(file.lastPathComponent)")
        return try raw.floats()
    }

    func testLogitsMatchReferenceForEveryFixtureAndCheckpointLayout() throws {
        let directories = try fixtureDirectories()
        XCTAssertGreaterThanOrEqual(directories.count, 5, "expected the five fixture configs")
        var checked = 0
        for directory in directories {
            let clip = try tensor(directory.appendingPathComponent("clip.safetensors"), "clip")
            let expected = try tensor(directory.appendingPathComponent("expected.safetensors"), "logits")
            for checkpoint in ["torchvision.pth", "official.pth", "torchvision.safetensors"] {
                let url = directory.appendingPathComponent(checkpoint)
                guard FileManager.default.fileExists(atPath: url.path) else { continue }
                let model = try importAndLoad(url)
                assertParity(model.logits(clip), expected, "\(directory.lastPathComponent)/\(checkpoint)")
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 8)
    }

    /// The attention branch run window by window (each worker taking whole windows) and layer by
    /// layer, with bias rows read from the strips or from the [N, N] tile, give the same logits
    /// bit for bit, on every fixture (shifted, clamped and padded windows).
    func testAttentionSchedulesAndBiasSourcesAreBitwiseEqual() throws {
        defer { SwinBlock.forcePerWindowAttention = nil; SwinBlock.biasFromStrips = true }
        for directory in try fixtureDirectories() {
            let clip = try tensor(directory.appendingPathComponent("clip.safetensors"), "clip")
            let model = try importAndLoad(directory.appendingPathComponent("torchvision.pth"))
            var logits: [[Float]] = []
            for (perWindow, fromStrips) in [(true, true), (false, true), (true, false), (false, false)] {
                SwinBlock.forcePerWindowAttention = perWindow
                SwinBlock.biasFromStrips = fromStrips
                let output = model.logits(clip)
                logits.append((0..<output.count).map { output[$0] })
            }
            for variant in 1..<logits.count { XCTAssertEqual(logits[0], logits[variant], "\(directory.lastPathComponent) variant \(variant)") }
        }
    }

    func testPerStageActivationsMatchReference() throws {
        let directory = Self.fixtures.appendingPathComponent("pad_two_windows")
        let expectedFile = directory.appendingPathComponent("expected.safetensors")
        let model = try importAndLoad(directory.appendingPathComponent("torchvision.pth"))
        guard let swin = model.network as? VideoSwin else { return XCTFail("not a Video Swin") }
        let clip = try tensor(directory.appendingPathComponent("clip.safetensors"), "clip")
        var seen: [String] = []
        _ = swin(clip) { name, activation in
            guard let expected = try? self.tensor(expectedFile, name) else { return }
            XCTAssertEqual(activation.count, expected.count, name)
            assertParity(activation.copy(), expected, name)
            seen.append(name)
        }
        XCTAssertEqual(Set(seen), ["patch_embed", "stage0", "merge0", "stage1", "merge1", "stage2", "merge2", "stage3", "final_norm"])
    }

    /// The config inferred from tensor shapes equals the one the fixture script built the reference with.
    func testImporterInfersTheArchitecture() throws {
        struct FixtureConfig: Decodable {
            let patch_size: [Int], embed_dim: Int, depths: [Int], num_heads: [Int], window_size: [Int]
            let patch_norm: Bool, num_classes: Int
        }
        for directory in try fixtureDirectories() {
            let data = try Data(contentsOf: directory.appendingPathComponent("config.json"))
            let reference = try JSONDecoder().decode(FixtureConfig.self, from: data)
            for checkpoint in ["torchvision.pth", "official.pth"] {
                let url = directory.appendingPathComponent(checkpoint)
                guard FileManager.default.fileExists(atPath: url.path) else { continue }
                let imported = try SwinImport.importCheckpoint(path: url.path)
                let name = "\(directory.lastPathComponent)/\(checkpoint)"
                XCTAssertEqual(imported.config.patchSize, reference.patch_size, name)
                XCTAssertEqual(imported.config.embedDim, reference.embed_dim, name)
                XCTAssertEqual(imported.config.depths, reference.depths, name)
                XCTAssertEqual(imported.config.numHeads, reference.num_heads, name)
                XCTAssertEqual(imported.config.windowSize, reference.window_size, name)
                XCTAssertEqual(imported.config.patchNorm, reference.patch_norm, name)
                XCTAssertEqual(imported.config.numClasses, reference.num_classes, name)
                XCTAssertEqual(imported.layout, checkpoint == "official.pth" ? .official : .torchvision, name)
            }
        }
    }

    func testOfficialKeyMapping() {
        XCTAssertEqual(SwinImport.officialToTorchvision("backbone.layers.2.blocks.5.mlp.fc1.weight"), "features.4.5.mlp.0.weight")
        XCTAssertEqual(SwinImport.officialToTorchvision("backbone.layers.1.blocks.0.mlp.fc2.bias"), "features.2.0.mlp.3.bias")
        XCTAssertEqual(SwinImport.officialToTorchvision("backbone.layers.0.downsample.reduction.weight"), "features.1.reduction.weight")
        XCTAssertEqual(SwinImport.officialToTorchvision("backbone.layers.3.blocks.1.attn.relative_position_bias_table"), "features.6.1.attn.relative_position_bias_table")
        XCTAssertEqual(SwinImport.officialToTorchvision("backbone.norm.weight"), "norm.weight")
        XCTAssertEqual(SwinImport.officialToTorchvision("cls_head.fc_cls.bias"), "head.bias")
        XCTAssertNil(SwinImport.officialToTorchvision("features.0.0.norm1.weight"))
    }
}

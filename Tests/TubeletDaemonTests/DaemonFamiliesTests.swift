import Foundation
import TubeletDaemon
import TubeletLoading
import TubeletModels
import XCTest

/// The real `tubeletd` runs every model family: each tiny parity fixture (Tests/TubeletModelsTests/Fixtures),
/// imported through the same code as `tubelet import` (Video Swin, TimeSformer, ViViT 1-4, UniFormer, VideoMAE), on a camera of its own reading an ffmpeg-encoded file;
/// label events arrive over a ZeroMQ SUB socket and match Config/schemas.
final class DaemonFamiliesTests: XCTestCase {
    override func tearDown() { ChildProcess.killAll() }

    /// A model file for each family: (camera id, file, reuse mode the camera runs with).
    func familyModels(in scratch: URL) throws -> [(camera: String, file: String, reuse: String)] {
        let fixtures = Repo.root.appendingPathComponent("Tests/TubeletModelsTests/Fixtures")
        func path(_ relative: String) -> String { fixtures.appendingPathComponent(relative).path }
        func write(_ camera: String, _ imported: HFImport.Imported, preprocessing: Preprocessing? = nil) throws -> String {
            let file = scratch.appendingPathComponent("\(camera).safetensors").path
            try ModelFile.write(architecture: imported.architecture, configJSON: imported.configJSON, weights: imported.weights,
                                preprocessing: preprocessing ?? imported.preprocessing, labels: imported.labels, source: "test:\(camera)", to: file)
            return file
        }
        // Video Swin at a small recipe (the checkpoints' own is 224 pixels): clip-trained and streaming-native.
        let streaming = try SwinImport.importCheckpoint(path: path("streaming_swin/patch_norm/model.pth"))
        XCTAssertTrue(streaming.config.streaming)
        let streamingFile = scratch.appendingPathComponent("streaming_swin.safetensors").path
        let recipe = Preprocessing(frames: 8, frameStride: 2, resizeShortSide: 32, cropSize: 32, pixelScale: 1.0 / 255,
                                   mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])
        try ModelFile.write(videoSwin: streaming.config, weights: streaming.weights, preprocessing: recipe,
                            labels: streaming.labels.isEmpty ? (0..<streaming.config.numClasses).map { "class\($0)" } : streaming.labels, source: "test:streaming_swin", to: streamingFile)
        let scenic = ScenicImport.Options(numFrames: 8)
        return [
            ("swin", try DaemonFixtures.model(), "exact"),
            ("streaming_swin", streamingFile, "kv"),
            ("timesformer", try write("timesformer", try HFImport.importDirectory(path: path("timesformer/divided"))), "exact"),
            ("vivit1", try write("vivit1", try HFImport.importDirectory(path: path("vivit/v5"))), "exact"),
            ("vivit2", try write("vivit2", try ScenicImport.importCheckpoint(path: path("vivit_scenic/model2/checkpoint.msgpack"), model: 2, options: scenic)), "exact"),
            ("vivit3", try write("vivit3", try ScenicImport.importCheckpoint(path: path("vivit_scenic/model3/checkpoint.msgpack"), model: 3, options: scenic)), "exact"),
            ("vivit4", try write("vivit4", try ScenicImport.importCheckpoint(path: path("vivit_scenic/model4/checkpoint.msgpack"), model: 4, options: scenic)), "none"),
            // UniFormer (official layout, head width 8) at a small recipe; its own default crops 224 pixels.
            ("uniformer", try write("uniformer", try UniFormerImport.importCheckpoint(path: path("uniformer/plain_8f/checkpoint.pth"), options: .init(headDim: 8)),
                                    preprocessing: Preprocessing(frames: 8, frameStride: 2, resizeShortSide: 32, cropSize: 32, pixelScale: 1.0 / 255,
                                                                 mean: [0.45, 0.45, 0.45], std: [0.225, 0.225, 0.225])), "exact"),
            ("videomae", try write("videomae", try VideoMAEImport.importDirectory(path: path("videomae/mean_hub")),
                                   preprocessing: Preprocessing(frames: 4, frameStride: 2, resizeShortSide: 32, cropSize: 32, pixelScale: 1.0 / 255,
                                                                mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])), "exact"),
        ]
    }

    func testEveryFamilyPublishesLabelEvents() throws {
        let scratch = DaemonFixtures.scratch(name)
        let video = try DaemonFixtures.video(seconds: 30)
        let families = try familyModels(in: scratch)
        let port = freePort(), metricsPort = freePort()
        // Every label starts on a camera's first clip under min_score 0 (random weights: which wins is arbitrary).
        let config = """
            models:
            \(families.map { "  \($0.camera):\n    file: \($0.file)\n    cameras: [\($0.camera)]" }.joined(separator: "\n"))
            window:
              hop: 4
              frame_stride: 2
            decisions:
              min_score: 0
              end_score: 0
              update_interval: 0
            events:
              endpoint: tcp://127.0.0.1:\(port)
              startup_grace: 3
            metrics:
              listen: 127.0.0.1:\(metricsPort)
            cameras:
            \(families.map { "  \($0.camera):\n    source: \(video)\n    window:\n      reuse: \($0.reuse)" }.joined(separator: "\n"))
            """
        let path = scratch.appendingPathComponent("tubelet.yaml").path
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        let subscriber = try Subscriber(connect: "tcp://127.0.0.1:\(port)")
        let daemon = try ChildProcess(try Repo.binary("tubeletd"), ["--config", path], name: "tubeletd")
        XCTAssertNotNil(subscriber.waitFor(timeout: 20) { $0.type == "started" }, daemon.log)

        // Each camera: its model's labels start, then updates of later clips (sequence numbers increasing).
        XCTAssertTrue(waitUntil(timeout: 60) {
            subscriber.drain(for: 0.2)
            return families.allSatisfy { family in
                subscriber.actions(camera: family.camera).contains { ($0.json["clip"] as? [String: Any])?["sequence"] as? Int ?? 0 >= 2 }
            }
        }, "every family's camera publishes labels of three clips: \(families.map { "\($0.camera) \(subscriber.actions(camera: $0.camera).count)" }) \(daemon.log.suffix(3000))")
        for family in families {
            let actions = subscriber.actions(camera: family.camera)
            XCTAssertTrue(actions.contains { $0.type == "start" }, family.camera)
            XCTAssertTrue(actions.allSatisfy { $0.json["model"] as? String == family.camera }, family.camera)
            let sequences = actions.filter { $0.json["label_index"] as? Int == 0 }.compactMap { ($0.json["clip"] as? [String: Any])?["sequence"] as? Int }
            XCTAssertEqual(sequences, sequences.sorted(), family.camera)
            XCTAssertFalse(sequences.isEmpty, family.camera)
        }
        let metrics = try httpGet(port: metricsPort, "/metrics").body
        for family in families {
            XCTAssertTrue(metrics.contains("tubelet_camera_up{camera=\"\(family.camera)\"} 1"), family.camera)
        }
        // Each model's inference worker reports its passes.
        for family in families {
            XCTAssertTrue(metrics.contains("tubelet_batch_size_count{model=\"\(family.camera)\"}"), family.camera)
            // Streaming-native clips arrive with their logits and need no pass; every other family's ran some.
            if family.reuse != "kv" {
                XCTAssertFalse(metrics.contains("tubelet_batch_size_count{model=\"\(family.camera)\"} 0\n"), family.camera)
            }
        }
        // The streaming-native model computes only new tokens: it saves work, as exact reuse does for the others.
        XCTAssertTrue(metrics.contains("tubelet_reuse_gflop_saved_total{camera=\"streaming_swin\"}"))
        XCTAssertFalse(metrics.contains("tubelet_reuse_gflop_saved_total{camera=\"streaming_swin\"} 0\n"), metrics)
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 5), 0, daemon.log)
        XCTAssertEqual(subscriber.schemaErrors, [])
    }
}

import Foundation
import TubeletDaemon
import TubeletLoading
import XCTest

/// The real `tubeletd` running a UniFormer (the plain_8f parity fixture: random weights, official
/// layout) on an ffmpeg-encoded file with `exact` reuse: labels come out as events that match the schemas.
final class UniFormerDaemonTests: XCTestCase {
    override func tearDown() { ChildProcess.killAll() }

    func testDaemonClassifiesAFileWithAUniFormerAndExactReuse() throws {
        let scratch = DaemonFixtures.scratch(name)
        let imported = try UniFormerImport.importCheckpoint(path: Repo.path("Tests/TubeletModelsTests/Fixtures/uniformer/plain_8f/checkpoint.pth"),
                                                            options: .init(headDim: 8))
        let model = scratch.appendingPathComponent("uniformer.safetensors").path
        let recipe = Preprocessing(frames: 8, frameStride: 2, resizeShortSide: 32, cropSize: 32, pixelScale: 1.0 / 255,
                                   mean: [0.45, 0.45, 0.45], std: [0.225, 0.225, 0.225])
        try ModelFile.write(architecture: imported.architecture, configJSON: imported.configJSON, weights: imported.weights,
                            preprocessing: recipe, labels: DaemonFixtures.labels, source: "test:uniformer", to: model)
        let video = try DaemonFixtures.video(seconds: 10)
        let port = freePort()
        let subscriber = try Subscriber(connect: "tcp://127.0.0.1:\(port)")
        let config = scratch.appendingPathComponent("tubelet.yaml").path
        try """
            models:
              uf:
                file: \(model)
            window:
              hop: 2
              reuse: exact
            decisions:
              min_score: 0
              end_score: 0
              update_interval: 0
            events:
              endpoint: tcp://127.0.0.1:\(port)
            logging:
              format: plain
            cameras:
              front:
                source: \(video)
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let daemon = try ChildProcess(try Repo.binary("tubeletd"), ["--config", config], name: "tubeletd")
        XCTAssertNotNil(subscriber.waitFor(timeout: 10) { $0.type == "started" }, daemon.log)
        // min_score 0: every label starts on the first clip.
        XCTAssertTrue(waitUntil(timeout: 20) { subscriber.drain(for: 0.1); return subscriber.actions(camera: "front").filter { $0.type == "start" }.count == 6 },
                      daemon.log)
        XCTAssertTrue(subscriber.actions(camera: "front").allSatisfy { $0.json["model"] as? String == "uf" })
        XCTAssertEqual(subscriber.schemaErrors, [], "messages must match Config/schemas")
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 10), 0, daemon.log)
    }
}

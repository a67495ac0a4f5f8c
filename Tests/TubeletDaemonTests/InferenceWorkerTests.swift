import Foundation
import TubeletDaemon
import TubeletLoading
import TubeletStreaming
import XCTest

/// The daemon's shared inference worker: two cameras' threads hand over their due clips, which go
/// through one batched Video Swin pass, with the logits each camera gets alone.
final class InferenceWorkerTests: XCTestCase {
    /// Sampled frames of an ffmpeg-encoded video at the model's geometry.
    func frames(pattern: String, geometry: FrameGeometry) throws -> [Frame] {
        let path = DaemonFixtures.scratch(name).appendingPathComponent("\(pattern).mp4").path
        let result = try runProgram("/usr/bin/ffmpeg", ["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                                                        "\(pattern)=size=160x120:rate=25:duration=3", "-c:v", "libx264",
                                                        "-preset", "ultrafast", "-pix_fmt", "yuv420p", path])
        guard result.status == 0 else { throw TestFailure("ffmpeg failed: \(result.stderr)") }
        let reader = try VideoFileReader(path: path, geometry: geometry, frameStride: 2)
        var frames: [Frame] = []
        while let frame = try reader.next() { frames.append(frame) }
        return frames
    }

    /// One camera's thread: its scheduler, its frames, the results the worker sends back.
    final class Camera: @unchecked Sendable {
        let scheduler: ClipScheduler
        let frames: [Frame]
        var results: [ClipResult] = []
        init(scheduler: ClipScheduler, frames: [Frame]) {
            self.scheduler = scheduler
            self.frames = frames
        }
    }

    func testClipsOfTwoCamerasDueTogetherGoThroughOneBatchedPass() throws {
        let model = try ModelFile.load(path: try DaemonFixtures.model())
        let geometry = ClipScheduler.geometry(for: model)
        let videos = [try frames(pattern: "testsrc2", geometry: geometry), try frames(pattern: "testsrc", geometry: geometry)]
        XCTAssertEqual(videos[0].count, videos[1].count)
        let settings = WindowSettings(clipFrames: 8, frameStride: 2, hop: 4, reuse: .exact)

        // Each camera alone: one clip per pass.
        let alone = try videos.map { frames in
            let scheduler = try ClipScheduler(model: model, settings: settings, topK: model.numClasses)
            return frames.compactMap { scheduler.push(frame: $0) }
        }
        XCTAssertGreaterThanOrEqual(alone[0].count, 5)

        // Together through one worker; a long gathering wait, which ends as soon as both cameras handed a clip over.
        let worker = InferenceWorker(name: "tiny", batchWait: 5)
        let cameras = try videos.map { Camera(scheduler: try ClipScheduler(model: model, settings: settings, topK: model.numClasses), frames: $0) }
        let finished = DispatchGroup()
        // Both cameras are registered before either starts: registered one by one, the first camera's
        // first clip could be gathered while the worker knew of one camera only (seen on a loaded CI run).
        for _ in cameras { worker.register() }
        for camera in cameras {
            finished.enter()
            Thread {
                for frame in camera.frames {
                    guard let due = camera.scheduler.pushDeferred(frame: frame) else { continue }
                    camera.results.append(worker.evaluate(due)!)
                }
                worker.unregister()
                finished.leave()
            }.start()
        }
        XCTAssertEqual(finished.wait(timeout: .now() + 120), .success)
        worker.stop()

        let stats = worker.batchStats
        XCTAssertEqual(stats.passSize.count, UInt64(alone[0].count), "one pass per pair of clips")
        XCTAssertEqual(stats.passSize.sum, Double(alone[0].count + alone[1].count))
        XCTAssertEqual(stats.passSize.counts[0], 0, "no pass of a single clip")
        for (camera, reference) in zip(cameras, alone) {
            XCTAssertEqual(camera.results.count, reference.count)
            for (together, one) in zip(camera.results, reference) {
                XCTAssertEqual(together.sequence, one.sequence)
                XCTAssertEqual(together.clipEnd, one.clipEnd)
                let largest = one.logits.map(abs).max()!
                for (a, b) in zip(together.logits, one.logits) {
                    XCTAssertEqual(a, b, accuracy: 1e-5 * max(largest, 1), "clip \(one.sequence)")
                }
            }
        }
        XCTAssertNotEqual(cameras[0].results[0].logits, cameras[1].results[0].logits, "the cameras see different videos")
        // Stopped: a clip handed over now comes back as nil instead of blocking.
        let late = try ClipScheduler(model: model, settings: settings)
        let due = videos[0].compactMap { late.pushDeferred(frame: $0) }.first!
        XCTAssertNil(worker.evaluate(due))
    }
}

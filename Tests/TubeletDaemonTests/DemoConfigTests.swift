import Foundation
import TubeletDaemon
import XCTest

/// The demo stays working: the real tubeletd runs Config/demo.yaml (its model, window and decisions),
/// with the sample video read once as fast as it decodes instead of looping in real time, and the
/// actions it publishes follow the video's ground-truth timeline.
final class DemoConfigTests: XCTestCase {
    override func tearDown() {
        ChildProcess.killAll()
    }

    /// Config/demo.yaml with only what a short test needs changed: capture not real time, no loop, a
    /// ring that holds the whole video (so a slow machine drops no frames), a free events port, no metrics.
    func demoConfigForTest(eventsPort: Int) throws -> String {
        var text = try String(contentsOfFile: Repo.path("Config/demo.yaml"), encoding: .utf8)
        func replace(_ old: String, _ new: String) throws {
            guard text.contains(old) else { throw TestFailure("Config/demo.yaml no longer has '\(old)'; update this test") }
            text = text.replacingOccurrences(of: old, with: new)
        }
        try replace("realtime: true", "realtime: false")
        try replace("loop: true", "loop: false\n      ring_frames: 4096")
        try replace("endpoint: tcp://127.0.0.1:5556", "endpoint: tcp://127.0.0.1:\(eventsPort)\n  startup_grace: 3")
        try replace("listen: 127.0.0.1:9464", "listen: null")
        try replace("../models/demo/", Repo.path("models/demo") + "/")
        let path = DaemonFixtures.scratch("demo").appendingPathComponent("demo.yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testDemoConfigPublishesTheSampleVideosActions() throws {
        let port = freePort()
        let subscriber = try Subscriber(connect: "tcp://127.0.0.1:\(port)")
        let daemon = try ChildProcess(try Repo.binary("tubeletd"), ["--config", try demoConfigForTest(eventsPort: port)], name: "tubeletd-demo")
        // The 96 s video is read once; at its end the camera goes offline ("end of file") and open actions end.
        XCTAssertNotNil(subscriber.waitFor(timeout: 120) { $0.camera == "demo" && $0.state == "offline" }, daemon.log.suffix(3000).description)
        subscriber.drain(for: 0.5)
        XCTAssertEqual(subscriber.schemaErrors, [])

        let timeline = try Timeline.load(path: Repo.path("models/demo/sample_timeline.json"))
        let truth = timeline.segments.map(\.label).filter { $0 != "idle" }
        let starts = subscriber.actions(camera: "demo").filter { $0.type == "start" }.compactMap { $0.json["label"] as? String }
        // Labels in order, compared as sequences (the capture clock maps media time to wall time, so
        // order, not seconds, is what the daemon's events can be checked on).
        let common = longestCommonSubsequence(starts, truth)
        XCTAssertGreaterThanOrEqual(Double(common), 0.75 * Double(truth.count),
                                    "started \(starts) for the true actions \(truth)")
        XCTAssertLessThanOrEqual(Double(starts.count), 1.3 * Double(truth.count), "few false starts: \(starts)")
        XCTAssertFalse(starts.contains("idle"), "idle is ignored in Config/demo.yaml")
        // Inference still classifies the frames captured before the end of file (the file decodes faster
        // than inference runs); wait until its events stop coming. Then every start is ended, by score or
        // by the end of file ("offline"), before the daemon is stopped.
        func count(_ type: String) -> Int { subscriber.actions(camera: "demo").filter { $0.type == type }.count }
        var seen = -1
        for _ in 0..<30 where subscriber.actions(camera: "demo").count != seen {
            seen = subscriber.actions(camera: "demo").count
            subscriber.drain(for: 2)
        }
        XCTAssertEqual(count("end"), count("start"), "an action was left open after the end of file")
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 10), 0, daemon.log.suffix(2000).description)
        subscriber.drain(for: 0.5)
        XCTAssertEqual(count("end"), count("start"))
    }
}

func longestCommonSubsequence(_ a: [String], _ b: [String]) -> Int {
    var row = [Int](repeating: 0, count: b.count + 1)
    for x in a {
        var diagonal = 0
        for (j, y) in b.enumerated() {
            let above = row[j + 1]
            row[j + 1] = x == y ? diagonal + 1 : max(row[j + 1], row[j])
            diagonal = above
        }
    }
    return row[b.count]
}

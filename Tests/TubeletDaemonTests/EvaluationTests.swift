import Foundation
import XCTest
import TubeletDaemon

/// Segment metrics on hand-computed cases.
final class EvaluationTests: XCTestCase {
    let truth = Timeline(segments: [
        .init(label: "idle", start: 0, end: 2),
        .init(label: "left", start: 2, end: 6),
        .init(label: "idle", start: 6, end: 7),
        .init(label: "grow", start: 7, end: 10),
        .init(label: "blink", start: 10, end: 12),
    ])

    func testMatchesDelaysAndFrameAccuracy() {
        let detections = [
            // IoU with left [2,6): [2.5,6.5) → 3.5 / 4.5 = 0.78: a match, start event 0.8 s late.
            DetectedAction(label: "left", startEvent: 2.8, start: 2.5, end: 6.5),
            // Wrong label over grow: no match.
            DetectedAction(label: "blink", startEvent: 7.9, start: 7.5, end: 8.5),
            // grow [7,10) vs [8.9,10): IoU 1.1/3 = 0.37 < 0.5: no match.
            DetectedAction(label: "grow", startEvent: 9.1, start: 8.9, end: 10),
            // blink [10,12) vs [10.2,12.4): IoU 1.8/2.4 = 0.75: a match, 0.6 s late.
            DetectedAction(label: "blink", startEvent: 10.6, start: 10.2, end: 12.4),
        ]
        let samples = stride(from: 0.05, to: 12, by: 0.1).map { $0 }
        let metrics = evaluate(detections: detections, truth: truth, background: "idle", sampleTimes: samples)
        XCTAssertEqual(metrics.truthSegments, 3)
        XCTAssertEqual(metrics.detections, 4)
        XCTAssertEqual(metrics.matched, 2)
        XCTAssertEqual(metrics.precision, 0.5, accuracy: 1e-12)
        XCTAssertEqual(metrics.recall, 2.0 / 3, accuracy: 1e-12)
        let expectedF1: Double = 2 * 0.5 * (2.0 / 3) / (0.5 + 2.0 / 3)
        XCTAssertEqual(metrics.f1, expectedF1, accuracy: 1e-12)
        XCTAssertEqual(metrics.delays.count, 2)
        XCTAssertEqual(metrics.delays.min()!, 0.6, accuracy: 1e-9)
        XCTAssertEqual(metrics.delays.max()!, 0.8, accuracy: 1e-9)
        XCTAssertEqual(metrics.medianDelay!, 0.7, accuracy: 1e-12)
        XCTAssertEqual(metrics.p90Delay!, 0.78, accuracy: 1e-9)
        // Frame accuracy counted by hand over the 120 sample instants (0.05, 0.15, …, 11.95):
        // correct: idle 0-2 (20), left 2.5-6 (35), idle 6-6.5 wrong (left active), idle 6.5-7 (5),
        // grow 7-7.5: nothing active → idle ≠ grow (wrong), 7.5-8.5 blink (wrong), 8.5-8.9 none (wrong),
        // 8.9-10 grow (11), blink 10.2-12 (18). 20 + 35 + 5 + 11 + 18 = 89.
        XCTAssertEqual(metrics.frameAccuracy, 89.0 / 120, accuracy: 1e-12)
    }

    func testOneDetectionMatchesOneSegmentOnly() {
        let truth = Timeline(segments: [.init(label: "a", start: 0, end: 4)])
        let detections = [DetectedAction(label: "a", startEvent: 0.5, start: 0, end: 4),
                          DetectedAction(label: "a", startEvent: 1.5, start: 0.2, end: 4)]
        let metrics = evaluate(detections: detections, truth: truth, background: "idle", sampleTimes: [])
        XCTAssertEqual(metrics.matched, 1)
        XCTAssertEqual(metrics.precision, 0.5)
        XCTAssertEqual(metrics.recall, 1)
        XCTAssertEqual(metrics.delays.count, 1)
        XCTAssertEqual(metrics.delays[0], 0.5, accuracy: 1e-12, "the best-IoU detection is the match")
    }

    func testTimelineFileErrorsNameTheFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("timeline-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try #"{"segments": [{"label": "a", "start_s": 3, "end_s": 1}]}"#.write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Timeline.load(path: path)) { XCTAssertTrue("\($0)".contains(path) && "\($0)".contains("before it starts")) }
        try #"{"segments": [{"label": "a", "start_s": 1, "end_s": 3}], "fps": 16}"#.write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(try Timeline.load(path: path).segments, [.init(label: "a", start: 1, end: 3)])
    }

    func testSVGDrawsBothRows() {
        let svg = timelineSVG(truth: truth, detections: [DetectedAction(label: "left", startEvent: 2.8, start: 2.5, end: 6.5)],
                              background: "idle", duration: 12, title: "demo <sample>")
        XCTAssertTrue(svg.hasPrefix("<svg"))
        XCTAssertTrue(svg.contains(">truth<") && svg.contains(">detected<"))
        XCTAssertTrue(svg.contains("demo &lt;sample&gt;"))
        XCTAssertEqual(svg.components(separatedBy: "<title>").count - 1, 3 + 1, "3 truth actions + 1 detection, idle not drawn")
    }
}

import TubeletDaemon
import XCTest

/// Threshold semantics: smoothing, hysteresis, minimum duration, ignored labels, per-label thresholds.
final class DecisionTests: XCTestCase {
    let labels = ["a", "b", "c"]

    func tracker(_ change: (inout DecisionConfig) -> Void = { _ in }) -> DecisionTracker {
        var config = DecisionConfig()
        config.minScore = 0.6
        config.endScore = 0.4
        config.updateInterval = 0
        change(&config)
        var next = 0
        return DecisionTracker(config: config, labels: labels) { next += 1; return "e\(next)" }
    }

    func kinds(_ transitions: [ActionTransition]) -> [String] { transitions.map { "\($0.kind.rawValue) \($0.label)" } }

    func testHysteresisStartsAtMinScoreAndEndsBelowEndScore() {
        let t = tracker()
        XCTAssertEqual(kinds(t.observe(probabilities: [0.5, 0.3, 0.2], clipEnd: 1)), [])
        XCTAssertEqual(kinds(t.observe(probabilities: [0.6, 0.3, 0.1], clipEnd: 2)), ["start a"])
        XCTAssertEqual(kinds(t.observe(probabilities: [0.45, 0.3, 0.25], clipEnd: 3)), ["update a"], "between end and min: still open")
        let end = t.observe(probabilities: [0.39, 0.3, 0.31], clipEnd: 4)
        XCTAssertEqual(kinds(end), ["end a"])
        XCTAssertEqual(end[0].reason, "score")
        XCTAssertEqual(end[0].eventID, "e1")
        XCTAssertEqual(end[0].startedAt, 2)
        XCTAssertEqual(end[0].endedAt, 4)
        XCTAssertEqual(t.openActions, 0)

        // Exactly at the thresholds, with values exact in Float and Double: min_score starts, end_score does not end.
        let b = tracker { $0.minScore = 0.625; $0.endScore = 0.375 }
        XCTAssertEqual(kinds(b.observe(probabilities: [0.625, 0.25, 0.125], clipEnd: 1)), ["start a"], "at min_score is at or above it")
        XCTAssertEqual(kinds(b.observe(probabilities: [0.375, 0.5, 0.125], clipEnd: 2)), ["update a"], "at end_score is not below it")
    }

    func testMinimumDurationDelaysTheStart() {
        let t = tracker { $0.minDuration = 1 }
        XCTAssertEqual(kinds(t.observe(probabilities: [0.7, 0.2, 0.1], clipEnd: 10)), [])
        XCTAssertEqual(kinds(t.observe(probabilities: [0.7, 0.2, 0.1], clipEnd: 10.5)), [])
        XCTAssertEqual(kinds(t.observe(probabilities: [0.5, 0.4, 0.1], clipEnd: 10.8)), [], "a dip below min_score restarts the clock")
        XCTAssertEqual(kinds(t.observe(probabilities: [0.7, 0.2, 0.1], clipEnd: 11)), [])
        let start = t.observe(probabilities: [0.7, 0.2, 0.1], clipEnd: 12)
        XCTAssertEqual(kinds(start), ["start a"])
        XCTAssertEqual(start[0].startedAt, 11, "started when the score first stayed above")
    }

    func testMeanSmoothingOverClips() {
        let t = tracker { $0.smoothing = .mean(clips: 3) }
        XCTAssertEqual(kinds(t.observe(probabilities: [0.9, 0.1, 0], clipEnd: 1)), ["start a"])
        XCTAssertEqual(kinds(t.observe(probabilities: [0.1, 0.9, 0], clipEnd: 2)), ["update a"], "mean 0.5: a stays, b below 0.6")
        XCTAssertEqual(kinds(t.observe(probabilities: [0.1, 0.9, 0], clipEnd: 3)), ["end a", "start b"], "a: 0.37, b: 0.63")
        XCTAssertEqual(t.smoothed[1], 0.6333, accuracy: 1e-3)
    }

    func testEMASmoothing() {
        let t = tracker { $0.smoothing = .ema(alpha: 0.5) }
        XCTAssertEqual(kinds(t.observe(probabilities: [0.25, 0.75, 0], clipEnd: 1)), ["start b"], "the first clip initialises the average")
        XCTAssertEqual(kinds(t.observe(probabilities: [1, 0, 0], clipEnd: 2)), ["start a", "end b"], "a: 0.625, b: 0.375")
        // alpha weighs the new clip: s = alpha·p + (1 - alpha)·s (with alpha 0.5 either order gives the same).
        let u = tracker { $0.smoothing = .ema(alpha: 0.75) }
        XCTAssertEqual(kinds(u.observe(probabilities: [0.25, 0.75, 0], clipEnd: 1)), ["start b"])
        XCTAssertEqual(kinds(u.observe(probabilities: [1, 0, 0], clipEnd: 2)), ["start a", "end b"], "a: 0.8125, b: 0.1875")
        XCTAssertEqual(u.smoothed[0], 0.8125, accuracy: 1e-9)
    }

    func testIgnoredLabelsAndPerLabelThresholds() {
        let t = tracker {
            $0.ignoreLabels = ["a"]
            $0.labels["c"] = LabelThresholds(minScore: 0.2, endScore: 0.1, minDuration: nil)
        }
        XCTAssertEqual(kinds(t.observe(probabilities: [0.7, 0.05, 0.25], clipEnd: 1)), ["start c"])
        XCTAssertEqual(kinds(t.observe(probabilities: [0.8, 0.05, 0.15], clipEnd: 2)), ["update c"])
        XCTAssertEqual(kinds(t.observe(probabilities: [0.9, 0.05, 0.05], clipEnd: 3)), ["end c"])

        // A label's own min_duration.
        let d = tracker { $0.labels["a"] = LabelThresholds(minDuration: 1) }
        XCTAssertEqual(kinds(d.observe(probabilities: [0.7, 0.2, 0.1], clipEnd: 1)), [])
        XCTAssertEqual(kinds(d.observe(probabilities: [0.7, 0.2, 0.1], clipEnd: 2)), ["start a"])
    }

    func testUpdateIntervalAndReconfiguration() {
        let t = tracker { $0.updateInterval = 1 }
        XCTAssertEqual(kinds(t.observe(probabilities: [0.7, 0.2, 0.1], clipEnd: 0)), ["start a"])
        XCTAssertEqual(kinds(t.observe(probabilities: [0.7, 0.2, 0.1], clipEnd: 0.5)), [])
        XCTAssertEqual(kinds(t.observe(probabilities: [0.7, 0.2, 0.1], clipEnd: 1)), ["update a"])
        var ignoreA = t.config
        ignoreA.ignoreLabels = ["a"]
        let ended = t.update(config: ignoreA, at: 1.2)
        XCTAssertEqual(kinds(ended), ["end a"])
        XCTAssertEqual(ended[0].reason, "ignored")
    }

    func testEndAll() {
        let t = tracker { $0.minScore = 0; $0.endScore = 0 }
        XCTAssertEqual(t.observe(probabilities: [0.5, 0.3, 0.2], clipEnd: 1).count, 3)
        let ended = t.endAll(reason: "offline", at: 2)
        XCTAssertEqual(kinds(ended), ["end a", "end b", "end c"])
        XCTAssertTrue(ended.allSatisfy { $0.reason == "offline" && $0.endedAt == 2 })
        XCTAssertEqual(t.openActions, 0)
        XCTAssertEqual(t.endAll(reason: "stopping", at: 3), [])
    }
}

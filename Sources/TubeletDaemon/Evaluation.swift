import Foundation

/// Online metrics of detected actions against a ground-truth timeline: what `tubelet eval-stream`
/// prints. Segments of the background label (idle) are not actions: they are neither detected
/// nor missed, but they count for frame-level accuracy.
public struct Timeline: Codable, Sendable {
    public struct Segment: Codable, Sendable, Equatable {
        public var label: String
        public var start: Double
        public var end: Double
        enum CodingKeys: String, CodingKey { case label, start = "start_s", end = "end_s" }
        public init(label: String, start: Double, end: Double) {
            self.label = label
            self.start = start
            self.end = end
        }
    }
    public var segments: [Segment]

    public init(segments: [Segment]) { self.segments = segments }

    /// Reads `{"segments": [{"label", "start_s", "end_s", …}, …], …}`, or fails naming the file.
    public static func load(path: String) throws -> Timeline {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EvaluationError(description: "\(path): cannot read the timeline")
        }
        do {
            let timeline = try JSONDecoder().decode(Timeline.self, from: data)
            for (i, segment) in timeline.segments.enumerated() where !(segment.end > segment.start) {
                throw EvaluationError(description: "\(path): segment \(i) ends (\(segment.end) s) before it starts (\(segment.start) s)")
            }
            return timeline
        } catch let error as EvaluationError {
            throw error
        } catch {
            throw EvaluationError(description: "\(path): not a timeline ({\"segments\": [{\"label\", \"start_s\", \"end_s\"}]}): \(error)")
        }
    }

    /// The label at time `t`, or nil between segments.
    public func label(at t: Double) -> String? {
        segments.first { $0.start <= t && t < $0.end }?.label
    }
}

public struct EvaluationError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// A detected action: when its start event was published (media time) and the span it claims.
public struct DetectedAction: Sendable, Equatable {
    public var label: String
    /// Media time of the start event (the last frame of the clip that triggered it).
    public var startEvent: Double
    /// The span the detection claims: from the centre of the clip that started it to the centre
    /// of the clip that ended it (a label describes its whole clip; the centre is its point estimate).
    public var start: Double
    public var end: Double
    public init(label: String, startEvent: Double, start: Double, end: Double) {
        self.label = label
        self.startEvent = startEvent
        self.start = start
        self.end = end
    }
}

public struct StreamMetrics: Sendable {
    public var truthSegments = 0, detections = 0, matched = 0
    public var precision = 0.0, recall = 0.0, f1 = 0.0
    /// Seconds from each matched action's true start to its start event.
    public var delays: [Double] = []
    public var medianDelay: Double? { percentile(delays, 0.5) }
    public var p90Delay: Double? { percentile(delays, 0.9) }
    /// Share of sampled instants whose active label (or background) equals the truth.
    public var frameAccuracy = 0.0

    public var json: [String: Any] {
        ["truth_segments": truthSegments, "detections": detections, "matched": matched,
         "precision": precision, "recall": recall, "f1": f1,
         "median_delay_s": medianDelay as Any, "p90_delay_s": p90Delay as Any, "frame_accuracy": frameAccuracy]
    }
}

/// Linear-interpolated percentile of `values` (q in 0...1), nil when empty.
func percentile(_ values: [Double], _ q: Double) -> Double? {
    guard !values.isEmpty else { return nil }
    let sorted = values.sorted()
    let position = q * Double(sorted.count - 1)
    let low = Int(position.rounded(.down)), high = min(low + 1, sorted.count - 1)
    return sorted[low] + (sorted[high] - sorted[low]) * (position - Double(low))
}

public func intersectionOverUnion(_ a: (Double, Double), _ b: (Double, Double)) -> Double {
    let intersection = max(0, min(a.1, b.1) - max(a.0, b.0))
    let union = max(a.1, b.1) - min(a.0, b.0)
    return union > 0 ? intersection / union : 0
}

/// Segment-level precision, recall and F1 (one-to-one matches of the same label with IoU ≥ `minimumIoU`,
/// best IoU first), start delays of the matches, and frame-level accuracy sampled at `sampleTimes`.
public func evaluate(detections: [DetectedAction], truth: Timeline, background: String, minimumIoU: Double = 0.5,
                     sampleTimes: [Double]) -> StreamMetrics {
    let actions = truth.segments.filter { $0.label != background }
    var metrics = StreamMetrics()
    metrics.truthSegments = actions.count
    metrics.detections = detections.count
    var candidates: [(iou: Double, truth: Int, detection: Int)] = []
    for (t, segment) in actions.enumerated() {
        for (d, detection) in detections.enumerated() where detection.label == segment.label {
            let iou = intersectionOverUnion((segment.start, segment.end), (detection.start, detection.end))
            if iou >= minimumIoU { candidates.append((iou, t, d)) }
        }
    }
    var usedTruth = Set<Int>(), usedDetections = Set<Int>()
    for candidate in candidates.sorted(by: { $0.iou > $1.iou })
    where !usedTruth.contains(candidate.truth) && !usedDetections.contains(candidate.detection) {
        usedTruth.insert(candidate.truth)
        usedDetections.insert(candidate.detection)
        metrics.delays.append(detections[candidate.detection].startEvent - actions[candidate.truth].start)
    }
    metrics.matched = usedTruth.count
    metrics.precision = detections.isEmpty ? 0 : Double(metrics.matched) / Double(detections.count)
    metrics.recall = actions.isEmpty ? 0 : Double(metrics.matched) / Double(actions.count)
    let sum = metrics.precision + metrics.recall
    metrics.f1 = sum > 0 ? 2 * metrics.precision * metrics.recall / sum : 0
    var correct = 0
    for t in sampleTimes {
        let expected = truth.label(at: t) ?? background
        // The active detection at t: the latest one whose span holds t.
        let predicted = detections.last { $0.start <= t && t < $0.end }?.label ?? background
        if predicted == expected { correct += 1 }
    }
    metrics.frameAccuracy = sampleTimes.isEmpty ? 0 : Double(correct) / Double(sampleTimes.count)
    return metrics
}

/// Ground truth above, detections below, on one time axis: an SVG people read faster than numbers.
public func timelineSVG(truth: Timeline, detections: [DetectedAction], background: String, duration: Double,
                        title: String) -> String {
    let width = 1200.0, left = 90.0, right = 20.0, rowHeight = 34.0
    let scale = (width - left - right) / max(duration, 1e-6)
    let labels = Array(Set(truth.segments.map(\.label) + detections.map(\.label))).filter { $0 != background }.sorted()
    let palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
                   "#bab0ac", "#1f77b4", "#8c564b"]
    func colour(_ label: String) -> String { palette[(labels.firstIndex(of: label) ?? 0) % palette.count] }
    func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
    let legendRows = (labels.count + 5) / 6
    let height = 60 + 2 * rowHeight + 40 + Double(legendRows) * 20
    var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(left)" y="20" font-size="14">\(escape(title))</text>

        """
    func row(_ y: Double, _ name: String, _ spans: [(String, Double, Double)]) {
        svg += "<text x=\"8\" y=\"\(y + rowHeight / 2 + 4)\">\(name)</text>\n"
        svg += "<rect x=\"\(left)\" y=\"\(y)\" width=\"\(width - left - right)\" height=\"\(rowHeight - 6)\" fill=\"#f2f2f2\"/>\n"
        for (label, start, end) in spans where label != background {
            let x = left + start * scale, w = max(1, (end - start) * scale)
            svg += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(w)\" height=\"\(rowHeight - 6)\" fill=\"\(colour(label))\"><title>\(escape(label)) \(String(format: "%.2f–%.2f s", start, end))</title></rect>\n"
        }
    }
    row(40, "truth", truth.segments.map { ($0.label, $0.start, $0.end) })
    row(40 + rowHeight, "detected", detections.map { ($0.label, $0.start, $0.end) })
    let axisY = 40 + 2 * rowHeight + 4
    let step = duration > 120 ? 20.0 : duration > 40 ? 10.0 : 5.0
    var tick = 0.0
    while tick <= duration {
        let x = left + tick * scale
        svg += "<line x1=\"\(x)\" y1=\"\(axisY)\" x2=\"\(x)\" y2=\"\(axisY + 5)\" stroke=\"black\"/><text x=\"\(x - 8)\" y=\"\(axisY + 18)\">\(Int(tick)) s</text>\n"
        tick += step
    }
    for (i, label) in labels.enumerated() {
        let x = left + Double(i % 6) * 180, y = axisY + 34 + Double(i / 6) * 20
        svg += "<rect x=\"\(x)\" y=\"\(y - 10)\" width=\"12\" height=\"12\" fill=\"\(colour(label))\"/><text x=\"\(x + 18)\" y=\"\(y)\">\(escape(label))</text>\n"
    }
    return svg + "</svg>\n"
}

import Foundation

/// A Prometheus histogram with fixed buckets (upper bounds in seconds).
public struct Histogram: Sendable {
    public let bounds: [Double]
    public private(set) var counts: [UInt64]
    public private(set) var sum: Double = 0
    public private(set) var count: UInt64 = 0

    public init(bounds: [Double]) {
        self.bounds = bounds
        counts = Array(repeating: 0, count: bounds.count)
    }

    public mutating func observe(_ value: Double) {
        for (i, bound) in bounds.enumerated() where value <= bound { counts[i] += 1 }
        sum += value
        count += 1
    }

    public mutating func merge(_ other: Histogram) {
        for i in counts.indices { counts[i] += other.counts[i] }
        sum += other.sum
        count += other.count
    }

    public static let latencyBounds: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16]
}

/// What one camera's pipeline counts (beyond the capture counters).
public struct PipelineStats: Sendable {
    public var framesProcessed: UInt64 = 0
    public var clips: UInt64 = 0
    /// Clips that fell due while inference was a whole hop behind, skipped.
    public var clipsSkipped: UInt64 = 0
    public var gflopComputed: Double = 0
    public var gflopFullClip: Double = 0
    public var clipLatency = Histogram(bounds: Histogram.latencyBounds)
    public var inferenceSeconds = Histogram(bounds: Histogram.latencyBounds)
    public var actionsStarted: UInt64 = 0

    public mutating func merge(_ other: PipelineStats) {
        framesProcessed += other.framesProcessed
        clips += other.clips
        clipsSkipped += other.clipsSkipped
        gflopComputed += other.gflopComputed
        gflopFullClip += other.gflopFullClip
        clipLatency.merge(other.clipLatency)
        inferenceSeconds.merge(other.inferenceSeconds)
        actionsStarted += other.actionsStarted
    }
}

/// Builds Prometheus text exposition format 0.0.4.
public struct PrometheusText {
    public private(set) var text = ""
    private var described: Set<String> = []

    public init() {}

    public mutating func describe(_ name: String, _ type: String, _ help: String) {
        guard described.insert(name).inserted else { return }
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    public mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " \(Self.format(value))\n"
    }

    public mutating func histogram(_ name: String, _ labels: [(String, String)], _ histogram: Histogram) {
        for (bound, count) in zip(histogram.bounds, histogram.counts) {
            sample("\(name)_bucket", labels + [("le", Self.format(bound))], Double(count))
        }
        sample("\(name)_bucket", labels + [("le", "+Inf")], Double(histogram.count))
        sample("\(name)_sum", labels, histogram.sum)
        sample("\(name)_count", labels, Double(histogram.count))
    }

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}

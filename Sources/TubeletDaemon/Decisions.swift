import Foundation

/// A change in an action's life, produced by `DecisionTracker`.
public struct ActionTransition: Sendable, Equatable {
    public enum Kind: String, Sendable { case start, update, end }
    public var kind: Kind
    public var eventID: String
    public var label: String
    public var labelIndex: Int
    /// The smoothed score that caused it (for `end` by score: the score that fell below end_score).
    public var score: Double
    /// Capture-clock time the action started (the clip end of its first clip at or above min_score).
    public var startedAt: Double
    /// For `end`: why it ended (score, offline, stopping, removed, reconfigured, ignored).
    public var reason: String?
    /// For `end`: when it ended.
    public var endedAt: Double?
}

/// Turns per-clip probabilities into start / update / end transitions, per label:
/// smooth (mean over the last N clips or EMA); an action starts once its smoothed score has been at or
/// above `min_score` for `min_duration` seconds; it ends when the score falls below `end_score`.
/// Used from one thread at a time (the camera's inference thread, or its owner after that thread ended).
public final class DecisionTracker {
    private struct Active {
        var eventID: String
        var startedAt: Double
        var lastUpdate: Double
    }

    public private(set) var config: DecisionConfig
    public let labels: [String]
    private var history: [[Double]] = []
    private var ema: [Double]?
    private var aboveSince: [Int: Double] = [:]
    private var active: [Int: Active] = [:]
    private let makeID: () -> String

    public init(config: DecisionConfig, labels: [String], makeID: @escaping () -> String = { UUID().uuidString.lowercased() }) {
        self.config = config
        self.labels = labels
        self.makeID = makeID
    }

    public var openActions: Int { active.count }

    /// The smoothed scores after the last clip.
    public private(set) var smoothed: [Double] = []

    /// New thresholds apply from the next clip; a change of smoothing starts the smoothing afresh.
    /// Open actions of labels now ignored end at once.
    public func update(config new: DecisionConfig, at time: Double) -> [ActionTransition] {
        if new.smoothing != config.smoothing {
            history.removeAll()
            ema = nil
        }
        config = new
        var ended: [ActionTransition] = []
        for index in active.keys.sorted() where new.ignoreLabels.contains(labels[index]) {
            ended.append(end(index, score: smoothed.indices.contains(index) ? smoothed[index] : 0, reason: "ignored", at: time))
        }
        return ended
    }

    public func observe(probabilities: [Float], clipEnd: Double) -> [ActionTransition] {
        let p = probabilities.map(Double.init)
        switch config.smoothing {
        case .mean(let clips):
            history.append(p)
            if history.count > clips { history.removeFirst(history.count - clips) }
            smoothed = (0..<p.count).map { i in history.reduce(0) { $0 + ($1.indices.contains(i) ? $1[i] : 0) } / Double(history.count) }
        case .ema(let alpha):
            if let previous = ema, previous.count == p.count {
                ema = zip(p, previous).map { alpha * $0 + (1 - alpha) * $1 }
            } else {
                ema = p
            }
            smoothed = ema!
        }
        var transitions: [ActionTransition] = []
        for index in smoothed.indices {
            let label = index < labels.count ? labels[index] : "class_\(index)"
            let score = smoothed[index]
            if config.ignoreLabels.contains(label) {
                aboveSince[index] = nil
                continue
            }
            if var action = active[index] {
                if score < config.endScore(for: label) {
                    transitions.append(end(index, score: score, reason: "score", at: clipEnd))
                } else if clipEnd - action.lastUpdate >= config.updateInterval {
                    action.lastUpdate = clipEnd
                    active[index] = action
                    transitions.append(ActionTransition(kind: .update, eventID: action.eventID, label: label, labelIndex: index,
                                                        score: score, startedAt: action.startedAt))
                }
                continue
            }
            guard score >= config.minScore(for: label) else {
                aboveSince[index] = nil
                continue
            }
            let since = aboveSince[index] ?? clipEnd
            aboveSince[index] = since
            if clipEnd - since >= config.minDuration(for: label) {
                let action = Active(eventID: makeID(), startedAt: since, lastUpdate: clipEnd)
                active[index] = action
                transitions.append(ActionTransition(kind: .start, eventID: action.eventID, label: label, labelIndex: index,
                                                    score: score, startedAt: since))
            }
        }
        return transitions
    }

    /// Ends every open action (the stream broke, the camera is removed, the daemon stops) and forgets the history.
    public func endAll(reason: String, at time: Double) -> [ActionTransition] {
        let ended = active.keys.sorted().map { end($0, score: smoothed.indices.contains($0) ? smoothed[$0] : 0, reason: reason, at: time) }
        history.removeAll()
        ema = nil
        aboveSince.removeAll()
        return ended
    }

    private func end(_ index: Int, score: Double, reason: String, at time: Double) -> ActionTransition {
        let action = active.removeValue(forKey: index)!
        aboveSince[index] = nil
        return ActionTransition(kind: .end, eventID: action.eventID, label: index < labels.count ? labels[index] : "class_\(index)",
                                labelIndex: index, score: score, startedAt: action.startedAt, reason: reason, endedAt: time)
    }
}

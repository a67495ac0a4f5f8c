// TEMPORARY stand-in for TubeletStreaming's ClipScheduler (landing on main), with exactly its API,
// so that the daemon runs before it lands. It classifies the whole clip with `model.logits` every
// `hop` frames (no reuse). Delete this file when merging main.
import Foundation
import TubeletKernels
import TubeletLoading
import TubeletStreaming

public enum ReuseMode: String, Sendable, Codable { case none, exact, kv }

public struct WindowSettings: Sendable, Equatable {
    public var clipFrames: Int
    public var frameStride: Int
    public var hop: Int
    public var reuse: ReuseMode
    public var refresh: Int?
    public var approximate: Bool

    public init(clipFrames: Int, frameStride: Int = 1, hop: Int, reuse: ReuseMode = .none, refresh: Int? = nil, approximate: Bool = false) {
        self.clipFrames = clipFrames
        self.frameStride = frameStride
        self.hop = hop
        self.reuse = reuse
        self.refresh = refresh
        self.approximate = approximate
    }
}

public struct SchedulerError: Error, CustomStringConvertible {
    public var description: String
}

public struct ClipResult: Sendable {
    public var clipStart: Double
    public var clipEnd: Double
    public var logits: [Float]
    public var probabilities: [Float]
    public var top: [(index: Int, label: String, score: Float)]
    public var wallSeconds: Double
    public var gflopComputed: Double
    public var gflopFullClip: Double
    public var sequence: UInt64
}

public final class ClipScheduler {
    private let model: TubeletModel
    private let settings: WindowSettings
    private let geometry: FrameGeometry
    private var frames: [[UInt8]] = []
    private var timestamps: [Double] = []
    private var pushed = 0
    private var sequence: UInt64 = 0

    public init(model: TubeletModel, settings: WindowSettings) throws {
        if settings.reuse == .kv && !model.isStreamingNative {
            throw SchedulerError(description: "reuse kv needs a streaming-native model; \(model.path) was trained on whole clips (use reuse none or exact)")
        }
        self.model = model
        self.settings = settings
        self.geometry = Self.geometry(for: model)
    }

    public static func geometry(for model: TubeletModel) -> FrameGeometry {
        .shortSideCenterCrop(shortSide: model.preprocessing.resizeShortSide, crop: model.preprocessing.cropSize)
    }

    public func reset() {
        frames.removeAll()
        timestamps.removeAll()
        pushed = 0
    }

    public func push(frame: FrameView) -> ClipResult? {
        frames.append(Array(frame.rgb))
        timestamps.append(frame.info.timestamp)
        if frames.count > settings.clipFrames {
            frames.removeFirst()
            timestamps.removeFirst()
        }
        pushed += 1
        guard frames.count == settings.clipFrames, (pushed - settings.clipFrames) % settings.hop == 0 else { return nil }
        let started = Date()
        let clip = Tensor(zeros: [3, settings.clipFrames, geometry.height, geometry.width])
        for (t, rgb) in frames.enumerated() {
            rgb.withUnsafeBufferPointer { model.preprocessing.normalise(frame: $0, into: clip, at: t) }
        }
        let logits = model.logits(clip).array
        let maximum = logits.max() ?? 0
        let exps = logits.map { Foundation.exp($0 - maximum) }
        let sum = exps.reduce(0, +)
        let probabilities = exps.map { $0 / sum }
        let ranked = probabilities.indices.sorted { probabilities[$0] > probabilities[$1] }.prefix(5)
        sequence += 1
        let gflop = model.gflop(frames: settings.clipFrames, height: geometry.height, width: geometry.width)
        return ClipResult(clipStart: timestamps.first!, clipEnd: timestamps.last!, logits: logits, probabilities: probabilities,
                          top: ranked.map { ($0, model.label($0), probabilities[$0]) }, wallSeconds: Date().timeIntervalSince(started),
                          gflopComputed: gflop, gflopFullClip: gflop, sequence: sequence)
    }
}

extension TubeletModel {
    fileprivate var isStreamingNative: Bool {
        switch network { case .videoSwin(let model): return model.config.streaming }
    }
}

import Foundation
import TubeletKernels
import TubeletLoading
import TubeletModels

/// How much work consecutive, overlapping clips share (../shared/notes/streaming-reuse.md).
public enum ReuseMode: String, Sendable, Codable, CaseIterable {
    /// Every clip from scratch: preprocessing, patch embedding and the whole network.
    case none
    /// Reuse what is bit-for-bit the same: per-frame preprocessing and per-tubelet patch embeddings.
    case exact
    /// Streaming-native models only: cached key/value tiles, only new token slices computed.
    case kv
}

/// The sliding window over sampled frames.
public struct WindowSettings: Sendable, Equatable {
    /// Sampled frames per clip.
    public var clipFrames: Int
    /// Keep every n-th decoded frame (applied by the source's sampling, recorded here for reports).
    public var frameStride: Int
    /// Sampled frames between two labels.
    public var hop: Int
    public var reuse: ReuseMode
    /// With `approximate`: recompute the clip exactly every `refresh` labels (nil: only the first).
    public var refresh: Int?
    /// `kv` on a clip-trained Video Swin: the stale-token approximation (not exact; measure its
    /// agreement with `none` before trusting it).
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

public struct SchedulerError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// One emitted label.
public struct ClipResult: Sendable {
    /// Timestamps (the source's clock) of the clip's first and last frame.
    public var clipStart: Double
    public var clipEnd: Double
    public var logits: [Float]
    public var probabilities: [Float]
    public var top: [(index: Int, label: String, score: Float)]
    /// Compute time spent for this label since the previous one.
    public var wallSeconds: Double
    /// GFLOP computed for this label, and what a clip from scratch costs.
    public var gflopComputed: Double
    public var gflopFullClip: Double
    /// 0, 1, 2, … per scheduler.
    public var sequence: UInt64
}

/// Turns sampled frames into one label every `hop` frames once a clip is full, reusing what
/// overlapping clips share according to the reuse mode. Not thread-safe: one inference thread
/// per scheduler; `push` blocks while it computes.
public final class ClipScheduler {
    public let model: TubeletModel
    public let settings: WindowSettings
    public let geometry: FrameGeometry
    public let topK: Int
    /// Sampled frames pushed since the start or the last `reset`.
    public private(set) var framesPushed = 0
    /// Due clips skipped by `pushDeferred(frame:skipIfDue:)` (not reset by `reset`).
    public private(set) var skippedClips = 0
    private var sequence: UInt64 = 0
    /// The model's embedding units (the `exact` capability; every clip is embedded unit by unit).
    private let backbone: TubeletEmbedding
    /// The model's key/value streaming capability (kv reuse, streaming-native models), if it has one.
    private let streams: KeyValueStreaming?
    private let tubeletFrames: Int

    /// Raw RGB of the last `clipFrames` frames (for `none`, which redoes everything) with timestamps.
    private var rawFrames: [[UInt8]] = []
    private var timestamps: [Double] = []
    /// `exact`: normalised frames of the tubelet being filled, and patch embeddings of the
    /// clip's tubelets by tubelet index.
    private var pendingFrames: [Tensor] = []
    private var embeddings: [(tubelet: Int, tokens: Tensor)] = []
    /// `exact` for families whose embedding reads frames before its unit (UniFormer): those frames,
    /// and each embedded unit's own frames (a clip's first unit is embedded again against the clip's
    /// zero padding).
    private var precedingFrames: [Tensor] = []
    private var unitFrames: [Tensor] = []
    /// `kv`: the stream through a streaming-native model.
    private var stream: SwinStream?
    /// `kv` with `approximate`: cached tiles of a clip-trained model, and labels since the last refresh.
    private var approximation: ApproximateSwinClip?
    private var labelsSinceRefresh = 0
    private var pendingSeconds = 0.0
    private var pendingFlops = 0.0
    private var fullClipGflop: Double?

    public static func geometry(for model: TubeletModel) -> FrameGeometry {
        let recipe = model.preprocessing
        return .shortSideCenterCrop(shortSide: recipe.resizeShortSide, crop: recipe.cropSize)
    }

    public init(model: TubeletModel, settings: WindowSettings, topK: Int = 5) throws {
        func fail(_ message: String) -> SchedulerError { SchedulerError(description: message) }
        guard let backbone = model.network.tubeletEmbedding else {
            throw fail("\(model.path): a \(model.architecture) model has no embedding units for the scheduler")
        }
        let streams = model.network.keyValueStreaming
        let streaming = streams?.streamingNative ?? false
        let tubelet = backbone.unitFrames
        guard settings.clipFrames > 0, settings.hop > 0, settings.frameStride > 0 else {
            throw fail("clip frames, hop and frame stride must be positive")
        }
        if settings.approximate {
            guard settings.reuse == .kv, let streams, !streams.streamingNative else {
                throw fail("--approximate is the stale-token kv mode for clip-trained models with key/value streaming (Video Swin; reuse kv)")
            }
            if let refresh = settings.refresh, refresh < 1 { throw fail("--refresh must be at least 1") }
        } else if settings.refresh != nil {
            throw fail("--refresh goes with --approximate")
        }
        if settings.reuse != .none {
            guard settings.clipFrames % tubelet == 0, settings.hop % tubelet == 0 else {
                throw fail("\(settings.reuse.rawValue) reuse needs clip frames (\(settings.clipFrames)) and hop (\(settings.hop)) to be multiples of the model's \(tubelet)-frame tubelet")
            }
        }
        if streams == nil {
            let geometry = ClipScheduler.geometry(for: model)
            if let problem = model.inputProblem([3, settings.clipFrames, geometry.height, geometry.width]) {
                throw fail("\(model.path): \(problem)")
            }
            if settings.reuse == .kv {
                throw fail("\(model.path) is a \(model.architecture) model: kv reuse is for streaming-native models with key/value streaming (Video Swin); use --reuse exact")
            }
        }
        if settings.reuse == .kv && !streaming && !settings.approximate {
            throw fail("\(model.path) is a clip-trained model: kv reuse is exact only for streaming-native models (docs/streaming-native-swin.md); use --reuse exact, or --approximate --refresh N for the stale-token approximation (its agreement is reported)")
        }
        if streaming && settings.clipFrames % tubelet != 0 {
            throw fail("a streaming-native model needs clip frames (\(settings.clipFrames)) to be a multiple of its \(tubelet)-frame tubelet")
        }
        self.model = model
        self.settings = settings
        self.geometry = ClipScheduler.geometry(for: model)
        self.topK = max(1, min(topK, model.numClasses))
        self.backbone = backbone
        self.streams = streams
        self.tubeletFrames = tubelet
    }

    /// Forgets every frame, embedding and tile: the next clip starts from scratch (after a reconnect).
    public func reset() {
        framesPushed = 0
        rawFrames.removeAll()
        timestamps.removeAll()
        pendingFrames.removeAll()
        embeddings.removeAll()
        precedingFrames.removeAll()
        unitFrames.removeAll()
        stream = nil
        approximation = nil
        labelsSinceRefresh = 0
        pendingSeconds = 0
        pendingFlops = 0
    }

    public func push(frame: FrameView) -> ClipResult? {
        frame.rgb.withMemoryRebound(to: UInt8.self) { push(rgb: $0, timestamp: frame.info.timestamp) }
    }

    public func push(frame: Frame) -> ClipResult? {
        frame.rgb.withUnsafeBufferPointer { push(rgb: $0, timestamp: frame.timestamp) }
    }

    /// rgb: one sampled frame [height, width, 3] at `geometry`.
    public func push(rgb: UnsafeBufferPointer<UInt8>, timestamp: Double) -> ClipResult? {
        ingest(rgb: rgb, timestamp: timestamp) ? ClipScheduler.evaluate([prepareClip()])[0] : nil
    }

    /// Takes one frame; true when a clip is due.
    private func ingest(rgb: UnsafeBufferPointer<UInt8>, timestamp: Double) -> Bool {
        precondition(rgb.count == geometry.byteCount, "frame has \(rgb.count) bytes, expected \(geometry.byteCount) for \(geometry)")
        let started = DispatchTime.now().uptimeNanoseconds
        let index = framesPushed
        framesPushed += 1
        rawFrames.append(Array(rgb))
        timestamps.append(timestamp)
        if rawFrames.count > settings.clipFrames {
            rawFrames.removeFirst()
            timestamps.removeFirst()
        }
        if settings.reuse != .none {
            // Per-frame preprocessing once; per-tubelet work as soon as a tubelet is complete.
            let normalised = Tensor(uninitialized: [3, 1, geometry.height, geometry.width])
            model.preprocessing.normalise(frame: rgb, into: normalised, at: 0)
            pendingFrames.append(normalised)
            if pendingFrames.count == tubeletFrames {
                completeTubelet(index: index / tubeletFrames)
                pendingFrames.removeAll()
            }
        }
        pendingSeconds += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        return framesPushed >= settings.clipFrames && (framesPushed - settings.clipFrames) % settings.hop == 0
    }

    private func completeTubelet(index tubelet: Int) {
        let frames = concatenateFrames(pendingFrames)
        switch settings.reuse {
        case .exact, .kv where settings.approximate:
            let tokens = precedingFrames.isEmpty ? backbone.embed(frames, 0)
                : backbone.embed(concatenateFrames(precedingFrames + pendingFrames), precedingFrames.count)
            pendingFlops += backbone.embedFlops(tokens)
            embeddings.append((tubelet, tokens))
            let clipTubelets = settings.clipFrames / tubeletFrames
            if embeddings.count > clipTubelets { embeddings.removeFirst(embeddings.count - clipTubelets) }
            if backbone.contextFrames > 0 {
                precedingFrames = Array(pendingFrames.suffix(backbone.contextFrames))
                unitFrames = Array((unitFrames + [frames]).suffix(clipTubelets))
            }
        case .kv:
            if stream == nil {
                stream = streams!.makeStream(tubelet, settings.clipFrames / tubeletFrames)
            }
            stream!.push(frames)
            pendingFlops += stream!.lastPushFlops
        case .none:
            break
        }
    }

    /// The due clip, ready for the network: its tokens, or (streaming-native models) its logits.
    private func prepareClip() -> DueClip {
        let started = DispatchTime.now().uptimeNanoseconds
        let clipTubelets = settings.clipFrames / tubeletFrames
        let firstFrame = framesPushed - settings.clipFrames
        var due = DueClip(scheduler: self, clipStart: timestamps.first!, clipEnd: timestamps.last!)
        switch settings.reuse {
        case .none:
            // Everything from the clip's raw frames, embedding per tubelet as exact does (same GEMM
            // shapes, so exact can be compared bit for bit).
            let clip = Tensor(uninitialized: [3, settings.clipFrames, geometry.height, geometry.width])
            for (t, frame) in rawFrames.enumerated() {
                frame.withUnsafeBufferPointer { model.preprocessing.normalise(frame: $0, into: clip, at: t) }
            }
            var tokenSlices: [Tensor] = []
            var start = 0
            while start < settings.clipFrames {
                let count = min(tubeletFrames, settings.clipFrames - start)
                let context = min(backbone.contextFrames, start)
                let tokens = backbone.embed(sliceFrames(clip, (start - context)..<(start + count)), context)
                pendingFlops += backbone.embedFlops(tokens)
                tokenSlices.append(tokens)
                start += count
            }
            due.tokens = stackSlices(tokenSlices)
        case .exact:
            precondition(embeddings.count == clipTubelets && embeddings.first!.tubelet == firstFrame / tubeletFrames)
            var slices = embeddings.map(\.tokens)
            if backbone.contextFrames > 0 {
                slices[0] = backbone.embed(unitFrames[0], 0)
                pendingFlops += backbone.embedFlops(slices[0])
            }
            due.tokens = stackSlices(slices)
        case .kv where settings.approximate:
            due.logits = approximateLogits(clipTubelets: clipTubelets, firstTubelet: firstFrame / tubeletFrames)
        case .kv:
            due.logits = stream!.clipLogits(clipTokens: clipTubelets)
            pendingFlops += streams!.headFlops
        }
        if let streams, streams.streamingNative, let tokens = due.tokens {
            // A clip from scratch of a streaming-native model: a stream of its own at its absolute time.
            let grid = Array(tokens.shape.prefix(3))
            let stream = streams.makeStream(firstFrame / tubeletFrames, grid[0])
            stream.push(tokens: tokens, grid: grid)
            pendingFlops += stream.lastPushFlops
            due.logits = stream.clipLogits(clipTokens: grid[0])
            due.tokens = nil
        }
        pendingSeconds += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        return due
    }

    /// The stale-token approximation: exact on a refresh, else only the newest tubelets computed.
    private func approximateLogits(clipTubelets: Int, firstTubelet: Int) -> Tensor {
        precondition(embeddings.count == clipTubelets && embeddings.first!.tubelet == firstTubelet)
        let hopTubelets = settings.hop / tubeletFrames
        let approximation = self.approximation ?? streams!.makeApproximation()
        self.approximation = approximation
        let refreshDue = !approximation.isPrimed || hopTubelets >= clipTubelets
            || (settings.refresh.map { labelsSinceRefresh >= $0 } ?? false)
        let logits: Tensor
        if refreshDue {
            let tokens = stackSlices(embeddings.map(\.tokens))
            logits = approximation.refresh(tokens: tokens, grid: Array(tokens.shape.prefix(3)))
            labelsSinceRefresh = 1
        } else {
            logits = approximation.advance(newTokens: stackSlices(embeddings.suffix(hopTubelets).map(\.tokens)))
            labelsSinceRefresh += 1
        }
        pendingFlops += approximation.lastFlops
        return logits
    }

    /// Like `push`, but a due clip comes back unevaluated, so that clips of several cameras that
    /// are due together share one forward pass: collect them and call `ClipScheduler.evaluate`.
    public func pushDeferred(rgb: UnsafeBufferPointer<UInt8>, timestamp: Double) -> DueClip? {
        ingest(rgb: rgb, timestamp: timestamp) ? prepareClip() : nil
    }

    public func pushDeferred(frame: Frame) -> DueClip? {
        frame.rgb.withUnsafeBufferPointer { pushDeferred(rgb: $0, timestamp: frame.timestamp) }
    }

    /// `pushDeferred`, where a clip that falls due with `skipIfDue` is not prepared but skipped and
    /// counted in `skippedClips` (a caller that is behind: the next clip is already captured). Work
    /// already done for it carries over to the next label; it takes no sequence number. The stale-token
    /// approximation never skips (its cached tiles must see every hop).
    public func pushDeferred(frame: FrameView, skipIfDue: Bool) -> DueClip? {
        frame.rgb.withMemoryRebound(to: UInt8.self) { rgb in
            guard ingest(rgb: rgb, timestamp: frame.info.timestamp) else { return nil }
            if skipIfDue && !settings.approximate {
                skippedClips += 1
                return nil
            }
            return prepareClip()
        }
    }

    /// Runs due clips; those of clip-trained models that batch (`TubeletEmbedding.forwardBatch`) and share a
    /// model file and a token geometry go through one batched forward pass. Results come back in the order given. The
    /// schedulers must not be pushed to meanwhile.
    public static func evaluate(_ clips: [DueClip]) -> [ClipResult] {
        var passSizes: [Int] = []
        return evaluate(clips, passSizes: &passSizes)
    }

    /// `evaluate`, appending the number of clips of each network pass it ran to `passSizes` (clips of
    /// streaming-native models come with their logits and need none).
    public static func evaluate(_ clips: [DueClip], passSizes: inout [Int]) -> [ClipResult] {
        var logits = clips.map(\.logits)
        var passSeconds = [Double](repeating: 0, count: clips.count)
        var groups: [String: [Int]] = [:]
        for (i, clip) in clips.enumerated() where logits[i] == nil {
            // Families without forwardBatch run one clip per pass (a group of one).
            let batchable = clip.scheduler.backbone.forwardBatch != nil
            groups[batchable ? "\(clip.scheduler.model.path)|\(clip.tokens!.shape)" : "single \(i)", default: []].append(i)
        }
        for members in groups.values.sorted(by: { $0[0] < $1[0] }) {
            let started = DispatchTime.now().uptimeNanoseconds
            let first = clips[members[0]].scheduler
            let outputs: [Tensor]
            if let forwardBatch = first.backbone.forwardBatch {
                outputs = forwardBatch(members.map { clips[$0].tokens! })
            } else {
                outputs = [first.backbone.forward(clips[members[0]].tokens!)]
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            passSizes.append(outputs.count)
            for (member, output) in zip(members, outputs) {
                logits[member] = output
                passSeconds[member] = seconds / Double(members.count)  // the pass's time, shared
                let scheduler = clips[member].scheduler
                scheduler.pendingFlops += scheduler.backbone.networkFlops(scheduler.settings.clipFrames, scheduler.geometry.height,
                                                                          scheduler.geometry.width)
            }
        }
        return clips.indices.map { i in
            clips[i].scheduler.finish(clips[i], logits: logits[i]!, extraSeconds: passSeconds[i])
        }
    }

    private func finish(_ due: DueClip, logits: Tensor, extraSeconds: Double) -> ClipResult {
        pendingSeconds += extraSeconds
        let values = logits.array
        let maximum = values.max()!
        let exps = values.map { Foundation.exp(Double($0 - maximum)) }
        let sum = exps.reduce(0, +)
        let probabilities = exps.map { Float($0 / sum) }
        let ranked = values.indices.sorted { values[$0] > values[$1] }.prefix(topK)
        let result = ClipResult(
            clipStart: due.clipStart, clipEnd: due.clipEnd, logits: values, probabilities: probabilities,
            top: ranked.map { ($0, model.label($0), probabilities[$0]) },
            wallSeconds: pendingSeconds, gflopComputed: pendingFlops / 1e9, gflopFullClip: fullClipCost(),
            sequence: sequence)
        sequence += 1
        pendingSeconds = 0
        pendingFlops = 0
        return result
    }

    /// GFLOP of a clip from scratch (computed once).
    private func fullClipCost() -> Double {
        if let cached = fullClipGflop { return cached }
        let cost: Double
        if let streams, streams.streamingNative {
            cost = streams.streamClipFlops(settings.clipFrames, geometry.height, geometry.width) / 1e9
        } else {
            cost = model.gflop(frames: settings.clipFrames, height: geometry.height, width: geometry.width)
        }
        fullClipGflop = cost
        return cost
    }
}

/// Frames [3, 1, H, W] each → [3, count, H, W].
func concatenateFrames(_ frames: [Tensor]) -> Tensor {
    let (height, width) = (frames[0].shape[2], frames[0].shape[3])
    let plane = height * width
    let out = Tensor(uninitialized: [3, frames.count, height, width])
    for (t, frame) in frames.enumerated() {
        for c in 0..<3 { (out.data + (c * frames.count + t) * plane).update(from: frame.data + c * plane, count: plane) }
    }
    return out
}

/// clip[:, range] as its own tensor.
func sliceFrames(_ clip: Tensor, _ range: Range<Int>) -> Tensor {
    let (frames, plane) = (clip.shape[1], clip.shape[2] * clip.shape[3])
    let out = Tensor(uninitialized: [3, range.count, clip.shape[2], clip.shape[3]])
    for c in 0..<3 {
        (out.data + c * range.count * plane).update(from: clip.data + (c * frames + range.lowerBound) * plane, count: range.count * plane)
    }
    return out
}

/// A clip that is due: its stacked patch embeddings [T', H', W', C] waiting for the network, or its
/// logits already (streaming-native models).
public struct DueClip {
    public let scheduler: ClipScheduler
    public let clipStart: Double
    public let clipEnd: Double
    var tokens: Tensor?
    var logits: Tensor?
    init(scheduler: ClipScheduler, clipStart: Double, clipEnd: Double) {
        self.scheduler = scheduler
        self.clipStart = clipStart
        self.clipEnd = clipEnd
    }
}

/// Token slices [1, H', W', C] each → [slices, H', W', C] (a copy: the network consumes it).
func stackSlices(_ slices: [Tensor]) -> Tensor {
    let shape = slices[0].shape, perSlice = slices[0].count
    let tokens = Tensor(uninitialized: [slices.count] + shape.dropFirst())
    for (i, slice) in slices.enumerated() {
        precondition(slice.shape == shape)
        (tokens.data + i * perSlice).update(from: slice.data, count: perSlice)
    }
    return tokens
}

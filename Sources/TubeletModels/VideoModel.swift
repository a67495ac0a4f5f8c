import TubeletKernels

/// The one interface every model family implements. A family is this conformance (in its model file)
/// plus an importer (TubeletLoading) and one entry in `ModelRegistry.families`; nothing else in the
/// code names a family. The scheduler asks a model for capabilities (`tubeletEmbedding`,
/// `keyValueStreaming`), never for its family.
public protocol VideoModel: Sendable {
    /// The family's configuration as the model file stores it (JSON); its CodingKeys spell the names
    /// the reference code uses.
    associatedtype Config: Codable & Sendable

    /// The `tubelet.architecture` value that names this family in a model file.
    static var architecture: String { get }
    /// Why `config` cannot be built (a message rather than a trap in the model code), or nil.
    static func problem(in config: Config) -> String?
    /// The preprocessing recipe of the family's reference code for this config (importers start from it
    /// and apply what the source says).
    static func referencePreprocessing(for config: Config) -> Preprocessing
    /// Builds the model, reading each weight by its checkpoint name (`weights(name, shape)`).
    init(config: Config, weights: WeightProvider) throws

    var config: Config { get }
    var numClasses: Int { get }
    /// clip: [3, T, H, W] normalised → logits [numClasses]. Check `inputProblem` first: a clip the model
    /// cannot take is a precondition failure here.
    func logits(_ clip: Tensor) -> Tensor
    /// Why `logits` cannot take a clip of this shape, or nil.
    func inputProblem(channels: Int, frames: Int, height: Int, width: Int) -> String?
    /// Multiply-adds ×2 of one clip of this geometry (bench and capacity planning).
    func flops(frames: Int, height: Int, width: Int) -> Double

    /// Capability: the clip is a sequence of embedding units that never mix frames across their
    /// boundaries, so the scheduler can embed each unit once and reuse it across overlapping clips
    /// (`reuse: exact`). Nil: only frames are reused.
    var tubeletEmbedding: TubeletEmbedding? { get }
    /// Capability: streaming key/value tiles (`reuse: kv`). Nil for families without it.
    var keyValueStreaming: KeyValueStreaming? { get }
}

extension VideoModel {
    public var tubeletEmbedding: TubeletEmbedding? { nil }
    public var keyValueStreaming: KeyValueStreaming? { nil }
}

/// What `reuse: exact` needs from a family: how many frames one embedding unit spans (a tubelet, one
/// TimeSformer frame), its embedding, and the network on the units of a clip stacked in time.
/// `none` embeds unit by unit too, so `exact` is bit-for-bit what `none` computes.
public struct TubeletEmbedding: Sendable {
    /// Frames one unit spans.
    public var unitFrames: Int
    /// Frames before a unit that its embedding reads (UniFormer's first convolution: 1); inside a clip
    /// those are the previous unit's last frames, at a clip's start its zero padding, so the scheduler
    /// embeds a clip's first unit again.
    public var contextFrames: Int
    /// frames: [3, context + unitFrames, H, W] → one time slice of tokens [1, …]; the first `context`
    /// frames (at most `contextFrames`) precede the unit.
    public var embed: @Sendable (_ frames: Tensor, _ context: Int) -> Tensor
    /// Multiply-adds ×2 of one `embed` that produced `tokens`.
    public var embedFlops: @Sendable (_ tokens: Tensor) -> Double
    /// The network after the embedding on one clip's stacked slices [T', …] (consumed) → logits.
    public var forward: @Sendable (_ tokens: Tensor) -> Tensor
    /// Several clips' stacked slices of one shape in one pass (cameras due together), when the family
    /// batches; nil: one clip per pass.
    public var forwardBatch: (@Sendable (_ clips: [Tensor]) -> [Tensor])?
    /// Multiply-adds ×2 of `forward` for a clip of this geometry.
    public var networkFlops: @Sendable (_ frames: Int, _ height: Int, _ width: Int) -> Double

    public init(unitFrames: Int, contextFrames: Int = 0,
                embed: @escaping @Sendable (_ frames: Tensor, _ context: Int) -> Tensor,
                embedFlops: @escaping @Sendable (_ tokens: Tensor) -> Double,
                forward: @escaping @Sendable (_ tokens: Tensor) -> Tensor,
                forwardBatch: (@Sendable (_ clips: [Tensor]) -> [Tensor])? = nil,
                networkFlops: @escaping @Sendable (_ frames: Int, _ height: Int, _ width: Int) -> Double) {
        self.unitFrames = unitFrames
        self.contextFrames = contextFrames
        self.embed = embed
        self.embedFlops = embedFlops
        self.forward = forward
        self.forwardBatch = forwardBatch
        self.networkFlops = networkFlops
    }
}

/// What `reuse: kv` needs: streams of cached key/value tiles (exact for streaming-native models), and
/// for clip-trained models of the same family the stale-token approximation.
public struct KeyValueStreaming: Sendable {
    /// True when the model was trained streaming-native: kv reuse is exact and every clip, even one from
    /// scratch, runs through a stream.
    public var streamingNative: Bool
    /// A stream whose first token slice sits at absolute time `startTokenTime`, keeping `keptSlices`.
    public var makeStream: @Sendable (_ startTokenTime: Int, _ keptSlices: Int) -> SwinStream
    /// The stale-token approximation of a clip-trained model (cached tiles, refreshed now and then).
    public var makeApproximation: @Sendable () -> ApproximateSwinClip
    /// Multiply-adds ×2 of one clip from scratch through a stream (streaming-native models).
    public var streamClipFlops: @Sendable (_ frames: Int, _ height: Int, _ width: Int) -> Double
    /// Multiply-adds ×2 of the classifier head on a stream's pooled features.
    public var headFlops: Double

    public init(streamingNative: Bool, makeStream: @escaping @Sendable (_ startTokenTime: Int, _ keptSlices: Int) -> SwinStream,
                makeApproximation: @escaping @Sendable () -> ApproximateSwinClip,
                streamClipFlops: @escaping @Sendable (_ frames: Int, _ height: Int, _ width: Int) -> Double, headFlops: Double) {
        self.streamingNative = streamingNative
        self.makeStream = makeStream
        self.makeApproximation = makeApproximation
        self.streamClipFlops = streamClipFlops
        self.headFlops = headFlops
    }
}

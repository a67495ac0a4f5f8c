import Foundation
import TubeletKernels
import TubeletModels

/// A model ready to run, with what the model file says about it.
public struct TubeletModel: Sendable {
    public enum Network: Sendable {
        case videoSwin(VideoSwin)
        case timesformer(TimeSformer)
        case vivit(ViViT)
        /// ViViT Models 2-4 from scenic checkpoints.
        case scenicViViT(ScenicViViT)
        case uniformer(UniFormer)
    }
    public let network: Network
    public let labels: [String]
    public let preprocessing: Preprocessing
    public let path: String

    public var architecture: String {
        switch network {
        case .videoSwin: return ModelFile.videoSwinArchitecture
        case .timesformer: return ModelFile.timesformerArchitecture
        case .vivit: return ModelFile.vivitArchitecture
        case .scenicViViT: return ModelFile.scenicViViTArchitecture
        case .uniformer: return ModelFile.uniformerArchitecture
        }
    }

    public var numClasses: Int {
        switch network {
        case .videoSwin(let model): return model.config.numClasses
        case .timesformer(let model): return model.config.numClasses
        case .vivit(let model): return model.config.numClasses
        case .scenicViViT(let model): return model.config.numClasses
        case .uniformer(let model): return model.config.numClasses
        }
    }

    /// clip: [3, T, H, W] normalised → logits [numClasses]. TimeSformer and ViViT take the clip in
    /// this layout too (transformers' (B, T, C, H, W) is only a different view of the same frames).
    /// Check `inputProblem` first: a clip the model cannot take is a precondition failure here.
    public func logits(_ clip: Tensor) -> Tensor {
        switch network {
        case .videoSwin(let model): return model(clip)
        case .timesformer(let model): return model(clip)
        case .vivit(let model): return model(clip)
        case .scenicViViT(let model): return model(clip)
        case .uniformer(let model): return model(clip)
        }
    }

    /// Why `logits` cannot take a clip of this shape, or nil. Video Swin pads any size;
    /// TimeSformer and ViViT need their configured frame size (and ViViT its frame count).
    public func inputProblem(_ shape: [Int]) -> String? {
        guard shape.count == 4, shape.allSatisfy({ $0 > 0 }) else { return "clip must be [3, T, H, W], got \(shape)" }
        switch network {
        case .videoSwin(let model):
            return shape[0] == model.config.inChannels ? nil : "expected \(model.config.inChannels) channels, got \(shape[0])"
        case .timesformer(let model): return model.inputProblem(channels: shape[0], frames: shape[1], height: shape[2], width: shape[3])
        case .vivit(let model): return model.inputProblem(channels: shape[0], frames: shape[1], height: shape[2], width: shape[3])
        case .scenicViViT(let model): return model.inputProblem(channels: shape[0], frames: shape[1], height: shape[2], width: shape[3])
        case .uniformer(let model): return model.inputProblem(channels: shape[0], frames: shape[1], height: shape[2], width: shape[3])
        }
    }

    /// GFLOP of one clip of this geometry.
    public func gflop(frames: Int, height: Int, width: Int) -> Double {
        switch network {
        case .videoSwin(let model): return model.flops(frames: frames, height: height, width: width) / 1e9
        case .timesformer(let model): return model.flops(frames: frames) / 1e9
        case .vivit(let model): return model.flops() / 1e9
        case .scenicViViT(let model): return model.flops() / 1e9
        case .uniformer(let model): return model.flops(frames: frames, height: height, width: width) / 1e9
        }
    }

    /// The label of class `index`, or "class_<index>" when the model file has no names.
    public func label(_ index: Int) -> String {
        index < labels.count ? labels[index] : "class_\(index)"
    }
}

/// The Tubelet model file: one `.safetensors` whose `__metadata__` holds the architecture, its config
/// (JSON), the preprocessing recipe (JSON) and the label names (JSON array). Weights are F32 under
/// torchvision's names.
public enum ModelFile {
    public static let formatKey = "tubelet.format"
    public static let architectureKey = "tubelet.architecture"
    public static let configKey = "tubelet.config"
    public static let preprocessingKey = "tubelet.preprocessing"
    public static let labelsKey = "tubelet.labels"
    public static let sourceKey = "tubelet.source"
    public static let videoSwinArchitecture = "video_swin"
    /// Weights under transformers' save_pretrained names (`timesformer.*`, `classifier.*`).
    public static let timesformerArchitecture = "timesformer"
    /// ViViT Model 1, weights under transformers' save_pretrained names (`vivit.encoder.layer.N.*`).
    public static let vivitArchitecture = "vivit"
    /// ViViT Models 2-4 (scenic), weights under the flax paths with kernels as [out, in] (ScenicImport).
    public static let scenicViViTArchitecture = ScenicImport.architecture
    /// UniFormer (official video model), weights under the official names (UniFormerImport).
    public static let uniformerArchitecture = UniFormerImport.architecture

    /// A config as the model file stores it: JSON with sorted keys.
    public static func encodeConfig<Config: Encodable>(_ config: Config) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(config), as: UTF8.self)
    }

    public static func write(videoSwin config: VideoSwinConfig, weights: [(name: String, tensor: Tensor)],
                             preprocessing: Preprocessing, labels: [String], source: String, to path: String) throws {
        try write(architecture: videoSwinArchitecture, configJSON: try encodeConfig(config), weights: weights,
                  preprocessing: preprocessing, labels: labels, source: source, to: path)
    }

    /// Any architecture: `configJSON` is its config encoded by `encodeConfig`.
    public static func write(architecture: String, configJSON: String, weights: [(name: String, tensor: Tensor)],
                             preprocessing: Preprocessing, labels: [String], source: String, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let metadata: [String: String] = [
            formatKey: "1",
            architectureKey: architecture,
            configKey: configJSON,
            preprocessingKey: String(decoding: try encoder.encode(preprocessing), as: UTF8.self),
            labelsKey: String(decoding: try encoder.encode(labels), as: UTF8.self),
            sourceKey: source,
        ]
        try SafeTensorsWriter.write(weights.map { SafeTensorsWriter.Entry(name: $0.name, tensor: $0.tensor) },
                                    metadata: metadata, to: path)
    }

    public static func load(path: String) throws -> TubeletModel {
        let file = try SafeTensorsFile(path: path)
        func fail(_ message: String) -> LoadError { LoadError(file: path, offset: nil, message: message) }
        guard let architecture = file.metadata[architectureKey] else {
            throw fail("not a Tubelet model file (no '\(architectureKey)' in the safetensors metadata); create one with `tubelet import`")
        }
        func decode<T: Decodable>(_ type: T.Type, _ key: String) throws -> T {
            guard let text = file.metadata[key] else { throw fail("metadata '\(key)' is missing") }
            do { return try JSONDecoder().decode(type, from: Data(text.utf8)) } catch {
                throw fail("metadata '\(key)' is not valid: \(error)")
            }
        }
        let preprocessing = try decode(Preprocessing.self, preprocessingKey)
        let labels = file.metadata[labelsKey] == nil ? [] : try decode([String].self, labelsKey)
        let weights: WeightProvider = { name, shape in
            guard let raw = file.tensor(name) else { throw fail("tensor '\(name)' is missing") }
            guard raw.shape == shape else { throw fail("tensor '\(name)' has shape \(raw.shape), expected \(shape)") }
            return try raw.floats()
        }
        switch architecture {
        case videoSwinArchitecture:
            let config = try decode(VideoSwinConfig.self, configKey)
            try validate(config, path: path)
            return TubeletModel(network: .videoSwin(try VideoSwin(config: config, weights: weights)),
                                labels: labels, preprocessing: preprocessing, path: path)
        case timesformerArchitecture:
            let config = try decode(TimeSformerConfig.self, configKey)
            try HFImport.validate(config, path: path)
            return TubeletModel(network: .timesformer(try TimeSformer(config: config, weights: weights)),
                                labels: labels, preprocessing: preprocessing, path: path)
        case vivitArchitecture:
            let config = try decode(ViViTConfig.self, configKey)
            try HFImport.validate(config, path: path)
            return TubeletModel(network: .vivit(try ViViT(config: config, weights: weights)),
                                labels: labels, preprocessing: preprocessing, path: path)
        case scenicViViTArchitecture:
            let config = try decode(ScenicViViTConfig.self, configKey)
            if let problem = config.problem { throw fail("invalid vivit_scenic config: \(problem)") }
            return TubeletModel(network: .scenicViViT(try ScenicViViT(config: config, weights: weights)),
                                labels: labels, preprocessing: preprocessing, path: path)
        case uniformerArchitecture:
            let config = try decode(UniFormerConfig.self, configKey)
            if let problem = config.problem { throw fail("invalid uniformer config: \(problem)") }
            return TubeletModel(network: .uniformer(try UniFormer(config: config, weights: weights)),
                                labels: labels, preprocessing: preprocessing, path: path)
        default:
            throw fail("unknown architecture '\(architecture)' (this build knows \(videoSwinArchitecture), \(timesformerArchitecture), \(vivitArchitecture), \(scenicViViTArchitecture), \(uniformerArchitecture))")
        }
    }

    /// Rejects configs the model code would trap on, with a message instead of a crash.
    static func validate(_ config: VideoSwinConfig, path: String) throws {
        func check(_ condition: Bool, _ message: String) throws {
            if !condition { throw LoadError(file: path, offset: nil, message: "invalid video_swin config: \(message)") }
        }
        try check(config.patchSize.count == 3 && config.patchSize.allSatisfy { $0 > 0 }, "patchSize must be 3 positive sizes")
        try check(config.windowSize.count == 3 && config.windowSize.allSatisfy { $0 > 0 }, "windowSize must be 3 positive sizes")
        try check(!config.depths.isEmpty && config.depths.count == config.numHeads.count, "depths and numHeads must have the same, non-zero length")
        try check(config.depths.allSatisfy { $0 > 0 }, "every depth must be positive")
        try check(config.embedDim > 0 && config.numClasses > 0 && config.inChannels > 0 && config.mlpRatio > 0, "sizes must be positive")
        for (stage, heads) in config.numHeads.enumerated() {
            try check(heads > 0 && config.channels(stage: stage) % heads == 0,
                      "stage \(stage) has \(config.channels(stage: stage)) channels, not divisible by \(heads) heads")
        }
    }
}

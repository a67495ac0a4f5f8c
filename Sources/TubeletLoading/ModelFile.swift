import Foundation
import TubeletKernels
import TubeletModels

/// A model ready to run, with what the model file says about it.
public struct TubeletModel: Sendable {
    /// The family's model (`VideoModel`); ask it for capabilities, not for its family.
    public let network: any VideoModel
    public let labels: [String]
    public let preprocessing: Preprocessing
    public let path: String

    public init(network: any VideoModel, labels: [String], preprocessing: Preprocessing, path: String) {
        self.network = network
        self.labels = labels
        self.preprocessing = preprocessing
        self.path = path
    }

    /// The family's `VideoModel.architecture`.
    public var architecture: String { type(of: network).architecture }
    public var numClasses: Int { network.numClasses }

    /// clip: [3, T, H, W] normalised → logits [numClasses]. Check `inputProblem` first: a clip the model
    /// cannot take is a precondition failure here.
    public func logits(_ clip: Tensor) -> Tensor { network.logits(clip) }

    /// Why `logits` cannot take a clip of this shape, or nil.
    public func inputProblem(_ shape: [Int]) -> String? {
        guard shape.count == 4, shape.allSatisfy({ $0 > 0 }) else { return "clip must be [3, T, H, W], got \(shape)" }
        return network.inputProblem(channels: shape[0], frames: shape[1], height: shape[2], width: shape[3])
    }

    /// GFLOP of one clip of this geometry.
    public func gflop(frames: Int, height: Int, width: Int) -> Double {
        network.flops(frames: frames, height: height, width: width) / 1e9
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
    public static let videoSwinArchitecture = VideoSwin.architecture

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
        guard let family = ModelRegistry.family(architecture: architecture) else {
            throw fail("unknown architecture '\(architecture)' (this build knows \(ModelRegistry.families.map(\.architecture).joined(separator: ", ")))")
        }
        guard let configJSON = file.metadata[configKey] else { throw fail("metadata '\(configKey)' is missing") }
        return TubeletModel(network: try family.build(configJSON, weights, path), labels: labels, preprocessing: preprocessing, path: path)
    }
}

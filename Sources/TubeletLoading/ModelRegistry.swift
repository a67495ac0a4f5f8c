import Foundation
import TubeletKernels
import TubeletModels

/// Every model family this build runs, with the importers that read its published checkpoints. The
/// model file format, `tubelet import`, the scheduler, the CLI and the daemon all go through this list;
/// adding a family is its model file (a `VideoModel`), its importer, and one line here.
public enum ModelRegistry {
    public static let families: [ModelFamily] = [
        ModelFamily(VideoSwin.self, importers: [SwinImport.importer]),
        ModelFamily(TimeSformer.self, importers: [HFImport.timesformerDirectory, HFImport.originalTimeSformer]),
        ModelFamily(ViViT.self, importers: [HFImport.vivitDirectory]),
        ModelFamily(ScenicViViT.self, importers: [ScenicImport.importer]),
        ModelFamily(UniFormer.self, importers: [UniFormerImport.importer]),
        ModelFamily(VideoMAE.self, importers: [VideoMAEImport.importer]),
    ]

    public static func family(architecture: String) -> ModelFamily? {
        families.first { $0.architecture == architecture }
    }

    /// The importers of every family, in the order they are asked: the first that recognises a source reads it.
    /// Key-pattern importers come before the Video Swin one, which takes any other torch checkpoint.
    public static var importers: [ModelImporter] {
        families.flatMap(\.importers).sorted { $0.priority > $1.priority }
    }

    /// Reads `source` with the first importer that recognises it.
    public static func importModel(_ source: ImportSource) throws -> ImportedModel {
        guard let importer = importers.first(where: { $0.recognises(source) }) else {
            throw LoadError(file: source.path, offset: nil, message: source.unrecognised)
        }
        return try importer.read(source)
    }
}

/// One family: how a model file of its architecture becomes a running model, and its importers.
public struct ModelFamily: Sendable {
    public let architecture: String
    public let importers: [ModelImporter]
    /// configJSON: the `tubelet.config` metadata; throws a message for configs the model cannot build.
    let build: @Sendable (_ configJSON: String, _ weights: WeightProvider, _ path: String) throws -> any VideoModel

    public init<Model: VideoModel>(_ model: Model.Type, importers: [ModelImporter]) {
        architecture = Model.architecture
        self.importers = importers
        build = { json, weights, path in
            let config: Model.Config
            do { config = try JSONDecoder().decode(Model.Config.self, from: Data(json.utf8)) } catch {
                throw LoadError(file: path, offset: nil, message: "metadata '\(ModelFile.configKey)' is not a valid \(Model.architecture) config: \(error)")
            }
            if let problem = Model.problem(in: config) {
                throw LoadError(file: path, offset: nil, message: "invalid \(Model.architecture) config: \(problem)")
            }
            return try Model(config: config, weights: weights)
        }
    }
}

/// What an importer is given: the path, what was read of it once for every importer to look at, and the
/// command line's options.
public struct ImportSource {
    public enum Contents {
        /// A Hugging Face directory: its `config.json`, parsed (`model_type` says the family).
        case huggingFace(config: [String: Any], modelType: String)
        /// A torch or safetensors checkpoint: its tensors (key patterns say the family) and what else it held.
        case checkpoint(tensors: [(name: String, tensor: RawTensor)], extras: SwinImport.CheckpointExtras?)
        /// A flax msgpack checkpoint (read by its importer).
        case flax
    }

    public let path: String
    public let contents: Contents
    public let options: ImportOptions
    public let progress: ((Int, Int) -> Void)?

    /// Reads `path` as much as importers need to recognise it: a directory's config.json, a checkpoint's tensors.
    public init(path: String, options: ImportOptions = ImportOptions(), progress: ((Int, Int) -> Void)? = nil) throws {
        self.path = path
        self.options = options
        self.progress = progress
        if HFImport.isHFDirectory(path) {
            let configPath = (path as NSString).appendingPathComponent("config.json")
            guard let data = FileManager.default.contents(atPath: configPath),
                  let config = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw LoadError(file: configPath, offset: nil, message: "not a JSON object")
            }
            contents = .huggingFace(config: config, modelType: config["model_type"] as? String ?? "?")
        } else if path.hasSuffix(".msgpack") {
            contents = .flax
        } else {
            let (tensors, extras) = try SwinImport.readTensors(path: path, progress: progress)
            contents = .checkpoint(tensors: tensors, extras: extras)
        }
    }

    public init(path: String, contents: Contents, options: ImportOptions = ImportOptions(), progress: ((Int, Int) -> Void)? = nil) {
        self.path = path
        self.contents = contents
        self.options = options
        self.progress = progress
    }

    public var modelType: String? { if case .huggingFace(_, let type) = contents { type } else { nil } }
    public var tensorNames: [String] { if case .checkpoint(let tensors, _) = contents { tensors.map(\.name) } else { [] } }

    /// The error when no importer recognises the source.
    var unrecognised: String {
        switch contents {
        case .huggingFace(_, let type):
            let known = ModelRegistry.importers.compactMap(\.huggingFaceModelType).joined(separator: ", ")
            return "config.json: model_type '\(type)' is not supported (this build imports \(known) directories)"
        case .flax: return "a flax checkpoint; say which ViViT it is with --vivit-model 2|3|4"
        case .checkpoint: return "no importer recognises this checkpoint's tensor names"
        }
    }
}

/// What the command line says beyond the path; each importer reads the options that are its own.
public struct ImportOptions: Sendable {
    /// `--config`: JSON with what the checkpoint does not say (scenic ViViT, UniFormer).
    public var configJSON: String?
    /// `--vivit-model`: which scenic ViViT a flax checkpoint is.
    public var vivitModel: Int?
    /// `--heads`: attention heads of an original TimeSformer checkpoint.
    public var heads: Int?

    public init(configJSON: String? = nil, vivitModel: Int? = nil, heads: Int? = nil) {
        self.configJSON = configJSON
        self.vivitModel = vivitModel
        self.heads = heads
    }
}

/// An importer: recognises the sources it reads (a Hugging Face `model_type`, a key pattern, a file kind)
/// and converts them. Importers are values, listed with their family in `ModelRegistry.families`.
public struct ModelImporter: Sendable {
    /// What it reads, for messages ("Hugging Face TimeSformer directory").
    public let name: String
    /// The Hugging Face `model_type` it reads, if it reads directories (for the error listing them).
    public let huggingFaceModelType: String?
    /// Asked in decreasing order; a catch-all importer has a low one.
    public let priority: Int
    public let recognises: @Sendable (ImportSource) -> Bool
    public let read: @Sendable (ImportSource) throws -> ImportedModel

    public init(name: String, huggingFaceModelType: String? = nil, priority: Int = 10,
                recognises: @escaping @Sendable (ImportSource) -> Bool, read: @escaping @Sendable (ImportSource) throws -> ImportedModel) {
        self.name = name
        self.huggingFaceModelType = huggingFaceModelType
        self.priority = priority
        self.recognises = recognises
        self.read = read
    }

    /// An importer of Hugging Face directories whose config.json says `model_type`.
    public static func huggingFace(_ modelType: String, name: String,
                                   read: @escaping @Sendable (_ path: String, _ config: [String: Any], _ progress: ((Int, Int) -> Void)?) throws -> ImportedModel) -> ModelImporter {
        ModelImporter(name: name, huggingFaceModelType: modelType, recognises: { $0.modelType == modelType }) { source in
            guard case .huggingFace(let config, _) = source.contents else { preconditionFailure() }
            if source.options.configJSON != nil || source.options.vivitModel != nil {
                throw LoadError(file: source.path, offset: nil, message: "--config and --vivit-model do not apply to a Hugging Face \(modelType) directory")
            }
            return try read(source.path, config, source.progress)
        }
    }
}

/// A converted checkpoint, ready for `ModelFile.write`.
public struct ImportedModel {
    /// The family's `VideoModel.architecture`.
    public let architecture: String
    public let configJSON: String
    public let weights: [(name: String, tensor: Tensor)]
    public var preprocessing: Preprocessing
    public var labels: [String]
    /// The source layout, recorded in the model file ("hf", "official", "torchvision", ...).
    public let layout: String
    /// One line for `tubelet import` to print.
    public let summary: String
    public let numClasses: Int

    public init<Model: VideoModel>(_ model: Model.Type, config: Model.Config, numClasses: Int, weights: [(name: String, tensor: Tensor)],
                                   preprocessing: Preprocessing, labels: [String], layout: String, summary: String) throws {
        architecture = Model.architecture
        configJSON = try ModelFile.encodeConfig(config)
        self.weights = weights
        self.preprocessing = preprocessing
        self.labels = labels.count == numClasses ? labels : []
        self.layout = layout
        self.summary = summary
        self.numClasses = numClasses
    }

    /// The config, when the model is of this family.
    public func config<Model: VideoModel>(of model: Model.Type) -> Model.Config? {
        guard architecture == Model.architecture else { return nil }
        return try? JSONDecoder().decode(Model.Config.self, from: Data(configJSON.utf8))
    }

    /// Writes the model file; `source` names where it came from.
    public func write(to path: String, source: String) throws {
        try ModelFile.write(architecture: architecture, configJSON: configJSON, weights: weights, preprocessing: preprocessing,
                            labels: labels, source: "\(layout):\(source)", to: path)
    }
}

import Foundation
import TubeletKernels
import TubeletModels

/// Imports TimeSformer and ViViT (Model 1) checkpoints:
/// - Hugging Face directories as published: `config.json` (`model_type` "timesformer" or
///   "vivit") with `model.safetensors` or `pytorch_model.bin` (a torch.save zip), and
///   `preprocessor_config.json` when present. ViViT weights are read in both key layouts
///   (save_pretrained's `vivit.encoder.layer.N.attention.attention.query…` and transformers 5's
///   in-memory `vivit.layers.N.attention.q_proj…`).
/// - The original facebookresearch/TimeSformer `.pyth`/`.pth` checkpoints (`{'model_state': …}`,
///   `model.blocks.N.attn.qkv…`), mapped onto transformers' names.
/// Model files store the weights under transformers' save_pretrained names.
public enum HFImport {
    public typealias Imported = ImportedModel

    /// Hugging Face `model_type` "timesformer" directories.
    public static let timesformerDirectory = ModelImporter.huggingFace("timesformer", name: "Hugging Face TimeSformer directory") { path, _, progress in
        try importDirectory(path: path, progress: progress)
    }
    /// Hugging Face `model_type` "vivit" directories (ViViT Model 1).
    public static let vivitDirectory = ModelImporter.huggingFace("vivit", name: "Hugging Face ViViT directory") { path, _, progress in
        try importDirectory(path: path, progress: progress)
    }
    /// facebookresearch/TimeSformer `.pyth`/`.pth` checkpoints, by their key pattern.
    public static let originalTimeSformer = ModelImporter(
        name: "original TimeSformer checkpoint", priority: 20,
        recognises: { looksLikeOriginalTimeSformer($0.tensorNames) },
        read: { source in
            guard case .checkpoint(let tensors, _) = source.contents else { preconditionFailure() }
            if source.options.configJSON != nil { throw LoadError(file: source.path, offset: nil, message: "--config goes with --vivit-model or a UniFormer checkpoint") }
            return try convertOriginalTimeSformer(tensors, path: source.path, heads: source.options.heads)
        })

    /// Whether `path` is a directory holding a Hugging Face `config.json`.
    public static func isHFDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
            && FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("config.json"))
    }

    /// A Hugging Face directory as published: `config.json` (parsed) and its weights file.
    public struct Directory {
        public let path: String
        public let configPath: String
        public let config: [String: Any]
        public let modelType: String
        /// `model.safetensors` or `pytorch_model.bin`.
        public let weightsPath: String
        public let tensors: [(name: String, tensor: RawTensor)]
        /// Typed reads of config.json with defaults for absent keys.
        var fields: HFConfigFields { HFConfigFields(config, path: configPath) }
        /// `id2label` in index order ([] when absent).
        public var labels: [String] { HFImport.hfLabels(config) }
    }

    /// Reads `config.json` and the weights of a Hugging Face directory (not sharded).
    public static func readDirectory(path: String, progress: ((Int, Int) -> Void)? = nil) throws -> Directory {
        let configPath = (path as NSString).appendingPathComponent("config.json")
        func fail(_ file: String, _ message: String) -> LoadError { LoadError(file: file, offset: nil, message: message) }
        guard let data = FileManager.default.contents(atPath: configPath),
              let config = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw fail(configPath, "not a JSON object")
        }
        var weightsPath: String?
        for name in ["model.safetensors", "pytorch_model.bin"] {
            let candidate = (path as NSString).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: candidate) { weightsPath = candidate; break }
        }
        guard let weightsPath else {
            let sharded = FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("model.safetensors.index.json"))
            throw fail(path, sharded ? "sharded checkpoints (model.safetensors.index.json) are not supported"
                                     : "no model.safetensors or pytorch_model.bin in the directory")
        }
        let (tensors, _) = try SwinImport.readTensors(path: weightsPath, progress: progress)
        return Directory(path: path, configPath: configPath, config: config, modelType: config["model_type"] as? String ?? "?",
                         weightsPath: weightsPath, tensors: tensors)
    }

    public static func importDirectory(path: String, progress: ((Int, Int) -> Void)? = nil) throws -> Imported {
        func fail(_ file: String, _ message: String) -> LoadError { LoadError(file: file, offset: nil, message: message) }
        let directory = try readDirectory(path: path, progress: progress)
        let (config, configPath, modelType, weightsPath, tensors) = (directory.config, directory.configPath, directory.modelType,
                                                                   directory.weightsPath, directory.tensors)
        guard modelType == "timesformer" || modelType == "vivit" else {
            throw fail(configPath, "model_type '\(modelType)' is not supported (this build imports timesformer and vivit directories)")
        }
        var byName: [String: RawTensor] = [:]
        var layout = "hf"
        for (name, tensor) in tensors {
            let mapped = modelType == "vivit" ? vivitV5ToV4(name) : name
            if mapped != name { layout = "hf-v5" }
            byName[mapped] = tensor
        }
        let fields = HFConfigFields(config, path: configPath)
        let labels = hfLabels(config)
        guard let classifier = byName["classifier.weight"], classifier.shape.count == 2 else {
            throw fail(weightsPath, "no classifier.weight: not a *ForVideoClassification checkpoint")
        }
        let numClasses = classifier.shape[0]
        if modelType == "timesformer" {
            let act = try fields.string("hidden_act", default: "gelu")
            guard act == "gelu" else { throw fail(configPath, "hidden_act '\(act)' is not supported for TimeSformer (expected gelu)") }
            let typeName = try fields.string("attention_type", default: "divided_space_time")
            guard let attentionType = TimeSformerConfig.AttentionType(rawValue: typeName) else {
                throw fail(configPath, "unknown attention_type '\(typeName)'")
            }
            let model = TimeSformerConfig(
                imageSize: try fields.square("image_size", default: 224), patchSize: try fields.square("patch_size", default: 16),
                numFrames: try fields.int("num_frames", default: 8), inChannels: try fields.int("num_channels", default: 3),
                hiddenSize: try fields.int("hidden_size", default: 768), numLayers: try fields.int("num_hidden_layers", default: 12),
                numHeads: try fields.int("num_attention_heads", default: 12), intermediateSize: try fields.int("intermediate_size", default: 3072),
                numClasses: numClasses, layerNormEps: Float(try fields.double("layer_norm_eps", default: 1e-6)),
                qkvBias: try fields.bool("qkv_bias", default: true), attentionType: attentionType, layerFramesFromConfig: true)
            try validate(model, path: configPath)
            let weights = try collect(model.parameterShapes(), byName, path: weightsPath)
            let preprocessing = try readPreprocessing(directory: path, reference: TimeSformer.referencePreprocessing(for: model), offset: false)
            return try ImportedModel(TimeSformer.self, config: model, numClasses: numClasses, weights: weights, preprocessing: preprocessing,
                                     labels: labels, layout: layout, summary: summary(model, weights))
        }
        let act = try fields.string("hidden_act", default: "gelu_fast")
        let gelu: GELUVariant
        switch act {
        case "gelu": gelu = .exact
        case "gelu_fast", "gelu_new", "gelu_pytorch_tanh": gelu = .tanh
        default: throw fail(configPath, "hidden_act '\(act)' is not supported for ViViT (expected gelu_fast or gelu)")
        }
        let tubelet = try fields.ints("tubelet_size", default: [2, 16, 16])
        let model = ViViTConfig(
            imageSize: try fields.square("image_size", default: 224), numFrames: try fields.int("num_frames", default: 32),
            tubeletSize: tubelet, inChannels: try fields.int("num_channels", default: 3),
            hiddenSize: try fields.int("hidden_size", default: 768), numLayers: try fields.int("num_hidden_layers", default: 12),
            numHeads: try fields.int("num_attention_heads", default: 12), intermediateSize: try fields.int("intermediate_size", default: 3072),
            numClasses: numClasses, layerNormEps: Float(try fields.double("layer_norm_eps", default: 1e-6)),
            qkvBias: try fields.bool("qkv_bias", default: true), gelu: gelu)
        try validate(model, path: configPath)
        let weights = try collect(model.parameterShapes(), byName, path: weightsPath)
        let preprocessing = try readPreprocessing(directory: path, reference: ViViT.referencePreprocessing(for: model), offset: true)
        return try ImportedModel(ViViT.self, config: model, numClasses: numClasses, weights: weights, preprocessing: preprocessing,
                                 labels: labels, layout: layout, summary: summary(model, weights))
    }

    /// transformers 5 in-memory ViViT name → save_pretrained (v4) name; other names unchanged.
    public static func vivitV5ToV4(_ name: String) -> String {
        guard name.hasPrefix("vivit.layers.") else { return name }
        var rest = "vivit.encoder.layer." + name.dropFirst("vivit.layers.".count)
        for (old, new) in [(".attention.q_proj.", ".attention.attention.query."), (".attention.k_proj.", ".attention.attention.key."),
                           (".attention.v_proj.", ".attention.attention.value."), (".attention.o_proj.", ".attention.output.dense."),
                           (".mlp.fc1.", ".intermediate.dense."), (".mlp.fc2.", ".output.dense.")] {
            rest = rest.replacingOccurrences(of: old, with: new)
        }
        return rest
    }

    // MARK: original facebookresearch TimeSformer

    /// Whether the tensor names are the original TimeSformer's (`[model.]blocks.0.attn.qkv.weight`, `pos_embed`).
    public static func looksLikeOriginalTimeSformer(_ names: [String]) -> Bool {
        let stripped = Set(names.map(stripOriginalPrefix))
        return stripped.contains("blocks.0.attn.qkv.weight") && stripped.contains("pos_embed")
    }

    static func stripOriginalPrefix(_ name: String) -> String {
        var name = name
        for prefix in ["module.", "model."] where name.hasPrefix(prefix) { name.removeFirst(prefix.count) }
        return name
    }

    /// Original key (without `model.`) → transformers key, or nil for keys we do not use.
    public static func originalTimeSformerToHF(_ name: String) -> String? {
        let fixed = ["cls_token": "timesformer.embeddings.cls_token", "pos_embed": "timesformer.embeddings.position_embeddings",
                     "time_embed": "timesformer.embeddings.time_embeddings",
                     "patch_embed.proj.weight": "timesformer.embeddings.patch_embeddings.projection.weight",
                     "patch_embed.proj.bias": "timesformer.embeddings.patch_embeddings.projection.bias",
                     "norm.weight": "timesformer.layernorm.weight", "norm.bias": "timesformer.layernorm.bias",
                     "head.weight": "classifier.weight", "head.bias": "classifier.bias"]
        if let mapped = fixed[name] { return mapped }
        let parts = name.split(separator: ".").map(String.init)
        guard parts.count >= 4, parts[0] == "blocks", let layer = Int(parts[1]) else { return nil }
        let module = parts[2..<(parts.count - 1)].joined(separator: "."), leaf = parts.last!
        let modules = ["norm1": "layernorm_before", "attn.qkv": "attention.attention.qkv", "attn.proj": "attention.output.dense",
                       "temporal_norm1": "temporal_layernorm", "temporal_attn.qkv": "temporal_attention.attention.qkv",
                       "temporal_attn.proj": "temporal_attention.output.dense", "temporal_fc": "temporal_dense",
                       "norm2": "layernorm_after", "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"]
        guard let mapped = modules[module] else { return nil }
        return "timesformer.encoder.layer.\(layer).\(mapped).\(leaf)"
    }

    /// An original TimeSformer checkpoint. The architecture comes from the shapes; the head count
    /// is not in the tensors: `heads`, else hidden/64 (every published TimeSformer has 64-wide heads).
    /// Its layers group tokens by the clip's frame count, as the original code does.
    public static func importOriginalTimeSformer(path: String, heads: Int? = nil, progress: ((Int, Int) -> Void)? = nil) throws -> Imported {
        try convertOriginalTimeSformer(try SwinImport.readTensors(path: path, progress: progress).tensors, path: path, heads: heads)
    }

    /// `importOriginalTimeSformer` on tensors already read (by `SwinImport.readTensors`).
    public static func convertOriginalTimeSformer(_ tensors: [(name: String, tensor: RawTensor)], path: String, heads: Int? = nil) throws -> Imported {
        func fail(_ message: String) -> LoadError { LoadError(file: path, offset: nil, message: message) }
        var byName: [String: RawTensor] = [:]
        for (name, tensor) in tensors {
            if let mapped = originalTimeSformerToHF(stripOriginalPrefix(name)) { byName[mapped] = tensor }
        }
        let e = "timesformer.embeddings."
        guard let conv = byName[e + "patch_embeddings.projection.weight"], conv.shape.count == 4, conv.shape[2] == conv.shape[3] else {
            throw fail("not a TimeSformer checkpoint: no square Conv2d patch_embed.proj.weight")
        }
        guard let pos = byName[e + "position_embeddings"], pos.shape.count == 3 else { throw fail("pos_embed is missing or not [1, N+1, D]") }
        let side = Int(Double(pos.shape[1] - 1).squareRoot().rounded())
        guard side * side == pos.shape[1] - 1 else { throw fail("pos_embed has \(pos.shape[1] - 1) patches, not a square grid") }
        let hidden = conv.shape[0]
        var layers = 0
        while byName["timesformer.encoder.layer.\(layers).layernorm_before.weight"] != nil { layers += 1 }
        guard layers > 0, let fc1 = byName["timesformer.encoder.layer.0.intermediate.dense.weight"], fc1.shape.count == 2,
              let head = byName["classifier.weight"], head.shape.count == 2 else {
            throw fail("no blocks.0.mlp.fc1 or head: not a TimeSformer classification checkpoint")
        }
        let attentionType: TimeSformerConfig.AttentionType =
            byName["timesformer.encoder.layer.0.temporal_dense.weight"] != nil ? .dividedSpaceTime
            : byName[e + "time_embeddings"] != nil ? .jointSpaceTime : .spaceOnly
        let numHeads = heads ?? max(1, hidden / 64)
        let model = TimeSformerConfig(
            imageSize: side * conv.shape[2], patchSize: conv.shape[2], numFrames: byName[e + "time_embeddings"]?.shape[1] ?? 8,
            inChannels: conv.shape[1], hiddenSize: hidden, numLayers: layers, numHeads: numHeads, intermediateSize: fc1.shape[0],
            numClasses: head.shape[0], layerNormEps: 1e-6,
            qkvBias: byName["timesformer.encoder.layer.0.attention.attention.qkv.bias"] != nil,
            attentionType: attentionType, layerFramesFromConfig: false)
        try validate(model, path: path)
        let weights = try collect(model.parameterShapes(), byName, path: path)
        // The original Kinetics recipe: 8 frames every 32nd, 0-1 pixels, mean 0.45 std 0.225, 224 crop.
        let preprocessing = Preprocessing(frames: model.numFrames, frameStride: 32, resizeShortSide: model.imageSize, cropSize: model.imageSize,
                                          pixelScale: 1.0 / 255, mean: [0.45, 0.45, 0.45], std: [0.225, 0.225, 0.225])
        return try ImportedModel(TimeSformer.self, config: model, numClasses: model.numClasses, weights: weights, preprocessing: preprocessing,
                                 labels: [], layout: "original", summary: summary(model, weights))
    }

    // MARK: helpers

    static func collect(_ shapes: [(name: String, shape: [Int])], _ byName: [String: RawTensor], path: String) throws -> [(name: String, tensor: Tensor)] {
        try shapes.map { name, shape in
            guard let raw = byName[name] else { throw LoadError(file: path, offset: nil, message: "tensor '\(name)' is missing") }
            guard raw.shape == shape else { throw LoadError(file: path, offset: nil, message: "tensor '\(name)' has shape \(raw.shape), expected \(shape)") }
            return (name, try raw.floats())
        }
    }

    static func validate(_ c: TimeSformerConfig, path: String) throws {
        if let problem = TimeSformer.problem(in: c) { throw LoadError(file: path, offset: nil, message: "invalid timesformer config: \(problem)") }
    }

    static func validate(_ c: ViViTConfig, path: String) throws {
        if let problem = ViViT.problem(in: c) { throw LoadError(file: path, offset: nil, message: "invalid vivit config: \(problem)") }
    }

    static func summary(_ c: TimeSformerConfig, _ weights: [(name: String, tensor: Tensor)]) -> String {
        "TimeSformer (\(c.attentionType.rawValue)): hidden \(c.hiddenSize), \(c.numLayers) layers, \(c.numHeads) heads, \(c.numFrames)x\(c.imageSize)² patch \(c.patchSize), \(c.numClasses) classes, \(weights.reduce(0) { $0 + $1.tensor.count }) parameters"
    }

    static func summary(_ c: ViViTConfig, _ weights: [(name: String, tensor: Tensor)]) -> String {
        "ViViT Model 1: hidden \(c.hiddenSize), \(c.numLayers) layers, \(c.numHeads) heads, \(c.numFrames)x\(c.imageSize)² tubelet \(c.tubeletSize), \(c.numClasses) classes, \(weights.reduce(0) { $0 + $1.tensor.count }) parameters"
    }

    /// `id2label` names in index order, unless they are transformers' placeholders (LABEL_n).
    static func hfLabels(_ config: [String: Any]) -> [String] {
        guard let map = config["id2label"] as? [String: Any] else { return [] }
        var names: [(Int, String)] = []
        for (key, value) in map {
            guard let index = Int(key), let name = value as? String else { return [] }
            names.append((index, name))
        }
        names.sort { $0.0 < $1.0 }
        guard names.enumerated().allSatisfy({ $0.offset == $0.element.0 }) else { return [] }
        if names.allSatisfy({ $0.1 == "LABEL_\($0.0)" }) { return [] }
        return names.map(\.1)
    }

    /// The recipe from `preprocessor_config.json` (or `video_preprocessor_config.json`) when present:
    /// image_mean, image_std, do_normalize, do_rescale, rescale_factor, offset (ViViT: x·r - 1),
    /// size (shortest_edge or height), crop_size. Without one, the family's `referencePreprocessing`
    /// (transformers' processor defaults at the model's image_size); `offset` says whether that reference
    /// subtracts 1 after rescaling (ViViT), which its mean then includes.
    static func readPreprocessing(directory: String, reference: Preprocessing, offset referenceOffset: Bool) throws -> Preprocessing {
        var mean = reference.mean.map { Double($0) - (referenceOffset ? 1 : 0) }
        var std = reference.std.map(Double.init)
        var rescale = Double(reference.pixelScale)
        var offset = referenceOffset
        var shortSide = reference.resizeShortSide, crop = reference.cropSize
        for name in ["preprocessor_config.json", "video_preprocessor_config.json"] {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw LoadError(file: path, offset: nil, message: "not a JSON object")
            }
            let fields = HFConfigFields(object, path: path)
            func triple(_ key: String, _ current: [Double]) throws -> [Double] {
                if let scalar = object[key] as? Double { return [scalar, scalar, scalar] }
                let values = try fields.doubles(key, default: current)
                guard values.count == 3 else { throw LoadError(file: path, offset: nil, message: "\(key) must have 3 values") }
                return values
            }
            mean = try triple("image_mean", mean)
            std = try triple("image_std", std)
            if try !fields.bool("do_normalize", default: true) { mean = [0, 0, 0]; std = [1, 1, 1] }
            rescale = try fields.bool("do_rescale", default: true) ? try fields.double("rescale_factor", default: rescale) : 1
            offset = try fields.bool("offset", default: offset)
            if let size = object["size"] as? [String: Any] {
                shortSide = (size["shortest_edge"] as? Int) ?? (size["height"] as? Int) ?? shortSide
            } else if let size = object["size"] as? Int { shortSide = size }
            if let size = object["crop_size"] as? [String: Any] { crop = (size["height"] as? Int) ?? crop }
            else if let size = object["crop_size"] as? Int { crop = size }
            break
        }
        // (x·r - offset - mean) / std = (x·r - (mean + offset)) / std
        return Preprocessing(frames: reference.frames, frameStride: reference.frameStride, resizeShortSide: shortSide, cropSize: crop, pixelScale: Float(rescale),
                             mean: mean.map { Float($0 + (offset ? 1 : 0)) }, std: std.map(Float.init))
    }
}

/// Typed reads from a transformers JSON config, with defaults for absent keys.
struct HFConfigFields {
    let object: [String: Any]
    let path: String

    init(_ object: [String: Any], path: String) {
        self.object = object
        self.path = path
    }

    func fail(_ key: String, _ expected: String) -> LoadError {
        LoadError(file: path, offset: nil, message: "'\(key)' must be \(expected), got \(object[key].map { "\($0)" } ?? "nothing")")
    }

    func int(_ key: String, default value: Int) throws -> Int {
        guard let raw = object[key] else { return value }
        guard let number = raw as? NSNumber, number.doubleValue == Double(number.intValue) else {
            throw fail(key, "an integer")
        }
        return number.intValue
    }

    func double(_ key: String, default value: Double) throws -> Double {
        guard let raw = object[key] else { return value }
        guard let number = raw as? NSNumber else { throw fail(key, "a number") }
        return number.doubleValue
    }

    func bool(_ key: String, default value: Bool) throws -> Bool {
        guard let raw = object[key] else { return value }
        guard let flag = raw as? Bool else { throw fail(key, "true or false") }
        return flag
    }

    func string(_ key: String, default value: String) throws -> String {
        guard let raw = object[key] else { return value }
        guard let text = raw as? String else { throw fail(key, "a string") }
        return text
    }

    func ints(_ key: String, default value: [Int]) throws -> [Int] {
        guard let raw = object[key] else { return value }
        guard let list = raw as? [NSNumber] else { throw fail(key, "a list of integers") }
        return list.map(\.intValue)
    }

    func doubles(_ key: String, default value: [Double]) throws -> [Double] {
        guard let raw = object[key] else { return value }
        guard let list = raw as? [NSNumber] else { throw fail(key, "a list of numbers") }
        return list.map(\.doubleValue)
    }

    /// An int, or a list [h, w] with h = w.
    func square(_ key: String, default value: Int) throws -> Int {
        if let list = object[key] as? [NSNumber] {
            guard list.count == 2, list[0].intValue == list[1].intValue else { throw fail(key, "square") }
            return list[0].intValue
        }
        return try int(key, default: value)
    }
}

import Foundation
import TubeletKernels
import TubeletModels

/// Imports the official UniFormer video checkpoints (Sense-X/UniFormer `video_classification`, a
/// slowfast code base): `{'model_state': …}` as slowfast's `save_checkpoint` writes it (with epoch,
/// optimizer state and cfg beside it, ignored), or a plain state dict; `.pth` read natively.
///
/// From the shapes: stage channels from `patch_embed{1-4}.proj.weight`, depths from the
/// `blocks{1-4}.N` keys, the MLP ratio from `mlp.fc1`, `std` patch embeddings from a temporal kernel
/// of 3 in `patch_embed2`, split attention from `t_attn` keys, qkv bias from `attn.qkv.bias`, classes
/// from `head.weight`. The head width is not in the tensors: 64 (every published UniFormer) unless
/// `Options.headDim` says otherwise. Weights keep the official names (`UniFormerConfig.parameterShapes`).
public enum UniFormerImport {
    public static let architecture = UniFormer.architecture

    /// What the checkpoint does not say. JSON keys of `tubelet import --config`: headDim.
    public struct Options: Codable, Sendable {
        public var headDim: Int?
        public init(headDim: Int? = nil) { self.headDim = headDim }

        /// Options from `--config` JSON; an unknown key is an error (a misspelt one would be ignored).
        public init(json: String) throws {
            func fail(_ message: String) -> LoadError { LoadError(file: "--config", message: message) }
            guard let object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] else {
                throw fail("not a JSON object: \(json)")
            }
            for key in object.keys where key != "headDim" { throw fail("unknown key '\(key)' (a UniFormer import takes headDim)") }
            if let value = object["headDim"] {
                guard let number = value as? Int, number > 0 else { throw fail("headDim must be a positive integer, got \(value)") }
                headDim = number
            }
        }
    }

    /// Whether the tensor names are a UniFormer's (`patch_embed1.proj.weight` and `blocks1.…`).
    /// Official UniFormer checkpoints, by their key pattern (`patch_embed1..4`).
    public static let importer = ModelImporter(
        name: "official UniFormer checkpoint", priority: 20,
        recognises: { looksLikeUniFormer($0.tensorNames) },
        read: { source in
            guard case .checkpoint(let tensors, _) = source.contents else { preconditionFailure() }
            let options = try source.options.configJSON.map(Options.init(json:)) ?? Options()
            return try convert(tensors, path: source.path, options: options)
        })

    public static func looksLikeUniFormer(_ names: [String]) -> Bool {
        let stripped = Set(names.map(stripPrefix))
        return stripped.contains("patch_embed1.proj.weight") && stripped.contains("patch_embed4.proj.weight")
    }

    static func stripPrefix(_ name: String) -> String {
        name.hasPrefix("module.") ? String(name.dropFirst("module.".count)) : name
    }

    public static func importCheckpoint(path: String, options: Options = Options(), progress: ((Int, Int) -> Void)? = nil) throws -> HFImport.Imported {
        try convert(try SwinImport.readTensors(path: path, progress: progress).tensors, path: path, options: options)
    }

    /// `importCheckpoint` on tensors already read (by `SwinImport.readTensors`).
    public static func convert(_ tensors: [(name: String, tensor: RawTensor)], path: String, options: Options = Options()) throws -> HFImport.Imported {
        func fail(_ message: String) -> LoadError { LoadError(file: path, message: message) }
        var byName: [String: RawTensor] = [:]
        for (name, tensor) in tensors { byName[stripPrefix(name)] = tensor }
        if byName.keys.contains(where: { $0.hasPrefix("pre_logits.") }) {
            throw fail("the checkpoint has pre_logits (UNIFORMER.REPRESENTATION_SIZE): not supported")
        }
        var dims: [Int] = []
        var inChannels = 0, patchFrames = 1
        for stage in 0..<4 {
            let name = "patch_embed\(stage + 1).proj.weight"
            guard let weight = byName[name] else { throw fail("'\(name)' is missing: not a UniFormer checkpoint") }
            if stage == 0 {
                guard weight.shape.count == 5, weight.shape[2...] == [3, 4, 4] else {
                    throw fail("'\(name)' has shape \(weight.shape), expected [C, 3, 3, 4, 4] (a video UniFormer; image UniFormer checkpoints have a 2-D [C, 3, 4, 4] stem)")
                }
                inChannels = weight.shape[1]
            } else {
                guard weight.shape.count == 5, weight.shape[1] == dims[stage - 1], [1, 3].contains(weight.shape[2]), weight.shape[3...] == [2, 2] else {
                    throw fail("'\(name)' has shape \(weight.shape), expected [C, \(dims[stage - 1]), 1 or 3, 2, 2]")
                }
                if stage == 1 { patchFrames = weight.shape[2] }
            }
            dims.append(weight.shape[0])
        }
        var depths: [Int] = []
        for stage in 0..<4 {
            var blocks = 0
            while byName["blocks\(stage + 1).\(blocks).pos_embed.weight"] != nil { blocks += 1 }
            depths.append(blocks)
        }
        guard let head = byName["head.weight"], head.shape.count == 2, head.shape[1] == dims[3] else {
            throw fail("no head.weight [classes, \(dims[3])]: not a classification checkpoint")
        }
        var mlpRatio = 4
        if let stage = depths.firstIndex(where: { $0 > 0 }), let fc1 = byName["blocks\(stage + 1).0.mlp.fc1.weight"] {
            guard fc1.shape[0] % dims[stage] == 0 else {
                throw fail("blocks\(stage + 1).0.mlp.fc1.weight has shape \(fc1.shape): hidden width not a multiple of \(dims[stage])")
            }
            mlpRatio = fc1.shape[0] / dims[stage]
        }
        let attentionStage = depths[2] > 0 ? 3 : 4
        let config = UniFormerConfig(
            inChannels: inChannels, embedDims: dims, depths: depths, headDim: options.headDim ?? 64, mlpRatio: mlpRatio,
            qkvBias: depths[2] + depths[3] == 0 || byName["blocks\(attentionStage).0.attn.qkv.bias"] != nil,
            split: byName["blocks\(attentionStage).0.t_attn.qkv.weight"] != nil, stdPatchEmbed: patchFrames == 3,
            numClasses: head.shape[0])
        if let problem = config.problem { throw fail("invalid uniformer config: \(problem)") }
        let weights = try HFImport.collect(config.parameterShapes(), byName, path: path)
        // The Kinetics test recipe of the 16x4 models (exp/*/test.sh: TEST_CROP_SIZE 224, one spatial crop,
        // which slowfast takes from the short side resized to TRAIN_JITTER_SCALES[0] = 256): 16 frames every
        // 4th, 0-1 pixels, mean 0.45, std 0.225 (slowfast's defaults). Any size runs: no position embeddings.
        let preprocessing = UniFormer.referencePreprocessing(for: config)
        let layout = tensors.contains { $0.name.hasPrefix("module.") } ? "official-ddp" : "official"
        return try ImportedModel(UniFormer.self, config: config, numClasses: config.numClasses, weights: weights, preprocessing: preprocessing,
                                 labels: [], layout: layout, summary: summary(config, weights))
    }

    static func summary(_ c: UniFormerConfig, _ weights: [(name: String, tensor: Tensor)]) -> String {
        let blocks = c.split ? "SplitSABlocks" : "SABlocks"
        return "UniFormer: dims \(c.embedDims), depths \(c.depths), head dim \(c.headDim), \(blocks)\(c.stdPatchEmbed ? ", 3x2x2 patch embeddings" : ""), \(c.numClasses) classes, \(weights.reduce(0) { $0 + $1.tensor.count }) parameters"
    }
}

import Foundation
import TubeletKernels
import TubeletModels

/// Imports Hugging Face `VideoMAEForVideoClassification` directories (`config.json` with `model_type`
/// "videomae", `model.safetensors` or `pytorch_model.bin`, `preprocessor_config.json` when present).
/// Weights are read in both layouts: the Hub's (`attention.attention.q_bias` / `v_bias`, as transformers 4
/// saves them) and transformers 5's (`attention.attention.query.bias` / `value.bias`); the model file
/// stores the Hub's names.
public enum VideoMAEImport {
    public static let importer = ModelImporter.huggingFace("videomae", name: "Hugging Face VideoMAE directory") { path, _, progress in
        try importDirectory(path: path, progress: progress)
    }

    public static func importDirectory(path: String, progress: ((Int, Int) -> Void)? = nil) throws -> ImportedModel {
        let directory = try HFImport.readDirectory(path: path, progress: progress)
        func fail(_ file: String, _ message: String) -> LoadError { LoadError(file: file, offset: nil, message: message) }
        var byName: [String: RawTensor] = [:]
        var layout = "hf"
        for (name, tensor) in directory.tensors {
            let hubName = name.replacingOccurrences(of: "attention.attention.query.bias", with: "attention.attention.q_bias")
                .replacingOccurrences(of: "attention.attention.value.bias", with: "attention.attention.v_bias")
            if hubName != name { layout = "hf-v5" }
            byName[hubName] = tensor
        }
        guard let classifier = byName["classifier.weight"], classifier.shape.count == 2 else {
            throw fail(directory.weightsPath, "no classifier.weight: not a VideoMAEForVideoClassification checkpoint")
        }
        var config: VideoMAEConfig
        do {
            config = try JSONDecoder().decode(VideoMAEConfig.self, from: try JSONSerialization.data(withJSONObject: directory.config))
        } catch {
            throw fail(directory.configPath, "not a VideoMAE config: \(error)")
        }
        config.numClasses = classifier.shape[0]
        if let problem = VideoMAE.problem(in: config) { throw fail(directory.configPath, "invalid videomae config: \(problem)") }
        let weights = try HFImport.collect(config.parameterShapes(), byName, path: directory.weightsPath)
        let preprocessing = try HFImport.readPreprocessing(directory: path, reference: VideoMAE.referencePreprocessing(for: config), offset: false)
        let parameters = weights.reduce(0) { $0 + $1.tensor.count }
        let summary = "VideoMAE: hidden \(config.hiddenSize), \(config.numHiddenLayers) layers, \(config.numAttentionHeads) heads, "
            + "tubelet \(config.tubelet), \(config.numFrames) frames of \(config.imageSize)², "
            + "\(config.useMeanPooling ? "mean pooling" : "first token"), \(config.numClasses) classes, \(parameters) parameters"
        return try ImportedModel(VideoMAE.self, config: config, numClasses: config.numClasses, weights: weights,
                                 preprocessing: preprocessing, labels: directory.labels, layout: layout, summary: summary)
    }
}

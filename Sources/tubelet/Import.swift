import ArgumentParser
import Foundation
import TubeletLoading

/// `tubelet import SRC -o MODEL.safetensors [--labels FILE]`
struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a published checkpoint (.pth or .safetensors) into a Tubelet model file.")

    @Argument(help: """
        torchvision swin3d_* state dict, official Video-Swin-Transformer checkpoint, original \
        facebookresearch TimeSformer .pyth/.pth, a Hugging Face TimeSformer/ViViT directory \
        (config.json + model.safetensors or pytorch_model.bin), a scenic ViViT flax checkpoint \
        (.msgpack) with --vivit-model, or an official UniFormer video checkpoint (.pth, plain or \
        {'model_state': ...}).
        """) var source: String
    @Option(name: .shortAndLong, help: "Model file to write (.safetensors).") var output: String
    @Option(help: "Class names, one per line (e.g. Config/kinetics400_labels.txt).") var labels: String?
    @Option(help: "Frames per clip for the preprocessing recipe.") var frames: Int?
    @Option(help: "Frame stride for the preprocessing recipe.") var frameStride: Int?
    @Option(help: "Attention heads of an original TimeSformer checkpoint (not in its tensors; default hidden/64).") var heads: Int?
    @Option(help: "scenic ViViT checkpoint (flax msgpack): 2 (factorised encoder), 3 (factorised self-attention) or 4 (factorised dot-product).") var vivitModel: Int?
    @Option(help: "JSON with what the checkpoint does not say. scenic ViViT: {\"numFrames\": 32 (Models 3, 4; default 32), \"imageSize\": N (default: square grid from the position embedding), \"layerNormEps\": 1e-6}. UniFormer: {\"headDim\": 64 (default)}.") var config: String?

    func run() throws {
        if let vivitModel {
            var options = ScenicImport.Options()
            if let config {
                do { options = try JSONDecoder().decode(ScenicImport.Options.self, from: Data(config.utf8)) } catch {
                    fail("--config: not valid JSON options (numFrames, imageSize, layerNormEps): \(error)")
                }
            }
            runHF { _ in try ScenicImport.importCheckpoint(path: source, model: vivitModel, options: options) }
            return
        }
        if source.hasSuffix(".msgpack") { fail("\(source): a flax checkpoint; say which ViViT it is with --vivit-model 2|3|4") }
        if HFImport.isHFDirectory(source) {
            if config != nil { fail("--config goes with --vivit-model or a UniFormer checkpoint") }
            runHF { try HFImport.importDirectory(path: source, progress: $0) }
            return
        }
        let progress = TerminalProgress(title: "reading \(URL(fileURLWithPath: source).lastPathComponent)")
        let imported: SwinImport.Imported
        do {
            let (tensors, extras) = try SwinImport.readTensors(path: source, progress: progress.update)
            if UniFormerImport.looksLikeUniFormer(tensors.map(\.name)) {
                progress.finish()
                let options = try config.map(UniFormerImport.Options.init(json:)) ?? UniFormerImport.Options()
                runHF { _ in try UniFormerImport.convert(tensors, path: source, options: options) }
                return
            }
            if config != nil { fail("--config goes with --vivit-model or a UniFormer checkpoint") }
            if HFImport.looksLikeOriginalTimeSformer(tensors.map(\.name)) {
                progress.finish()
                runHF { _ in try HFImport.convertOriginalTimeSformer(tensors, path: source, heads: heads) }
                return
            }
            imported = try SwinImport.convert(tensors, extras: extras, path: source)
        } catch {
            progress.finish()
            fail("\(error)")
        }
        progress.finish()
        let labelNames = labels.map { readLabels($0, classes: imported.config.numClasses) } ?? imported.labels
        var preprocessing = imported.defaultPreprocessing
        if let frames { preprocessing.frames = frames }
        if let frameStride { preprocessing.frameStride = frameStride }
        do {
            try ModelFile.write(videoSwin: imported.config, weights: imported.weights, preprocessing: preprocessing,
                                labels: labelNames, source: "\(imported.layout.rawValue):\(URL(fileURLWithPath: source).lastPathComponent)",
                                to: output)
        } catch {
            fail("\(error)")
        }
        let c = imported.config
        let parameters = imported.weights.reduce(0) { $0 + $1.tensor.count }
        print("imported \(imported.layout.rawValue) \(c.streaming ? "streaming-native " : "")Video Swin: embed \(c.embedDim), depths \(c.depths), heads \(c.numHeads), window \(c.windowSize), patch \(c.patchSize), \(c.numClasses) classes, \(parameters) parameters -> \(output)")
    }
}

extension Import {
    /// TimeSformer / ViViT: import, apply --labels/--frames/--frame-stride, write the model file.
    func runHF(_ read: (((Int, Int) -> Void)?) throws -> HFImport.Imported) {
        let progress = TerminalProgress(title: "reading \(URL(fileURLWithPath: source).lastPathComponent)")
        let imported: HFImport.Imported
        do { imported = try read(progress.update) } catch {
            progress.finish()
            fail("\(error)")
        }
        progress.finish()
        let labelNames = labels.map { readLabels($0, classes: imported.numClasses) } ?? imported.labels
        var preprocessing = imported.preprocessing
        if let frames { preprocessing.frames = frames }
        if let frameStride { preprocessing.frameStride = frameStride }
        do {
            try ModelFile.write(architecture: imported.architecture, configJSON: imported.configJSON, weights: imported.weights,
                                preprocessing: preprocessing, labels: labelNames,
                                source: "\(imported.layout):\(URL(fileURLWithPath: source).lastPathComponent)", to: output)
        } catch {
            fail("\(error)")
        }
        print("imported \(imported.layout) \(imported.summary) -> \(output)")
    }
}

/// Class names from a file, one per line (trailing blank lines dropped); exactly `classes` of them.
func readLabels(_ path: String, classes: Int) -> [String] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { fail("\(path): cannot read the labels file") }
    var names = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
    while names.last == "" { names.removeLast() }
    guard names.count == classes else { fail("\(path): \(names.count) labels, but the checkpoint has \(classes) classes") }
    return names
}

/// A one-line progress bar on a terminal (stderr); silent when stderr is not a terminal.
final class TerminalProgress: @unchecked Sendable {
    let title: String
    let enabled = isatty(STDERR_FILENO) != 0
    var lastPercent = -1
    init(title: String) { self.title = title }

    func update(_ done: Int, _ total: Int) {
        guard enabled, total > 0 else { return }
        let percent = done * 100 / total
        if percent == lastPercent { return }
        lastPercent = percent
        let width = 30, filled = width * percent / 100
        let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
        FileHandle.standardError.write(Data("\r\(title) [\(bar)] \(percent)%".utf8))
    }

    func finish() {
        if enabled && lastPercent >= 0 { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

import ArgumentParser
import Foundation
import TubeletLoading

/// `tubelet import SRC -o MODEL.safetensors [--labels FILE]`
struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a published checkpoint (.pth or .safetensors) into a Tubelet model file.")

    @Argument(help: ArgumentHelp("What to import; the importer that recognises it reads it: \(ModelRegistry.importers.map(\.name).joined(separator: ", ")).",
                               valueName: "source")) var source: String
    @Option(name: .shortAndLong, help: "Model file to write (.safetensors).") var output: String
    @Option(help: "Class names, one per line (e.g. Config/kinetics400_labels.txt).") var labels: String?
    @Option(help: "Frames per clip for the preprocessing recipe.") var frames: Int?
    @Option(help: "Frame stride for the preprocessing recipe.") var frameStride: Int?
    @Option(help: "Attention heads of an original TimeSformer checkpoint (not in its tensors; default hidden/64).") var heads: Int?
    @Option(help: "scenic ViViT checkpoint (flax msgpack): 2 (factorised encoder), 3 (factorised self-attention) or 4 (factorised dot-product).") var vivitModel: Int?
    @Option(help: "JSON with what the checkpoint does not say. scenic ViViT: {\"numFrames\": 32 (Models 3, 4; default 32), \"imageSize\": N (default: square grid from the position embedding), \"layerNormEps\": 1e-6}. UniFormer: {\"headDim\": 64 (default)}.") var config: String?

    func run() throws {
        let progress = TerminalProgress(title: "reading \(URL(fileURLWithPath: source).lastPathComponent)")
        var imported: ImportedModel
        do {
            let request = try ImportSource(path: source, options: ImportOptions(configJSON: config, vivitModel: vivitModel, heads: heads),
                                           progress: progress.update)
            progress.finish()
            imported = try ModelRegistry.importModel(request)
        } catch {
            progress.finish()
            fail("\(error)")
        }
        if let labels { imported.labels = readLabels(labels, classes: imported.numClasses) }
        if let frames { imported.preprocessing.frames = frames }
        if let frameStride { imported.preprocessing.frameStride = frameStride }
        do { try imported.write(to: output, source: URL(fileURLWithPath: source).lastPathComponent) } catch { fail("\(error)") }
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

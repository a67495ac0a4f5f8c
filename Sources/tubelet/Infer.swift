import ArgumentParser
import Foundation
import TubeletKernels
import TubeletLoading

/// `tubelet infer --model MODEL (--clip CLIP.safetensors | --video FILE) [--json] [--top K]`
struct Infer: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Classify one clip.")

    @Option(help: "Tubelet model file (.safetensors from `tubelet import`).") var model: String
    @Option(help: "A safetensors file with one float32 tensor `clip` of shape [3, T, H, W], already normalised.") var clip: String?
    @Option(help: "A video file: frames are decoded, sampled, resized, cropped and normalised per the model's recipe.") var video: String?
    @Option(help: "Frames to sample from --video (default: the model's recipe).") var frames: Int?
    @Option(help: "Keep every n-th decoded frame of --video (default: the model's recipe).") var frameStride: Int?
    @Option(help: "Number of top classes to print.") var top = 5
    @Flag(help: "Print {\"logits\": [...], \"top\": [...]} on stdout.") var json = false

    func validate() throws {
        if (clip == nil) == (video == nil) { throw ValidationError("give exactly one of --clip and --video") }
        if top < 1 { throw ValidationError("--top must be at least 1") }
    }

    func run() throws {
        let loaded: TubeletModel
        do { loaded = try ModelFile.load(path: model) } catch { fail("\(error)") }
        let input: Tensor
        if let clip {
            input = readClip(clip)
        } else {
            input = decodeClip(video!, model: loaded, frames: frames, frameStride: frameStride)
        }
        if let problem = loaded.inputProblem(input.shape) { fail("\(clip ?? video!): \(problem)") }
        let logits = loaded.logits(input)
        report(logits, model: loaded, top: top, json: json)
    }
}

/// Reads `clip` [3, T, H, W] float32 from a safetensors file, or fails with one line.
func readClip(_ path: String) -> Tensor {
    do {
        let file = try SafeTensorsFile(path: path)
        guard let raw = file.tensor("clip") else {
            fail("\(path): no tensor named 'clip' (found \(file.names.prefix(5)))")
        }
        guard raw.shape.count == 4, raw.shape[0] == 3 else {
            fail("\(path): tensor 'clip' has shape \(raw.shape), expected [3, T, H, W]")
        }
        guard raw.shape.allSatisfy({ $0 > 0 }) else { fail("\(path): tensor 'clip' has an empty axis: \(raw.shape)") }
        return try raw.floats()
    } catch {
        fail("\(error)")
    }
}

/// Softmax of the logits and the top-k classes, as text or JSON.
func report(_ logits: Tensor, model: TubeletModel, top: Int, json: Bool) {
    let values = logits.array
    let maximum = values.max() ?? 0
    let exps = values.map { Foundation.exp(Double($0 - maximum)) }
    let sum = exps.reduce(0, +)
    let ranked = values.indices.sorted { values[$0] > values[$1] }.prefix(top)
    if json {
        printJSON(["logits": values.map(Double.init),
                   "top": ranked.map { ["index": $0, "label": model.label($0), "score": exps[$0] / sum] as [String: Any] }])
    } else {
        for index in ranked {
            print(String(format: "%6.2f%%  %@ (%d)", 100 * exps[index] / sum, model.label(index), index))
        }
    }
}

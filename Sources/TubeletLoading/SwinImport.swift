import Foundation
import TubeletKernels
import TubeletModels

/// Reads a published Video Swin checkpoint and turns it into a Tubelet model file.
///
/// Understands torchvision `swin3d_t/s/b` state dicts (`.pth` or `.safetensors`) and the official
/// Video-Swin-Transformer checkpoints (`{'meta', 'state_dict'}` with `backbone.*` and
/// `cls_head.fc_cls.*`, optimizer state ignored). The architecture is inferred from tensor shapes
/// and the stored `relative_position_index`.
public enum SwinImport {
    public enum Layout: String, Sendable { case torchvision, official }

    public struct Imported {
        public let config: VideoSwinConfig
        public let layout: Layout
        /// Weights under torchvision's names, in `config.parameterShapes()` order.
        public let weights: [(name: String, tensor: Tensor)]
        /// What the checkpoint's own `tubelet` entry says, if it has one.
        public let extras: CheckpointExtras?
        /// The checkpoint's recipe if it carries one, else its layout's Kinetics recipe.
        public var defaultPreprocessing: Preprocessing {
            extras?.preprocessing ?? (layout == .official ? .officialKinetics : .torchvisionKinetics)
        }
        public var labels: [String] { extras?.labels ?? [] }
    }

    /// Tubelet's own optional entry beside the state dict, written by our training scripts:
    /// `{'state_dict': …, 'tubelet': {'streaming': True, 'labels': [...], 'preprocessing': {...}}}`.
    public struct CheckpointExtras: Sendable {
        public var streaming = false
        public var labels: [String]? = nil
        public var preprocessing: Preprocessing? = nil
        /// The architecture the training script declared (`patch`, `embed_dim`, `depths`,
        /// `num_heads`, `window`, `num_classes`, `patch_norm`): checked against what the shapes say.
        /// Values are kept as their descriptions ("[2, 4, 4]", "true") for the comparison.
        public var declaredConfig: [String: String]? = nil

        init(_ value: PickleValue, path: String) throws {
            func fail(_ message: String) -> LoadError { LoadError(file: path, offset: nil, message: "checkpoint entry 'tubelet': \(message)") }
            guard let object = value.jsonObject as? [String: Any] else { throw fail("expected a dict of plain values") }
            for key in object.keys where !["streaming", "labels", "preprocessing", "config", "heldout_top1"].contains(key) {
                throw fail("unknown key '\(key)' (expected streaming, labels, preprocessing, config, heldout_top1)")
            }
            if let config = object["config"] {
                guard let fields = config as? [String: Any] else { throw fail("'config' must be a dict") }
                declaredConfig = fields.mapValues { "\($0)" }
            }
            if let streaming = object["streaming"] {
                guard let flag = streaming as? Bool else { throw fail("'streaming' must be a bool") }
                self.streaming = flag
            }
            if let labels = object["labels"] {
                guard let names = labels as? [String] else { throw fail("'labels' must be a list of strings") }
                self.labels = names
            }
            if let recipe = object["preprocessing"] {
                do {
                    let data = try JSONSerialization.data(withJSONObject: recipe)
                    preprocessing = try JSONDecoder().decode(Preprocessing.self, from: data)
                } catch {
                    throw fail("'preprocessing' is not a valid recipe: \(error)")
                }
            }
        }
    }

    /// Reads the checkpoint's tensors (and `tubelet` entry, if any): a torch.save zip (`.pth`, `.pt`,
    /// `.bin`) or a safetensors file.
    public static func readTensors(path: String, progress: ((Int, Int) -> Void)? = nil) throws
        -> (tensors: [(name: String, tensor: RawTensor)], extras: CheckpointExtras?) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw LoadError(file: path, offset: nil, message: "cannot open the file")
        }
        let magic = (try? handle.read(upToCount: 4)) ?? Data()
        try? handle.close()
        if magic.starts(with: [0x50, 0x4B]) {  // "PK": a torch.save zip archive
            let root = try TorchCheckpoint.load(path: path, progress: progress)
            guard let tensors = TorchCheckpoint.stateDict(root) else {
                throw LoadError(file: path, offset: nil, message: "no state dict of tensors found (looked at the top level and under state_dict, model_state, model, module)")
            }
            return (tensors, try root["tubelet"].map { try CheckpointExtras($0, path: path) })
        }
        let file = try SafeTensorsFile(path: path)
        return (file.names.map { ($0, file.tensor($0)!) }, nil)
    }

    /// Any other torch or safetensors checkpoint: torchvision swin3d_* or the official repository's (asked last).
    public static let importer = ModelImporter(
        name: "Video Swin checkpoint", priority: 0,
        recognises: { source in if case .checkpoint = source.contents { true } else { false } },
        read: { source in
            guard case .checkpoint(let tensors, let extras) = source.contents else { preconditionFailure() }
            if source.options.configJSON != nil { throw LoadError(file: source.path, offset: nil, message: "--config goes with --vivit-model or a UniFormer checkpoint") }
            let imported = try convert(tensors, extras: extras, path: source.path)
            let c = imported.config
            let parameters = imported.weights.reduce(0) { $0 + $1.tensor.count }
            return try ImportedModel(VideoSwin.self, config: c, numClasses: c.numClasses, weights: imported.weights,
                                     preprocessing: imported.defaultPreprocessing, labels: imported.labels, layout: imported.layout.rawValue,
                                     summary: "\(c.streaming ? "streaming-native " : "")Video Swin: embed \(c.embedDim), depths \(c.depths), heads \(c.numHeads), window \(c.windowSize), patch \(c.patchSize), \(c.numClasses) classes, \(parameters) parameters")
        })

    public static func importCheckpoint(path: String, progress: ((Int, Int) -> Void)? = nil) throws -> Imported {
        let (tensors, extras) = try readTensors(path: path, progress: progress)
        return try convert(tensors, extras: extras, path: path)
    }

    /// Maps names to torchvision's, infers the config and checks every shape.
    public static func convert(_ tensors: [(name: String, tensor: RawTensor)], extras: CheckpointExtras? = nil,
                               path: String) throws -> Imported {
        func fail(_ message: String) -> LoadError { LoadError(file: path, offset: nil, message: message) }
        var byName: [String: RawTensor] = [:]
        var layout = Layout.torchvision
        for (rawName, tensor) in tensors {
            var name = rawName
            if name.hasPrefix("module.") { name.removeFirst("module.".count) }  // DataParallel checkpoints
            if let mapped = officialToTorchvision(name) {
                layout = .official
                name = mapped
            } else if name.hasPrefix("backbone.") || name.hasPrefix("cls_head.") {
                continue  // official extras we do not use (none in published Swin checkpoints)
            }
            byName[name] = tensor
        }
        guard let patchWeight = byName["patch_embed.proj.weight"] else {
            throw fail("not a Video Swin checkpoint: no patch_embed.proj.weight (or backbone.patch_embed.proj.weight); found \(tensors.prefix(5).map(\.name))\(tensors.count > 5 ? "…" : "")")
        }
        guard patchWeight.shape.count == 5 else {
            throw fail("patch_embed.proj.weight has shape \(patchWeight.shape), expected a Conv3d weight [embed, channels, t, h, w]")
        }
        let embedDim = patchWeight.shape[0]
        var depths: [Int] = []
        while byName["features.\(2 * depths.count).0.norm1.weight"] != nil {
            var blocks = 0
            while byName["features.\(2 * depths.count).\(blocks).norm1.weight"] != nil { blocks += 1 }
            depths.append(blocks)
        }
        guard !depths.isEmpty else { throw fail("no Swin blocks found (features.0.0.* / backbone.layers.0.blocks.0.*)") }
        var heads: [Int] = []
        for stage in 0..<depths.count {
            guard let table = byName["features.\(2 * stage).0.attn.relative_position_bias_table"], table.shape.count == 2 else {
                throw fail("stage \(stage) has no relative_position_bias_table of rank 2")
            }
            heads.append(table.shape[1])
        }
        let tableRows = byName["features.0.0.attn.relative_position_bias_table"]!.shape[0]
        let window = try inferWindow(tableRows: tableRows, index: byName["features.0.0.attn.relative_position_index"], path: path)
        guard let fc1 = byName["features.0.0.mlp.0.weight"], fc1.shape.count == 2, fc1.shape[0] % embedDim == 0 else {
            throw fail("features.0.0.mlp.0.weight is missing or not [ratio·\(embedDim), \(embedDim)]")
        }
        guard let head = byName["head.weight"], head.shape.count == 2 else {
            throw fail("no classification head (head.weight or cls_head.fc_cls.weight)")
        }
        let config = VideoSwinConfig(
            patchSize: Array(patchWeight.shape[2...]), inChannels: patchWeight.shape[1], embedDim: embedDim,
            depths: depths, numHeads: heads, windowSize: window, mlpRatio: fc1.shape[0] / embedDim,
            patchNorm: byName["patch_embed.norm.weight"] != nil, numClasses: head.shape[0],
            streaming: extras?.streaming ?? false)
        if let declared = extras?.declaredConfig {
            let inferred: [String: Any] = ["patch": config.patchSize, "embed_dim": config.embedDim, "depths": config.depths,
                                           "num_heads": config.numHeads, "window": config.windowSize,
                                           "num_classes": config.numClasses, "patch_norm": config.patchNorm]
            for (key, value) in inferred {
                guard let stated = declared[key] else { continue }
                if stated != "\(value)" {
                    throw fail("checkpoint entry 'tubelet' declares \(key) = \(stated), but the tensors say \(value)")
                }
            }
        }
        if let labels = extras?.labels, labels.count != config.numClasses {
            throw fail("checkpoint entry 'tubelet' has \(labels.count) labels for \(config.numClasses) classes")
        }
        if let problem = VideoSwin.problem(in: config) { throw fail("invalid video_swin config: \(problem)") }

        // Every block's stored index must be the one the model computes.
        let expectedIndex = relativePositionIndex(window: window)
        for stage in 0..<depths.count {
            for block in 0..<depths[stage] {
                let name = "features.\(2 * stage).\(block).attn.relative_position_index"
                if let stored = byName[name], try stored.int64s() != expectedIndex {
                    throw fail("\(name) differs from the index of a \(window) window")
                }
            }
        }
        var weights: [(name: String, tensor: Tensor)] = []
        for (name, shape) in config.parameterShapes() {
            guard let raw = byName[name] else { throw fail("tensor '\(name)' is missing") }
            guard raw.shape == shape else { throw fail("tensor '\(name)' has shape \(raw.shape), expected \(shape)") }
            weights.append((name, try raw.floats()))
        }
        return Imported(config: config, layout: layout, weights: weights, extras: extras)
    }

    /// Official Video-Swin-Transformer key → torchvision key, or nil if the key is not official.
    public static func officialToTorchvision(_ name: String) -> String? {
        if name.hasPrefix("cls_head.fc_cls.") { return "head." + name.dropFirst("cls_head.fc_cls.".count) }
        guard name.hasPrefix("backbone.") else { return nil }
        let rest = String(name.dropFirst("backbone.".count))
        if rest.hasPrefix("patch_embed.") || rest.hasPrefix("norm.") { return rest }
        let parts = rest.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 3, parts[0] == "layers", let stage = Int(parts[1]) else { return nil }
        if parts[2] == "downsample" {
            return (["features", String(2 * stage + 1)] + parts[3...]).joined(separator: ".")
        }
        guard parts[2] == "blocks", parts.count >= 5 else { return nil }
        var tail = Array(parts[4...])
        if tail.count >= 2 && tail[0] == "mlp" {
            if tail[1] == "fc1" { tail[1] = "0" } else if tail[1] == "fc2" { tail[1] = "3" }
        }
        return (["features", String(2 * stage), parts[3]] + tail).joined(separator: ".")
    }

    /// torchvision's `relative_position_index` for a window (t, h, w), flattened [N·N].
    public static func relativePositionIndex(window: [Int]) -> [Int64] {
        let (wt, wh, ww) = (window[0], window[1], window[2])
        let n = wt * wh * ww
        var index = [Int64](repeating: 0, count: n * n)
        for i in 0..<n {
            let (ti, hi, wi) = (i / (wh * ww), (i / ww) % wh, i % ww)
            for j in 0..<n {
                let (tj, hj, wj) = (j / (wh * ww), (j / ww) % wh, j % ww)
                index[i * n + j] = Int64((ti - tj + wt - 1) * (2 * wh - 1) * (2 * ww - 1) + (hi - hj + wh - 1) * (2 * ww - 1) + (wi - wj + ww - 1))
            }
        }
        return index
    }

    /// The window whose bias table has `tableRows` rows and whose index equals the stored one.
    /// Without a stored index, only an unambiguous table size (one window with h = w) is accepted.
    static func inferWindow(tableRows: Int, index: RawTensor?, path: String) throws -> [Int] {
        var candidates: [[Int]] = []
        for wt in 1...64 where tableRows % (2 * wt - 1) == 0 {
            for wh in 1...64 where (tableRows / (2 * wt - 1)) % (2 * wh - 1) == 0 {
                let rest = tableRows / (2 * wt - 1) / (2 * wh - 1)
                if rest % 2 == 1 { candidates.append([wt, wh, (rest + 1) / 2]) }
            }
        }
        if let index {
            let n = index.shape.first ?? 0
            guard index.shape == [n, n] else {
                throw LoadError(file: path, offset: nil, message: "relative_position_index has shape \(index.shape), expected [N, N]")
            }
            let stored = try index.int64s()
            for window in candidates where window.reduce(1, *) == n && relativePositionIndex(window: window) == stored {
                return window
            }
            throw LoadError(file: path, offset: nil, message: "relative_position_index [\(n), \(n)] matches no window for a bias table of \(tableRows) rows")
        }
        let square = candidates.filter { $0[1] == $0[2] }
        guard square.count == 1 else {
            throw LoadError(file: path, offset: nil, message: "no relative_position_index stored and a bias table of \(tableRows) rows fits windows \(candidates); cannot infer the window")
        }
        return square[0]
    }
}

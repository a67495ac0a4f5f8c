import Foundation
import TubeletKernels
import TubeletModels

/// Imports ViViT Models 2, 3 and 4 from scenic's flax checkpoints (msgpack, `flax.serialization.to_bytes`).
///
/// The parameter tree is found wherever it sits (`params/…`, `optimizer/target/…`, or the root): at
/// the prefix of `output_projection/kernel`. From the shapes: hidden size and tubelet from
/// `embedding/kernel` [kt, kh, kw, c, d]; layers from `encoderblock_N`; heads from
/// `query/kernel` [d, heads, headDim]; MLP size from `Dense_0/kernel`; classes from
/// `output_projection/kernel` [d, classes]. Model 2's spatial and temporal token counts (and so the
/// frame size and frame count) come from its two position embeddings, its classifier from the
/// presence of `cls_SpatialTransformer`. Models 3 and 4 hold one position embedding over t·h·w
/// tokens, so the frame count is an option (default 32, scenic's Kinetics configs) and the square
/// frame size follows. Models 3 and 4 cannot be told apart from Model 1 ('spacetime') by names
/// alone when they share the standard block: the model number is an explicit argument.
///
/// Weights are stored under the flax paths with kernels transposed to [out, in] (`kernel` → `weight`),
/// LayerNorm `scale` → `weight`, attention `query/key/value/out` reshaped from [d, heads, headDim] /
/// [heads, headDim, d] to 2-D, the Conv3d kernel [kt, kh, kw, c, d] to [d, c, kt, kh, kw], and the
/// standard block's children renamed to the names of the flax that wrote scenic's checkpoints
/// (LayerNorm_0, MultiHeadDotProductAttention_1, LayerNorm_2, MlpBlock_3) whatever their numbering.
public enum ScenicImport {
    public static let architecture = ScenicViViT.architecture

    /// What the checkpoint does not say. JSON keys of `--config`: numFrames, imageSize, layerNormEps.
    public struct Options: Codable, Sendable {
        /// Models 3 and 4: frames per clip (default 32).
        public var numFrames: Int?
        /// Models 3 and 4: overrides the frame size derived from a square token grid.
        public var imageSize: Int?
        public var layerNormEps: Float?
        public init(numFrames: Int? = nil, imageSize: Int? = nil, layerNormEps: Float? = nil) {
            self.numFrames = numFrames
            self.imageSize = imageSize
            self.layerNormEps = layerNormEps
        }
    }

    /// scenic flax checkpoints (`.msgpack`), with `--vivit-model` saying which model.
    public static let importer = ModelImporter(
        name: "scenic ViViT flax checkpoint", priority: 20,
        recognises: { source in if case .flax = source.contents { source.options.vivitModel != nil } else { false } },
        read: { source in
            var options = Options()
            if let json = source.options.configJSON {
                do { options = try JSONDecoder().decode(Options.self, from: Data(json.utf8)) } catch {
                    throw LoadError(file: source.path, offset: nil, message: "--config: not valid JSON options (numFrames, imageSize, layerNormEps): \(error)")
                }
            }
            return try importCheckpoint(path: source.path, model: source.options.vivitModel!, options: options)
        })

    public static func importCheckpoint(path: String, model: Int, options: Options = Options()) throws -> HFImport.Imported {
        try convert(try FlaxCheckpoint.read(path: path), path: path, model: model, options: options)
    }

    public static func convert(_ tensors: [(name: String, tensor: RawTensor)], path: String, model: Int,
                               options: Options = Options()) throws -> HFImport.Imported {
        func fail(_ message: String) -> LoadError { LoadError(file: path, message: message) }
        guard let variant = ScenicViViTConfig.Variant(rawValue: model) else {
            throw fail("--vivit-model \(model): this import handles scenic Models 2, 3 and 4 (Model 1 imports from Hugging Face)")
        }
        guard let anchor = tensors.first(where: { $0.name == "output_projection/kernel" || $0.name.hasSuffix("/output_projection/kernel") }) else {
            throw fail("no output_projection/kernel: not a scenic ViViT classification checkpoint")
        }
        let prefix = String(anchor.name.dropLast("output_projection/kernel".count))
        var byName: [String: RawTensor] = [:]
        for (name, tensor) in tensors where name.hasPrefix(prefix) { byName[String(name.dropFirst(prefix.count))] = tensor }
        if byName.keys.contains(where: { $0.hasPrefix("pre_logits/") }) {
            throw fail("the checkpoint has pre_logits (representation_size): not supported")
        }
        func tensor(_ name: String, rank: Int) throws -> RawTensor {
            guard let t = byName[name] else { throw fail("'\(prefix)\(name)' is missing") }
            guard t.shape.count == rank else { throw fail("'\(prefix)\(name)' has shape \(t.shape), expected rank \(rank)") }
            return t
        }
        let hasSpatial = byName.keys.contains { $0.hasPrefix("SpatialTransformer/") }
        let hasTimeBlocks = byName.keys.contains { $0.contains("/LayerNorm_time/") }
        switch variant {
        case .factorisedEncoder where !hasSpatial:
            throw fail("--vivit-model 2, but the checkpoint has no SpatialTransformer (Model 2 is the factorised encoder)")
        case .factorisedSelfAttention where !hasTimeBlocks,
             .factorisedDotProduct where hasTimeBlocks || hasSpatial:
            throw fail("--vivit-model \(model) does not match the checkpoint (\(hasSpatial ? "a factorised encoder: Model 2" : hasTimeBlocks ? "factorised self-attention blocks: Model 3" : "standard blocks"))")
        default: break
        }

        let conv = try tensor("embedding/kernel", rank: 5)
        let (kt, kh, kw, channels, d) = (conv.shape[0], conv.shape[1], conv.shape[2], conv.shape[3], conv.shape[4])
        let projection = try tensor("output_projection/kernel", rank: 2)
        guard projection.shape[0] == d else { throw fail("output_projection/kernel is \(projection.shape), expected [\(d), classes]") }
        let numClasses = projection.shape[1]

        func encoderShape(_ name: String) throws -> ScenicViViTConfig.Encoder {
            var layers = 0
            while byName.keys.contains(where: { $0.hasPrefix("\(name)/encoderblock_\(layers)/") }) { layers += 1 }
            guard layers > 0 else { throw fail("\(name) has no encoderblock_0") }
            let block = "\(name)/encoderblock_0/"
            let attention = variant == .factorisedSelfAttention ? "MultiHeadDotProductAttention_time" : try child(block, "MultiHeadDotProductAttention_")
            let query = try tensor(block + attention + "/query/kernel", rank: 3)
            let mlp = variant == .factorisedSelfAttention ? "MlpBlock" : try child(block, "MlpBlock_")
            let dense = try tensor(block + mlp + "/Dense_0/kernel", rank: 2)
            return .init(layers: layers, heads: query.shape[1], mlpDim: dense.shape[1])
        }
        /// The one child of `block` whose name starts with `stem` followed by a number.
        func child(_ block: String, _ stem: String, index: Int = 0, of count: Int = 1) throws -> String {
            let names = Set(byName.keys.compactMap { key -> String? in
                guard key.hasPrefix(block) else { return nil }
                let first = key.dropFirst(block.count).split(separator: "/").first.map(String.init) ?? ""
                return first.hasPrefix(stem) && Int(first.dropFirst(stem.count)) != nil ? first : nil
            }).sorted { Int($0.dropFirst(stem.count))! < Int($1.dropFirst(stem.count))! }
            guard names.count == count else { throw fail("\(prefix)\(block): expected \(count) \(stem)N, found \(names)") }
            return names[index]
        }

        let config: ScenicViViTConfig
        let eps = options.layerNormEps ?? 1e-6
        if variant == .factorisedEncoder {
            let token = byName["cls_SpatialTransformer"] != nil
            let cls = token ? 1 : 0
            let spatialTokens = try tensor("SpatialTransformer/posembed_input/pos_embedding", rank: 3).shape[1] - cls
            let temporalTokens = try tensor("TemporalTransformer/posembed_input/pos_embedding", rank: 3).shape[1] - cls
            let side = Int(Double(spatialTokens).squareRoot().rounded())
            guard side * side == spatialTokens, kh == kw else {
                throw fail("the spatial position embedding holds \(spatialTokens) tokens: not a square grid of \(kh)x\(kw) patches")
            }
            config = ScenicViViTConfig(variant: variant, imageSize: options.imageSize ?? side * kh, numFrames: temporalTokens * kt,
                                       tubeletSize: [kt, kh, kw], inChannels: channels, hiddenSize: d, numClasses: numClasses,
                                       classifier: token ? "token" : "gap", encoder: try encoderShape("SpatialTransformer"),
                                       temporal: try encoderShape("TemporalTransformer"), layerNormEps: eps)
        } else {
            let tokens = try tensor("Transformer/posembed_input/pos_embedding", rank: 3).shape[1]
            let frames = options.numFrames ?? 32
            guard frames % kt == 0, frames > 0, tokens % (frames / kt) == 0 else {
                throw fail("\(tokens) tokens are not a whole number of \(frames)/\(kt) temporal indices (set numFrames with --config)")
            }
            let spatial = tokens / (frames / kt)
            let side = Int(Double(spatial).squareRoot().rounded())
            let imageSize: Int
            if let given = options.imageSize {
                imageSize = given
            } else {
                guard side * side == spatial, kh == kw else { throw fail("\(spatial) spatial tokens are not a square grid (set imageSize with --config)") }
                imageSize = side * kh
            }
            config = ScenicViViTConfig(variant: variant, imageSize: imageSize, numFrames: frames, tubeletSize: [kt, kh, kw],
                                       inChannels: channels, hiddenSize: d, numClasses: numClasses, classifier: "gap",
                                       encoder: try encoderShape("Transformer"), layerNormEps: eps)
        }
        if let problem = config.problem { throw fail("invalid scenic ViViT config: \(problem)") }

        // Map every tensor the model reads from its flax name, converting the layout.
        var blockChildren: [String: String] = [:]  // file name prefix → flax prefix for standard blocks
        if variant != .factorisedSelfAttention {
            for name in variant == .factorisedEncoder ? ["SpatialTransformer", "TemporalTransformer"] : ["Transformer"] {
                var layer = 0
                while byName.keys.contains(where: { $0.hasPrefix("\(name)/encoderblock_\(layer)/") }) {
                    let block = "\(name)/encoderblock_\(layer)/"
                    blockChildren[block + "LayerNorm_0/"] = block + (try child(block, "LayerNorm_", index: 0, of: 2)) + "/"
                    blockChildren[block + "LayerNorm_2/"] = block + (try child(block, "LayerNorm_", index: 1, of: 2)) + "/"
                    blockChildren[block + "MultiHeadDotProductAttention_1/"] = block + (try child(block, "MultiHeadDotProductAttention_")) + "/"
                    blockChildren[block + "MlpBlock_3/"] = block + (try child(block, "MlpBlock_")) + "/"
                    layer += 1
                }
            }
        }
        func flaxName(_ fileName: String) -> String {
            for (file, flax) in blockChildren where fileName.hasPrefix(file) { return flax + fileName.dropFirst(file.count) }
            return fileName
        }
        var used = Set<String>()
        var weights: [(name: String, tensor: Tensor)] = []
        for (name, shape) in config.parameterShapes() {
            let source = flaxName(name)
            let leaf = source.split(separator: "/").last.map(String.init) ?? source
            let parent = source.split(separator: "/").dropLast().last.map(String.init) ?? ""
            let stem = String(source.dropLast(leaf.count))
            let converted: Tensor
            if name == "embedding/weight" {
                let k = try tensor("embedding/kernel", rank: 5).floats()  // [kt, kh, kw, c, d]
                converted = permute(k, [4, 3, 0, 1, 2])
                used.insert("embedding/kernel")
            } else if leaf == "weight" && byName[stem + "scale"] != nil {
                converted = try byName[stem + "scale"]!.floats()
                used.insert(stem + "scale")
            } else if leaf == "weight" {
                guard let kernel = byName[stem + "kernel"] else { throw fail("'\(prefix)\(stem)kernel' is missing") }
                let k = try kernel.floats()
                used.insert(stem + "kernel")
                if ["query", "key", "value"].contains(parent) {  // [d, heads, headDim] → [heads·headDim, d]
                    guard k.rank == 3 else { throw fail("'\(prefix)\(stem)kernel' has shape \(k.shape), expected [d, heads, headDim]") }
                    converted = permute(k.reshaped([k.shape[0], k.shape[1] * k.shape[2]]), [1, 0])
                } else if parent == "out" {  // [heads, headDim, d] → [d, heads·headDim]
                    guard k.rank == 3 else { throw fail("'\(prefix)\(stem)kernel' has shape \(k.shape), expected [heads, headDim, d]") }
                    converted = permute(k.reshaped([k.shape[0] * k.shape[1], k.shape[2]]), [1, 0])
                } else {
                    guard k.rank == 2 else { throw fail("'\(prefix)\(stem)kernel' has shape \(k.shape), expected rank 2") }
                    converted = permute(k, [1, 0])
                }
            } else {
                guard let raw = byName[source] else { throw fail("'\(prefix)\(source)' is missing") }
                let t = try raw.floats()
                used.insert(source)
                converted = t.count == shape.reduce(1, *) ? t.reshaped(shape) : t
            }
            guard converted.shape == shape else {
                throw fail("'\(prefix)\(source)' gives \(converted.shape) for \(name), expected \(shape)")
            }
            weights.append((name, converted))
        }
        let unused = byName.keys.filter { !used.contains($0) }.sorted()
        if !unused.isEmpty {
            throw fail("tensors this ViViT Model \(model) does not use: \(unused.prefix(5).map { prefix + $0 })\(unused.count > 5 ? " and \(unused.count - 5) more" : "")")
        }
        // scenic's video pipeline (DMVR): zero-centred pixels (x/127.5 - 1), short side resized to
        // 8/7 of the crop (256 for 224), centre crop.
        let preprocessing = ScenicViViT.referencePreprocessing(for: config)
        let parameters = weights.reduce(0) { $0 + $1.tensor.count }
        let e = config.encoder
        var summary = "ViViT Model \(model): hidden \(d), tubelet \(config.tubeletSize), \(config.numFrames) frames of \(config.imageSize)², "
        if let t = config.temporal {
            summary += "spatial \(e.layers) layers/\(e.heads) heads, temporal \(t.layers) layers/\(t.heads) heads, classifier \(config.classifier), "
        } else {
            summary += "\(e.layers) layers, \(e.heads) heads, "
        }
        summary += "\(numClasses) classes, \(parameters) parameters"
        return try ImportedModel(ScenicViViT.self, config: config, numClasses: numClasses, weights: weights, preprocessing: preprocessing,
                                 labels: [], layout: "scenic", summary: summary)
    }

    /// A copy of t with its axes permuted: out.shape[i] = t.shape[order[i]].
    static func permute(_ t: Tensor, _ order: [Int]) -> Tensor {
        let shape = order.map { t.shape[$0] }
        let out = Tensor(uninitialized: shape)
        var strides = [Int](repeating: 1, count: t.rank)
        for i in stride(from: t.rank - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * t.shape[i + 1] }
        let sourceStrides = order.map { strides[$0] }
        var index = [Int](repeating: 0, count: shape.count)
        for i in 0..<out.count {
            var offset = 0
            for axis in 0..<shape.count { offset += index[axis] * sourceStrides[axis] }
            out.data[i] = t.data[offset]
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return out
    }
}

import TubeletKernels

/// How frames become a normalised clip for a model: sampling, geometry and per-channel normalisation.
/// Pixel values are first scaled by `pixelScale` (1/255 for torchvision's 0-1 convention, 1 for the
/// official repos' 0-255), then `(value - mean) / std` per channel.
public struct Preprocessing: Codable, Sendable, Equatable {
    public var frames: Int
    public var frameStride: Int
    public var resizeShortSide: Int
    public var cropSize: Int
    public var pixelScale: Float
    public var mean: [Float]
    public var std: [Float]
    /// After normalising, subtract each frame's per-channel spatial mean (the demo model's recipe:
    /// it removes lighting and background level so that motion is what remains).
    public var subtractFrameMean: Bool

    public init(frames: Int, frameStride: Int, resizeShortSide: Int, cropSize: Int, pixelScale: Float, mean: [Float], std: [Float],
                subtractFrameMean: Bool = false) {
        self.frames = frames
        self.frameStride = frameStride
        self.resizeShortSide = resizeShortSide
        self.cropSize = cropSize
        self.pixelScale = pixelScale
        self.mean = mean
        self.std = std
        self.subtractFrameMean = subtractFrameMean
    }

    enum CodingKeys: String, CodingKey {
        case frames, frameStride, resizeShortSide, cropSize, pixelScale, mean, std, subtractFrameMean
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(frames: try c.decode(Int.self, forKey: .frames), frameStride: try c.decode(Int.self, forKey: .frameStride),
                  resizeShortSide: try c.decode(Int.self, forKey: .resizeShortSide), cropSize: try c.decode(Int.self, forKey: .cropSize),
                  pixelScale: try c.decodeIfPresent(Float.self, forKey: .pixelScale) ?? 1.0 / 255, mean: try c.decode([Float].self, forKey: .mean),
                  std: try c.decode([Float].self, forKey: .std),
                  subtractFrameMean: try c.decodeIfPresent(Bool.self, forKey: .subtractFrameMean) ?? false)
    }

    /// torchvision's Kinetics recipe for swin3d_*: short side 256, centre crop 224, ImageNet mean/std on 0-1.
    public static let torchvisionKinetics = Preprocessing(
        frames: 32, frameStride: 2, resizeShortSide: 256, cropSize: 224, pixelScale: 1.0 / 255,
        mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])

    /// Writes one RGB24 frame [height, width, 3] into time index `t` of clip [3, T, height, width]:
    /// `(pixel · pixelScale - mean[c]) / std[c]`.
    public func normalise(frame: UnsafeBufferPointer<UInt8>, into clip: Tensor, at t: Int) {
        precondition(clip.rank == 4 && clip.shape[0] == 3 && t < clip.shape[1], "clip must be [3, T, H, W] with t < T")
        precondition(mean.count == 3 && std.count == 3, "mean and std need 3 channels")
        let (frames, plane) = (clip.shape[1], clip.shape[2] * clip.shape[3])
        precondition(frame.count == plane * 3, "frame has \(frame.count) bytes, expected \(plane * 3)")
        for c in 0..<3 {
            let scale = pixelScale / std[c], offset = mean[c] / std[c]
            let out = clip.data + (c * frames + t) * plane
            for i in 0..<plane { out[i] = Float(frame[i * 3 + c]) * scale - offset }
            if subtractFrameMean {
                var sum: Double = 0
                for i in 0..<plane { sum += Double(out[i]) }
                let frameMean = Float(sum / Double(plane))
                for i in 0..<plane { out[i] -= frameMean }
            }
        }
    }

    /// The official Video-Swin-Transformer test pipeline: the same normalisation on the 0-255 scale.
    public static let officialKinetics = Preprocessing(
        frames: 32, frameStride: 2, resizeShortSide: 256, cropSize: 224, pixelScale: 1,
        mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375])
}

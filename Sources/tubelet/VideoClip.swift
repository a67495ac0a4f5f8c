import Foundation
import TubeletKernels
import TubeletLoading
import TubeletStreaming

/// Decodes `frames` frames every `frameStride` from the start of a video, resizes the short side,
/// centre-crops and normalises them per the model's recipe → clip [3, T, crop, crop].
func decodeClip(_ path: String, model: TubeletModel, frames: Int?, frameStride: Int?) -> Tensor {
    let recipe = model.preprocessing
    let frameCount = frames ?? recipe.frames, stride = frameStride ?? recipe.frameStride
    guard frameCount > 0, stride > 0 else { fail("--frames and --frame-stride must be positive") }
    let geometry = FrameGeometry.shortSideCenterCrop(shortSide: recipe.resizeShortSide, crop: recipe.cropSize)
    let decoded: DecodedClip
    do {
        decoded = try decodeVideoClip(path: path, geometry: geometry, frameCount: frameCount, frameStride: stride)
    } catch {
        fail("\(error)")
    }
    if let warning = decoded.warning { FileHandle.standardError.write(Data("tubelet: warning: \(warning)\n".utf8)) }
    let clip = Tensor(uninitialized: [3, decoded.frames.count, geometry.height, geometry.width])
    for (t, frame) in decoded.frames.enumerated() {
        frame.rgb.withUnsafeBufferPointer { recipe.normalise(frame: $0, into: clip, at: t) }
    }
    return clip
}

import TubeletKernels
import TubeletLoading
/// Decodes, samples and normalises --video frames per the model recipe.
func decodeClip(_ path: String, model: TubeletModel, frames: Int?, frameStride: Int?) -> Tensor {
    fail("--video needs the capture layer, which is not merged yet")
}

import ArgumentParser
import Foundation
import TubeletKernels
import TubeletModels

/// Times a full-clip forward pass of a Video Swin topology (random weights unless --model is given).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Seconds per clip and GFLOP/s for a Video Swin topology.")

    @Option(help: "Topology with random weights: swin3d_t, swin3d_s or swin3d_b.") var topology = "swin3d_t"
    @Option(help: "Frames per clip.") var frames = 16
    @Option(help: "Height and width of the clip.") var size = 224
    @Option(name: .customLong("repeat"), help: "Timed runs after one warm-up; the best is reported.") var repeats = 3
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let config: VideoSwinConfig
        switch topology {
        case "swin3d_t": config = .swin3dT()
        case "swin3d_s": config = .swin3dS()
        case "swin3d_b": config = .swin3dB()
        default: fail("unknown topology '\(topology)' (expected swin3d_t, swin3d_s or swin3d_b)")
        }
        var generator = SplitMix64(seed: 0)
        let model = try VideoSwin(config: config) { name, shape in
            randomWeight(name: name, shape: shape, using: &generator)
        }
        let clip = Tensor(uninitialized: [3, frames, size, size])
        for i in 0..<clip.count { clip[i] = Float.random(in: -2...2, using: &generator) }

        var runs: [Double] = []
        for run in 0...repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            let logits = model(clip)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            precondition(logits.array.allSatisfy { $0.isFinite }, "non-finite logits")
            if run > 0 { runs.append(seconds) }  // run 0 is the warm-up
        }
        let best = runs.min()!
        let gflop = model.flops(frames: frames, height: size, width: size) / 1e9
        if json {
            printJSON(["topology": topology, "frames": frames, "size": size, "threads": Parallel.threadCount,
                       "seconds_best": best, "runs": runs, "gflop": gflop, "gflops": gflop / best])
        } else {
            print(String(format: "%@ 3x%dx%dx%d: best %.3f s per clip over %d runs (%.1f GFLOP, %.1f GFLOP/s, %d threads)",
                         topology, frames, size, size, best, runs.count, gflop, gflop / best, Parallel.threadCount))
        }
    }
}

/// Weights of a plausible scale: LayerNorm weight ≈ 1, biases small, matrices ~ U(±1/√fan_in).
func randomWeight(name: String, shape: [Int], using generator: inout SplitMix64) -> Tensor {
    let t = Tensor(uninitialized: shape)
    let isNorm = name.contains("norm")
    let fanIn = shape.count > 1 ? shape.dropFirst().reduce(1, *) : 1
    let scale = shape.count > 1 ? 1 / Float(fanIn).squareRoot() : 0.02
    for i in 0..<t.count {
        let r = Float.random(in: -1...1, using: &generator)
        t[i] = isNorm && name.hasSuffix("weight") ? 1 + 0.1 * r : r * scale
    }
    return t
}

struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

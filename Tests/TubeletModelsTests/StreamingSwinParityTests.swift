import Foundation
import XCTest
import TubeletKernels
import TubeletLoading
import TubeletModels

/// Parity of the Swift streaming-native Video Swin with the PyTorch implementation of
/// docs/streaming-native-swin.md (tools/streaming_swin.py), from fixtures made by
/// tools/make_streaming_fixtures.py with every parameter randomised. Each model goes through
/// `tubelet import`'s code path, including the checkpoint's `tubelet` entry.
final class StreamingSwinParityTests: XCTestCase {
    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("streaming_swin")

    struct FixtureConfig: Decodable {
        let clip_tokens: Int
        let clip_end_token_times: [Int]
        let clip_start_token_times: [Int]
        let labels: [String]
    }

    func load(_ name: String) throws -> (TubeletModel, VideoSwin, Tensor, SafeTensorsFile, FixtureConfig) {
        let directory = Self.fixtures.appendingPathComponent(name)
        let imported = try SwinImport.importCheckpoint(path: directory.appendingPathComponent("model.pth").path)
        XCTAssertTrue(imported.config.streaming, "the checkpoint's tubelet entry marks it streaming-native")
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("tubelet-stream-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        try ModelFile.write(videoSwin: imported.config, weights: imported.weights, preprocessing: imported.defaultPreprocessing,
                            labels: imported.labels, source: "fixture", to: output)
        let model = try ModelFile.load(path: output)
        guard let swin = model.network as? VideoSwin else { throw XCTSkip("not a Video Swin") }
        let frames = try XCTUnwrap(try SafeTensorsFile(path: directory.appendingPathComponent("stream.safetensors").path).tensor("frames")).floats()
        let expected = try SafeTensorsFile(path: directory.appendingPathComponent("expected.safetensors").path)
        let config = try JSONDecoder().decode(FixtureConfig.self, from: Data(contentsOf: directory.appendingPathComponent("config.json")))
        XCTAssertEqual(model.labels, config.labels)
        return (model, swin, frames, expected, config)
    }

    func assertParity(_ actual: [Float], _ expected: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, what, file: file, line: line)
        let largest = expected.map(abs).max() ?? 0
        let worst = zip(actual, expected).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, 1e-4 * max(1, largest), "\(what): max|Δ| \(worst)", file: file, line: line)
    }

    func testWholeStreamFeaturesAndClipLogitsMatchPyTorch() throws {
        for name in ["patch_norm", "no_patch_norm"] {
            let (_, swin, frames, expected, config) = try load(name)
            let stream = SwinStream(model: swin, keptSlices: frames.shape[1] / 2)
            var features: Tensor?
            stream.push(frames) { features = $0.copy() }
            assertParity(features!.array, try expected.tensor("features")!.floats().array, "\(name) features")
            let clipLogits = try expected.tensor("clip_logits")!.floats()
            let classes = clipLogits.shape[1]
            for (i, end) in config.clip_end_token_times.enumerated() {
                let reference = Array(clipLogits.array[i * classes..<(i + 1) * classes])
                assertParity(stream.clipLogits(clipTokens: config.clip_tokens, endTime: end).array, reference, "\(name) clip ending at \(end)")
            }
        }
    }

    func testHopByHopStreamingMatchesPyTorchWholeStream() throws {
        let (_, swin, frames, expected, config) = try load("patch_norm")
        let clipLogits = try expected.tensor("clip_logits")!.floats()
        let classes = clipLogits.shape[1]
        let stream = SwinStream(model: swin, keptSlices: config.clip_tokens)
        var pushedTokens = 0
        for (i, end) in config.clip_end_token_times.enumerated() {
            // Push in uneven pieces (1 and then the rest) to exercise tiles that straddle pushes.
            while pushedTokens < end {
                let count = min(pushedTokens % 3 == 0 ? 1 : 2, end - pushedTokens)
                stream.push(sliceTime(frames, (2 * pushedTokens)..<(2 * (pushedTokens + count))))
                pushedTokens += count
            }
            assertParity(stream.clipLogits(clipTokens: config.clip_tokens).array,
                         Array(clipLogits.array[i * classes..<(i + 1) * classes]), "clip ending at \(end)")
        }
    }

    func testClipFromScratchMatchesPyTorch() throws {
        let (model, swin, frames, expected, config) = try load("no_patch_norm")
        let scratch = try expected.tensor("clip_logits_scratch")!.floats()
        let classes = scratch.shape[1]
        for (i, start) in config.clip_start_token_times.enumerated() {
            let clip = sliceTime(frames, (2 * start)..<(2 * (start + config.clip_tokens)))
            let (tokens, grid) = swin.embedPatches(clip)
            let logits = swin.forward(tokens: tokens, grid: grid, startTokenTime: start)
            assertParity(logits.array, Array(scratch.array[i * classes..<(i + 1) * classes]), "clip from scratch at \(start)")
            if start == 0 { assertParity(model.logits(clip).array, Array(scratch.array[0..<classes]), "model.logits on the first clip") }
        }
    }

    func sliceTime(_ frames: Tensor, _ range: Range<Int>) -> Tensor {
        let (t, plane) = (frames.shape[1], frames.shape[2] * frames.shape[3])
        let out = Tensor(uninitialized: [frames.shape[0], range.count, frames.shape[2], frames.shape[3]])
        for c in 0..<frames.shape[0] {
            (out.data + c * range.count * plane).update(from: frames.data + (c * t + range.lowerBound) * plane, count: range.count * plane)
        }
        return out
    }
}

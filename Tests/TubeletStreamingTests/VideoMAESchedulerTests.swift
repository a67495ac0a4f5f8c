import Foundation
import XCTest
import TubeletKernels
import TubeletLoading
import TubeletModels
import TubeletStreaming

/// VideoMAE through the clip scheduler: its tubelets are embedded once and reused (`exact`), bit for bit
/// what `none` computes; kv is refused (no key/value streaming for this family).
final class VideoMAESchedulerTests: XCTestCase {
    func testExactReuseEqualsNoneBitForBit() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("TubeletModelsTests/Fixtures/videomae/first_token").path
        let imported = try ModelRegistry.importModel(try ImportSource(path: fixture))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tubelet-videomae-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try imported.write(to: path, source: "test")
        let model = try ModelFile.load(path: path)
        XCTAssertNil(model.network.keyValueStreaming)
        XCTAssertThrowsError(try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 6, hop: 3, reuse: .kv)))

        let geometry = ClipScheduler.geometry(for: model)
        var generator = SplitMix64(seed: 5)
        let frames = (0..<18).map { _ in (0..<geometry.byteCount).map { _ in UInt8.random(in: 0...255, using: &generator) } }
        func labels(_ reuse: ReuseMode) throws -> [[Float]] {
            let scheduler = try ClipScheduler(model: model, settings: WindowSettings(clipFrames: 6, hop: 3, reuse: reuse))
            return frames.enumerated().compactMap { t, rgb in
                rgb.withUnsafeBufferPointer { scheduler.push(rgb: $0, timestamp: Double(t)) }?.logits
            }
        }
        let none = try labels(.none), exact = try labels(.exact)
        XCTAssertEqual(none.count, 5)
        XCTAssertEqual(exact, none)
        // And a clip from scratch is the model's own forward pass on the same frames.
        let clip = Tensor(uninitialized: [3, 6, geometry.height, geometry.width])
        for t in 0..<6 { frames[t].withUnsafeBufferPointer { model.preprocessing.normalise(frame: $0, into: clip, at: t) } }
        XCTAssertEqual(model.logits(clip).array, none[0])
    }
}

import ArgumentParser
import Foundation
import TubeletLoading
import TubeletStreaming

/// `tubelet stream --model MODEL --source SRC --clip-frames T --frame-stride S --hop H --reuse none|exact|kv [--jsonl]`
struct Stream: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify a stream clip after clip, reusing what overlapping clips share.",
        discussion: """
            A file is read frame by frame with nothing dropped; a network URL (rtsp://, http://…) or a
            V4L2 device (/dev/videoN) is captured live through the ring buffer. With --compare MODE,
            a second scheduler runs MODE on the same frames and a reuse report closes the run.
            """)

    @Option(help: "Tubelet model file.") var model: String
    @Option(help: "Video file, stream URL or /dev/videoN.") var source: String
    @Option(help: "Sampled frames per clip (default: the model's recipe).") var clipFrames: Int?
    @Option(help: "Keep every n-th decoded frame (default: the model's recipe).") var frameStride: Int?
    @Option(help: "Sampled frames between labels (default: a quarter of the clip).") var hop: Int?
    @Option(help: "none, exact or kv.") var reuse: String = "exact"
    @Option(help: "Run this mode beside --reuse on the same frames and report agreement and cost.") var compare: String?
    @Flag(help: "With --reuse kv on a clip-trained Video Swin: the stale-token approximation. Not exact: `none` always runs beside it and the agreement is reported.") var approximate = false
    @Option(help: "With --approximate: recompute the clip exactly every N labels.") var refresh: Int?
    @Option(help: "Top classes per label.") var top = 5
    @Option(help: "Stop after this many labels.") var maxClips: Int?
    @Flag(help: "One JSON object per label on stdout.") var jsonl = false
    @Flag(help: "Include logits in each JSON line.") var logits = false

    func run() throws {
        let loaded: TubeletModel
        do { loaded = try ModelFile.load(path: model) } catch { fail("\(error)") }
        var settings = try windowSettings(loaded, reuse: reuse)
        settings.approximate = approximate
        settings.refresh = refresh
        // An approximation's agreement is never hidden: compare it with clips from scratch.
        let compare = self.compare ?? (approximate ? "none" : nil)
        let scheduler: ClipScheduler
        var reference: ClipScheduler?
        do {
            scheduler = try ClipScheduler(model: loaded, settings: settings, topK: top)
            if let compare { reference = try ClipScheduler(model: loaded, settings: try windowSettings(loaded, reuse: compare), topK: top) }
        } catch {
            fail("\(error)")
        }
        let mode = settings.reuse.rawValue + (approximate ? " (approximate, refresh \(refresh.map(String.init) ?? "never"))" : "")
        var report = ReuseReport(mode: mode, reference: compare)
        var emitted = 0
        try forEachFrame(of: source, geometry: scheduler.geometry, frameStride: settings.frameStride) { frame in
            let referenceResult = reference?.push(frame: frame)
            guard let result = scheduler.push(frame: frame) else { return true }
            if let referenceResult { report.add(result, referenceResult) }
            printResult(result)
            emitted += 1
            return maxClips.map { emitted < $0 } ?? true
        }
        if emitted == 0 {
            FileHandle.standardError.write(Data("tubelet: \(redactCredentials(source)): no clip completed (fewer than \(settings.clipFrames) sampled frames)\n".utf8))
        }
        if compare != nil { report.print(jsonl: jsonl) }
    }

    func windowSettings(_ loaded: TubeletModel, reuse: String) throws -> WindowSettings {
        guard let mode = ReuseMode(rawValue: reuse) else { fail("unknown reuse mode '\(reuse)' (expected none, exact or kv)") }
        let clip = clipFrames ?? loaded.preprocessing.frames
        return WindowSettings(clipFrames: clip, frameStride: frameStride ?? loaded.preprocessing.frameStride,
                              hop: hop ?? max(1, clip / 4), reuse: mode)
    }

    func printResult(_ result: ClipResult) {
        if jsonl {
            var object: [String: Any] = [
                "sequence": result.sequence, "clip_start": result.clipStart, "clip_end": result.clipEnd,
                "top": result.top.map { ["index": $0.index, "label": $0.label, "score": Double($0.score)] as [String: Any] },
                "wall_ms": result.wallSeconds * 1000, "gflop": result.gflopComputed, "gflop_full_clip": result.gflopFullClip,
            ]
            if logits { object["logits"] = result.logits.map(Double.init) }
            printJSON(object)
        } else {
            let best = result.top[0]
            print(String(format: "%4d  %8.2f-%8.2f s  %-24@ %5.1f%%  %7.1f ms  %6.2f/%6.2f GFLOP",
                         result.sequence, result.clipStart, result.clipEnd, best.label, 100 * best.score,
                         result.wallSeconds * 1000, result.gflopComputed, result.gflopFullClip))
        }
        fflush(nil)  // every label as it comes, also through a pipe
    }
}

/// Calls `body` with every sampled frame of `source` until it returns false or the source ends.
/// Files: decoded in order, nothing dropped. Live sources: captured through a ring (drop-oldest).
func forEachFrame(of source: String, geometry: FrameGeometry, frameStride: Int, _ body: (Frame) throws -> Bool) throws {
    var options = CaptureOptions(url: source, geometry: geometry)
    if case .file = options.kind {
        let reader: VideoFileReader
        do { reader = try VideoFileReader(path: source, geometry: geometry, frameStride: frameStride) } catch { fail("\(error)") }
        while let frame = try reader.next() {
            if try !body(frame) { return }
        }
        return
    }
    options.sampling = .frameStride(frameStride)
    options.maxAttempts = nil
    let capture = CaptureSource(options: options) { change in
        FileHandle.standardError.write(Data("tubelet: \(change.source): \(change.state)\n".utf8))
    }
    let reader = capture.ring.makeReader()
    capture.start()
    defer { _ = capture.stop() }
    var frame = Frame()
    while true {
        guard reader.next(into: &frame, timeout: 1) else { continue }
        if try !body(frame) { return }
    }
}

/// Per-label comparison of a reuse mode with a reference mode on the same frames.
struct ReuseReport {
    let mode: String
    let reference: String?
    var labels = 0, agreements = 0
    var wallRatioSum = 0.0, gflopRatioSum = 0.0, meanAbsDeltaPSum = 0.0
    var maxRelativeLogitDelta: Float = 0
    var wall = 0.0, referenceWall = 0.0
    var gflop = 0.0, referenceGflop = 0.0

    init(mode: String, reference: String?) {
        self.mode = mode
        self.reference = reference
    }

    mutating func add(_ result: ClipResult, _ other: ClipResult) {
        labels += 1
        if result.top[0].index == other.top[0].index { agreements += 1 }
        wall += result.wallSeconds
        referenceWall += other.wallSeconds
        gflop += result.gflopComputed
        referenceGflop += other.gflopComputed
        wallRatioSum += result.wallSeconds / max(other.wallSeconds, 1e-9)
        gflopRatioSum += result.gflopComputed / max(other.gflopComputed, 1e-12)
        var delta = 0.0
        for (p, q) in zip(result.probabilities, other.probabilities) { delta += Double(abs(p - q)) }
        meanAbsDeltaPSum += delta / Double(result.probabilities.count)
        let largest = other.logits.map(abs).max() ?? 0
        for (a, b) in zip(result.logits, other.logits) {
            maxRelativeLogitDelta = max(maxRelativeLogitDelta, abs(a - b) / max(largest, 1e-6))
        }
    }

    func print(jsonl: Bool) {
        guard labels > 0, let reference else {
            FileHandle.standardError.write(Data("tubelet: no labels to compare\n".utf8))
            return
        }
        let n = Double(labels)
        let summary: [String: Any] = [
            "mode": mode, "reference": reference, "labels": labels,
            "wall_ratio": wallRatioSum / n, "gflop_ratio": gflopRatioSum / n,
            "top1_agreement": Double(agreements) / n, "mean_abs_delta_p": meanAbsDeltaPSum / n,
            "max_relative_logit_delta": Double(maxRelativeLogitDelta),
            "wall_ms_per_label": wall / n * 1000, "reference_wall_ms_per_label": referenceWall / n * 1000,
            "gflop_per_label": gflop / n, "reference_gflop_per_label": referenceGflop / n,
        ]
        if jsonl {
            printJSON(["report": summary])
        } else {
            Swift.print(String(format: """
                reuse report: %@ beside %@ over %d labels
                  wall time per label   %.1f ms vs %.1f ms (mean ratio %.3f)
                  GFLOP per label       %.2f vs %.2f (mean ratio %.3f, saved %.1f%%)
                  top-1 agreement       %.1f%%
                  mean |Δp|             %.2e
                  max relative |Δlogit| %.2e
                """, mode, reference, labels, wall / n * 1000, referenceWall / n * 1000, wallRatioSum / n,
                gflop / n, referenceGflop / n, gflopRatioSum / n, 100 * (1 - gflop / max(referenceGflop, 1e-12)),
                100 * Double(agreements) / n, meanAbsDeltaPSum / n, Double(maxRelativeLogitDelta)))
        }
    }
}

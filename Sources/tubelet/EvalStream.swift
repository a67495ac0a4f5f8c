import ArgumentParser
import Foundation
import TubeletDaemon
import TubeletLoading
import TubeletStreaming

/// `tubelet eval-stream --model MODEL --video VIDEO --truth TIMELINE [--reuse kv] [--plot FILE.svg]`
struct EvalStream: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-stream",
        abstract: "Online metrics of a model streaming a video against its ground-truth timeline.",
        discussion: """
            The video is streamed clip after clip as the daemon would (same scheduler, same decision
            tracker: smoothing, min/end score, minimum duration). Detected actions are matched one to one
            with true segments of the same label at IoU >= 0.5; delay is from a segment's true start to its
            start event; frame accuracy compares the active action (or the background) at every sampled frame.
            """)

    @Option(help: "Tubelet model file.") var model: String
    @Option(help: "Video file.") var video: String
    @Option(help: "Ground-truth timeline JSON ({\"segments\": [{\"label\", \"start_s\", \"end_s\"}]}).") var truth: String
    @Option(help: "none, exact or kv.") var reuse = "kv"
    @Option(help: "Sampled frames per clip (default: the model's recipe).") var clipFrames: Int?
    @Option(help: "Keep every n-th decoded frame (default: the model's recipe).") var frameStride: Int?
    @Option(help: "Sampled frames between labels (default: a quarter of the clip).") var hop: Int?
    @Option(help: "Smoothed score at which an action starts.") var minScore = 0.5
    @Option(help: "Smoothed score below which it ends.") var endScore = 0.3
    @Option(help: "Smoothing: mean of the last N clips' probabilities.") var smoothing = 2
    @Option(help: "Seconds the score must hold before an action starts.") var minDuration = 0.0
    @Option(help: "The label that means no action.") var background = "idle"
    @Option(help: "Draw ground truth and detections on one timeline into this SVG file.") var plot: String?
    @Flag(help: "Print the metrics as one JSON object.") var json = false

    func run() throws {
        let loaded: TubeletModel
        do { loaded = try ModelFile.load(path: model) } catch { fail("\(error)") }
        let timeline: Timeline
        do { timeline = try Timeline.load(path: truth) } catch { fail("\(error)") }
        guard let mode = ReuseMode(rawValue: reuse) else { fail("unknown reuse mode '\(reuse)' (expected none, exact or kv)") }
        guard endScore <= minScore, smoothing >= 1 else { fail("--end-score must not exceed --min-score, and --smoothing must be at least 1") }
        let clip = clipFrames ?? loaded.preprocessing.frames
        let settings = WindowSettings(clipFrames: clip, frameStride: frameStride ?? loaded.preprocessing.frameStride,
                                      hop: hop ?? max(1, clip / 4), reuse: mode)
        let scheduler: ClipScheduler
        do { scheduler = try ClipScheduler(model: loaded, settings: settings) } catch { fail("\(error)") }
        var decisions = DecisionConfig()
        decisions.minScore = minScore
        decisions.endScore = endScore
        decisions.smoothing = .mean(clips: smoothing)
        decisions.minDuration = minDuration
        decisions.ignoreLabels = [background]
        let tracker = DecisionTracker(config: decisions, labels: (0..<loaded.numClasses).map(loaded.label))

        let reader: VideoFileReader
        do { reader = try VideoFileReader(path: video, geometry: scheduler.geometry, frameStride: settings.frameStride) } catch { fail("\(error)") }
        let total = reader.estimatedFrameCount
        let progress = TerminalProgress(title: "eval-stream")
        var detections: [DetectedAction] = []
        var open: [String: (startEvent: Double, start: Double)] = [:]
        var sampleTimes: [Double] = []
        var clipDuration = 0.0, lastClipEnd = 0.0, labels = 0, computeSeconds = 0.0
        func apply(_ transitions: [ActionTransition], centreOffset: Double, at time: Double) {
            for transition in transitions {
                switch transition.kind {
                case .start: open[transition.label] = (time, transition.startedAt - centreOffset)
                case .end:
                    if let started = open.removeValue(forKey: transition.label) {
                        detections.append(DetectedAction(label: transition.label, startEvent: started.startEvent,
                                                         start: started.start, end: (transition.endedAt ?? time) - centreOffset))
                    }
                case .update: break
                }
            }
        }
        while let frame = try reader.next() {
            sampleTimes.append(frame.timestamp)
            if let total { progress.update(reader.decodedCount, total) }
            guard let result = scheduler.push(frame: frame) else { continue }
            labels += 1
            computeSeconds += result.wallSeconds
            clipDuration = result.clipEnd - result.clipStart
            lastClipEnd = result.clipEnd
            apply(tracker.observe(probabilities: result.probabilities, clipEnd: result.clipEnd),
                  centreOffset: clipDuration / 2, at: result.clipEnd)
        }
        progress.finish()
        apply(tracker.endAll(reason: "end of video", at: lastClipEnd + clipDuration / 2), centreOffset: clipDuration / 2, at: lastClipEnd)
        let metrics = evaluate(detections: detections, truth: timeline, background: background, sampleTimes: sampleTimes)
        if let plot {
            let duration = max(sampleTimes.last ?? 0, timeline.segments.map(\.end).max() ?? 0)
            let title = String(format: "%@ on %@: F1 %.2f, median delay %.2f s, frame accuracy %.1f%% (%@ reuse)",
                               URL(fileURLWithPath: model).lastPathComponent, URL(fileURLWithPath: video).lastPathComponent,
                               metrics.f1, metrics.medianDelay ?? .nan, 100 * metrics.frameAccuracy, reuse)
            do {
                try timelineSVG(truth: timeline, detections: detections, background: background, duration: duration, title: title)
                    .write(toFile: plot, atomically: true, encoding: .utf8)
            } catch { fail("\(plot): cannot write the plot: \(error)") }
        }
        if json {
            var object = metrics.json
            object["reuse"] = reuse
            object["labels"] = labels
            object["compute_ms_per_label"] = labels > 0 ? computeSeconds / Double(labels) * 1000 : 0
            printJSON(object)
        } else {
            print(String(format: """
                %d true actions, %d detected, %d matched (IoU >= 0.5)
                precision %.3f  recall %.3f  F1 %.3f
                start delay: median %@ s, p90 %@ s
                frame accuracy %.1f%% over %d sampled frames
                %d labels (%@ reuse), %.1f ms compute per label
                """, metrics.truthSegments, metrics.detections, metrics.matched, metrics.precision, metrics.recall, metrics.f1,
                metrics.medianDelay.map { String(format: "%.2f", $0) } ?? "-", metrics.p90Delay.map { String(format: "%.2f", $0) } ?? "-",
                100 * metrics.frameAccuracy, sampleTimes.count, labels, reuse, labels > 0 ? computeSeconds / Double(labels) * 1000 : 0))
        }
    }
}

import ArgumentParser
import Foundation
import TubeletDaemon
import TubeletLoading
import TubeletStreaming

/// `tubelet eval-stream (--config DAEMON.yaml [--camera ID] | --model MODEL --video VIDEO) --truth TIMELINE [--reuse kv] [--plot FILE.svg]`
struct EvalStream: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-stream",
        abstract: "Online metrics of a model streaming a video against its ground-truth timeline.",
        discussion: """
            The video is streamed clip after clip as the daemon would (same scheduler, same decision
            tracker: smoothing, min/end score, minimum duration). Detected actions are matched one to one
            with true segments of the same label at IoU >= 0.5; delay is from a segment's true start to its
            start event; frame accuracy compares the active action (or the background) at every sampled frame.
            With --config, the model, the video, the window and the decisions are the ones tubeletd gives
            that camera (so `--config Config/demo.yaml` measures exactly what the demo shows); any option
            given on the command line overrides its value.
            """)

    @Option(help: "A tubeletd config: take the camera's model, source, window and decisions from it.") var config: String?
    @Option(help: "The camera of --config (default: its first).") var camera: String?
    @Option(help: "Tubelet model file.") var model: String?
    @Option(help: "Video file.") var video: String?
    @Option(help: "Ground-truth timeline JSON ({\"segments\": [{\"label\", \"start_s\", \"end_s\"}]}).") var truth: String
    @Option(help: "none, exact or kv (default: the config's, else kv).") var reuse: String?
    @Option(help: "Sampled frames per clip (default: the config's, else the model's recipe).") var clipFrames: Int?
    @Option(help: "Keep every n-th decoded frame (default: the config's, else the model's recipe).") var frameStride: Int?
    @Option(help: "Sampled frames between labels (default: the config's, else a quarter of the clip).") var hop: Int?
    @Option(help: "Smoothed score at which an action starts (default: the config's, else 0.5).") var minScore: Double?
    @Option(help: "Smoothed score below which it ends (default: the config's, else 0.3).") var endScore: Double?
    @Option(help: "Smoothing: mean of the last N clips' probabilities (default: the config's, else 2).") var smoothing: Int?
    @Option(help: "Seconds the score must hold before an action starts (default: the config's, else 0).") var minDuration: Double?
    @Option(help: "The label that means no action (never starts one).") var background = "idle"
    @Option(help: "Draw ground truth and detections on one timeline into this SVG file.") var plot: String?
    @Flag(help: "Print the metrics as one JSON object.") var json = false

    func run() throws {
        // Without --config: the defaults below; with it, the camera's settings exactly as tubeletd reads them.
        var window = WindowConfig(), decisions = DecisionConfig(), modelPath = model, videoPath = video
        window.reuse = "kv"
        decisions.smoothing = .mean(clips: 2)
        if let config {
            let daemon: DaemonConfig
            do { daemon = try DaemonConfig.load(path: config) } catch { fail("\(error)") }
            guard let chosen = camera == nil ? daemon.cameras.first : daemon.camera(id: camera!) else {
                fail("\(config): no camera '\(camera ?? "")' (cameras: \(daemon.cameras.map(\.id).joined(separator: ", ")))")
            }
            window = chosen.window
            decisions = chosen.decisions
            modelPath = modelPath ?? daemon.model(id: chosen.model)?.file
            videoPath = videoPath ?? chosen.source
        }
        guard let modelPath, let videoPath else { fail("give --model and --video, or --config with a camera whose source is a file") }
        let loaded: TubeletModel
        do { loaded = try ModelFile.load(path: modelPath) } catch { fail("\(error)") }
        let timeline: Timeline
        do { timeline = try Timeline.load(path: truth) } catch { fail("\(error)") }
        if let reuse { window.reuse = reuse }
        guard ReuseMode(rawValue: window.reuse) != nil else { fail("unknown reuse mode '\(window.reuse)' (expected none, exact or kv)") }
        if let clipFrames { window.clipFrames = clipFrames }
        if let frameStride { window.frameStride = frameStride }
        if let hop { window.hop = hop } else if config == nil { window.hop = max(1, (window.clipFrames ?? loaded.preprocessing.frames) / 4) }
        let settings = windowSettings(window, model: loaded)
        let scheduler: ClipScheduler
        do { scheduler = try ClipScheduler(model: loaded, settings: settings) } catch { fail("\(error)") }
        if let minScore { decisions.minScore = minScore }
        if let endScore { decisions.endScore = endScore }
        if let smoothing { decisions.smoothing = .mean(clips: smoothing) }
        if let minDuration { decisions.minDuration = minDuration }
        if !decisions.ignoreLabels.contains(background) { decisions.ignoreLabels.append(background) }
        guard decisions.endScore <= decisions.minScore, smoothing ?? 1 >= 1 else {
            fail("the end score must not exceed the min score, and --smoothing must be at least 1")
        }
        let reuse = window.reuse
        let tracker = DecisionTracker(config: decisions, labels: (0..<loaded.numClasses).map(loaded.label))

        let reader: VideoFileReader
        do { reader = try VideoFileReader(path: videoPath, geometry: scheduler.geometry, frameStride: settings.frameStride) } catch { fail("\(error)") }
        let total = reader.estimatedFrameCount
        let progress = TerminalProgress(title: "eval-stream")
        var detections: [DetectedAction] = []
        var open: [String: (startEvent: Double, start: Double)] = [:]
        var sampleTimes: [Double] = []
        var clipDuration = 0.0, lastClipEnd = 0.0, labels = 0, computeSeconds = 0.0, gflop = 0.0, gflopFullClip = 0.0
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
            gflop += result.gflopComputed
            gflopFullClip = result.gflopFullClip
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
                               URL(fileURLWithPath: modelPath).lastPathComponent, URL(fileURLWithPath: videoPath).lastPathComponent,
                               metrics.f1, metrics.medianDelay ?? .nan, 100 * metrics.frameAccuracy, reuse)
            do {
                try timelineSVG(truth: timeline, detections: detections, background: background, duration: duration, title: title)
                    .write(toFile: plot, atomically: true, encoding: .utf8)
            } catch { fail("\(plot): cannot write the plot: \(error)") }
        }
        let msPerLabel = labels > 0 ? computeSeconds / Double(labels) * 1000 : 0
        let gflopPerLabel = labels > 0 ? gflop / Double(labels) : 0
        if json {
            var object = metrics.json
            object["reuse"] = reuse
            object["hop"] = settings.hop
            object["clip_frames"] = settings.clipFrames
            object["labels"] = labels
            object["compute_ms_per_label"] = msPerLabel
            object["gflop_per_label"] = gflopPerLabel
            object["gflop_full_clip"] = gflopFullClip
            printJSON(object)
        } else {
            print(String(format: """
                %d true actions, %d detected, %d matched (IoU >= 0.5)
                precision %.3f  recall %.3f  F1 %.3f
                start delay: median %@ s, p90 %@ s
                frame accuracy %.1f%% over %d sampled frames
                %d labels (%@ reuse, hop %d of %d frames): %.2f ms and %.4f GFLOP per label (a full clip: %.4f GFLOP)
                """, metrics.truthSegments, metrics.detections, metrics.matched, metrics.precision, metrics.recall, metrics.f1,
                metrics.medianDelay.map { String(format: "%.2f", $0) } ?? "-", metrics.p90Delay.map { String(format: "%.2f", $0) } ?? "-",
                100 * metrics.frameAccuracy, sampleTimes.count, labels, reuse, settings.hop, settings.clipFrames, msPerLabel, gflopPerLabel,
                gflopFullClip))
        }
    }
}

import Foundation
import Logging
import TubeletLoading
import TubeletStreaming

/// A loaded model with its id and what identifies the file it came from (to notice a replaced file on reload).
public struct LoadedModel: @unchecked Sendable {
    public var id: String
    public var model: TubeletModel
    public var fileIdentity: String

    public static func load(_ config: ModelConfig) throws -> LoadedModel {
        LoadedModel(id: config.id, model: try ModelFile.load(path: config.file), fileIdentity: fileIdentity(config.file))
    }

    public static func fileIdentity(_ path: String) -> String {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        let size = (attributes?[.size] as? NSNumber)?.int64Value ?? -1
        let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return "\(path)|\(size)|\(modified)"
    }
}

/// The window settings a camera runs with: its config, with the model's recipe where the config leaves it open.
public func windowSettings(_ window: WindowConfig, model: TubeletModel) -> WindowSettings {
    WindowSettings(clipFrames: window.clipFrames ?? model.preprocessing.frames, frameStride: window.frameStride ?? model.preprocessing.frameStride,
                   hop: window.hop, reuse: ReuseMode(rawValue: window.reuse) ?? .none, refresh: window.refresh, approximate: window.approximate)
}

/// The capture options a camera runs with.
public func captureOptions(_ camera: CameraConfig, settings: WindowSettings, geometry: FrameGeometry) -> CaptureOptions {
    var options = CaptureOptions(url: camera.source, geometry: geometry)
    let c = camera.capture
    options.transport = c.transport == "udp" ? .udp : .tcp
    options.connectTimeout = c.connectTimeout
    options.readTimeout = c.readTimeout
    options.stallTimeout = c.stallTimeout
    options.backoffFirst = c.backoffFirst
    options.backoffCap = c.backoffCap
    options.ringCapacity = c.ringFrames
    options.realtime = c.realtime
    options.loop = c.loop
    options.v4l2 = V4L2Options(width: c.width, height: c.height, fps: c.fps)
    // The capture thread samples; the scheduler gets every frame it keeps.
    if let fps = c.sampleFPS {
        options.sampling = .fps(fps)
    } else {
        options.sampling = settings.frameStride > 1 ? .frameStride(settings.frameStride) : .everyFrame
    }
    return options
}

/// One camera: capture on its thread into a ring; on another thread the clip scheduler (preprocessing,
/// embeddings, reuse), the network pass of each due clip on the model's shared `InferenceWorker`
/// (batched with other cameras' clips due at the same time), decisions, events.
final class CameraPipeline: @unchecked Sendable {
    let camera: CameraConfig
    /// Frames arrive at the source's pace (a camera, a stream, or a file played in real time), so falling
    /// behind means a backlog; a file read as fast as it decodes is never behind.
    var paced: Bool { camera.capture.realtime || camera.source.contains("://") || camera.source.hasPrefix("/dev/") }
    let model: LoadedModel
    let settings: WindowSettings
    let worker: InferenceWorker
    private let publisher: EventPublisher
    private let logger: Logger
    private let source: CaptureSource
    private let scheduler: ClipScheduler
    // Guarded by `lock`:
    private let lock = NSCondition()
    private var tracker: DecisionTracker
    private var stats = PipelineStats()
    private var stopping = false
    private var inferenceDone = false
    private var discontinuity = false
    /// Breaks in the stream (stalled, offline, ...) the inference thread has not reached yet: the
    /// frames captured before one (`framesBefore` of them) are still classified, then open actions
    /// end and the next clip starts afresh. A file decoded faster than inference used to end its
    /// actions at end of file while clips of its last seconds were still to come.
    private var pendingBreaks: [(framesBefore: UInt64, reason: String, at: Double)] = []
    private var state: SourceState = .connecting
    private var stateReason: String?

    /// Builds everything (a bad window setting for this model throws here, before anything runs).
    init(camera: CameraConfig, model: LoadedModel, worker: InferenceWorker, publisher: EventPublisher, logger: Logger) throws {
        self.camera = camera
        self.model = model
        self.worker = worker
        self.publisher = publisher
        var logger = logger
        logger[metadataKey: "camera"] = "\(camera.id)"
        self.logger = logger
        settings = windowSettings(camera.window, model: model.model)
        // Every class ranked: top_k is a decision setting, applied when publishing (it may change on reload).
        do {
            scheduler = try ClipScheduler(model: model.model, settings: settings, topK: model.model.numClasses)
        } catch {
            throw PipelineError(description: "cameras.\(camera.id) (model \(model.id)): \(error)")
        }
        let options = captureOptions(camera, settings: settings, geometry: ClipScheduler.geometry(for: model.model))
        tracker = DecisionTracker(config: camera.decisions, labels: (0..<model.model.numClasses).map(model.model.label))
        let box = WeakBox()
        source = CaptureSource(options: options) { change in box.pipeline?.stateChanged(change) }
        box.pipeline = self
    }

    private final class WeakBox: @unchecked Sendable { weak var pipeline: CameraPipeline? }

    func start() {
        let reader = source.ring.makeReader()
        worker.register()
        let thread = Thread { [self] in runInference(reader) }
        thread.name = "clips-\(camera.id)"
        thread.start()
        source.start()
    }

    /// Stops capture and inference, then ends open actions with `reason`. Returns within about `timeout` seconds.
    func stop(reason: String, timeout: Double = 2) {
        lock.lock()
        stopping = true
        lock.unlock()
        source.stop(timeout: timeout)
        source.ring.close()
        lock.lock()
        let deadline = Date(timeIntervalSinceNow: timeout)
        while !inferenceDone && lock.wait(until: deadline) {}
        let ended = tracker.endAll(reason: reason, at: CaptureClock.now())
        let wasOffline: Bool
        if case .offline = state { wasOffline = true } else { wasOffline = false }
        state = .offline(reason: reason)
        lock.unlock()
        publish(ended, clip: nil)
        // The capture thread reports nothing once stopped: say so, so that dashboards do not keep the camera "streaming".
        if !wasOffline {
            publisher.publish(topic: "\(camera.id).status", kind: "status",
                              ["camera": camera.id, "state": "offline", "reason": reason, "source": source.name, "timestamp": CaptureClock.now()])
        }
        if reason == "removed" { publisher.forgetStatus(topic: "\(camera.id).status") }
    }

    /// New decision settings, without touching capture or inference.
    func updateDecisions(_ decisions: DecisionConfig) {
        lock.lock()
        let ended = tracker.update(config: decisions, at: CaptureClock.now())
        lock.unlock()
        publish(ended, clip: nil)
    }

    var sourceState: SourceState {
        lock.lock(); defer { lock.unlock() }
        return state
    }

    var captureCounters: CaptureCounters { source.counters }

    var pipelineStats: PipelineStats {
        lock.lock(); defer { lock.unlock() }
        return stats
    }

    var openActions: Int {
        lock.lock(); defer { lock.unlock() }
        return tracker.openActions
    }

    // MARK: Capture state (capture thread)

    private func stateChanged(_ change: SourceStateChange) {
        lock.lock()
        if stopping { lock.unlock(); return }  // stop() reports the end itself
        state = change.state
        if change.state != .streaming && change.state != .connecting {
            // The stream broke: what the model saw before and after are different clips. The
            // inference thread applies the break (and ends open actions) once it has read every
            // frame captured before it.
            pendingBreaks.append((source.ring.producedCount, change.state.name, change.timestamp))
        }
        lock.unlock()
        var fields: [String: Any] = ["camera": camera.id, "state": change.state.name, "source": change.source,
                                     "timestamp": change.timestamp]
        if let previous = change.previous { fields["previous"] = previous.name }
        switch change.state {
        case .stalled(let reason), .offline(let reason): fields["reason"] = reason
        default: break
        }
        publisher.publish(topic: "\(camera.id).status", kind: "status", fields)
    }

    // MARK: Inference (its own thread)

    private func runInference(_ reader: FrameRingReader) {
        defer {
            worker.unregister()
            lock.lock()
            inferenceDone = true
            lock.broadcast()
            lock.unlock()
        }
        while true {
            lock.lock()
            if stopping { lock.unlock(); return }
            var ended: [ActionTransition] = []
            while let pending = pendingBreaks.first, reader.position >= pending.framesBefore {
                pendingBreaks.removeFirst()
                discontinuity = true
                ended += tracker.endAll(reason: pending.reason, at: pending.at)
            }
            if !ended.isEmpty {
                lock.unlock()
                publish(ended, clip: nil)
                lock.lock()
            }
            if discontinuity {
                discontinuity = false
                lock.unlock()
                scheduler.reset()
            } else {
                lock.unlock()
            }
            // Behind when the frames for the next clip are already captured: a clip falling due now
            // is stale, skipped (counted) instead of computed, so that no backlog builds up. A file read
            // as fast as it decodes (realtime: false) is always ahead; there every clip is computed.
            let stale = paced && reader.backlog > UInt64(settings.hop)
            // When inference got the frame: taken before pushing it, since pushing may embed it.
            let result = reader.withNext(timeout: 0.2) { view in
                let readAt = CaptureClock.now()
                return (scheduler.pushDeferred(frame: view, skipIfDue: stale), readAt)
            }
            guard let (due, frameReadAt) = result else { continue }
            lock.lock()
            stats.framesProcessed += 1
            stats.clipsSkipped = UInt64(scheduler.skippedClips)
            lock.unlock()
            guard let due, let clip = worker.evaluate(due) else { continue }
            lock.lock()
            stats.clips += 1
            stats.gflopComputed += clip.gflopComputed
            stats.gflopFullClip += clip.gflopFullClip
            stats.inferenceSeconds.observe(clip.wallSeconds)
            let transitions = tracker.observe(probabilities: clip.probabilities, clipEnd: clip.clipEnd)
            stats.actionsStarted += UInt64(transitions.filter { $0.kind == .start }.count)
            lock.unlock()
            // Latency counts from the clip's last frame: its capture timestamp, or when inference got it if
            // that is earlier (a live source's timestamps come from its PTS and may run slightly ahead).
            let lastFrameAt = min(clip.clipEnd, frameReadAt)
            let latency = publish(transitions, clip: clip, lastFrameAt: lastFrameAt)
            lock.lock()
            stats.clipLatency.observe(latency ?? max(0, CaptureClock.now() - lastFrameAt))
            lock.unlock()
        }
    }

    /// Publishes action transitions; returns the latency (last frame to publish) of the last one.
    @discardableResult
    private func publish(_ transitions: [ActionTransition], clip: ClipResult?, lastFrameAt: Double = 0) -> Double? {
        var latency: Double?
        for t in transitions {
            var fields: [String: Any] = [
                "type": t.kind.rawValue, "camera": camera.id, "event_id": t.eventID, "label": t.label, "label_index": t.labelIndex,
                "score": t.score, "started_at": t.startedAt, "model": model.id,
            ]
            if let clip {
                fields["clip"] = ["start": clip.clipStart, "end": clip.clipEnd, "sequence": clip.sequence] as [String: Any]
                let topK = lock.withLock { tracker.config.topK }
                fields["top"] = clip.top.prefix(topK).map {
                    ["index": $0.index, "label": $0.label, "score": Double($0.score)] as [String: Any]
                }
                let now = CaptureClock.now()
                latency = max(0, now - lastFrameAt)
                fields["latency_ms"] = latency! * 1000
                fields["timestamp"] = now
            }
            if let reason = t.reason { fields["reason"] = reason }
            if let endedAt = t.endedAt {
                fields["ended_at"] = endedAt
                fields["duration"] = max(0, endedAt - t.startedAt)
            }
            publisher.publish(topic: "\(camera.id).action", kind: "action", fields)
        }
        return latency
    }
}

/// A camera whose settings do not suit its model (found when its pipeline is built).
public struct PipelineError: Error, CustomStringConvertible {
    public var description: String
}

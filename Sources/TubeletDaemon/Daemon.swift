import Foundation
import Logging
import TubeletStreaming

/// The running daemon: the event publisher, the metrics server, the models and one pipeline per camera.
/// `start`, `reload` and `stop` block (model loading, thread joins): call them from a thread of their own,
/// not from Swift's cooperative pool. They are serialised among themselves.
public final class Daemon: @unchecked Sendable {
    public struct ReloadOutcome: Sendable {
        public var succeeded: Bool
        public var error: String?
        public var added: [String] = []
        public var removed: [String] = []
        public var restarted: [String] = []
        public var updated: [String] = []
    }

    public let logger: Logger
    private let notifier: SystemdNotifier
    private let operations = NSLock()  // one start / reload / stop at a time
    // Guarded by `lock` (metrics and health read them from the HTTP thread):
    private let lock = NSLock()
    private var config: DaemonConfig
    private var publisher: EventPublisher?
    private var http: HTTPServer?
    private var models: [String: LoadedModel] = [:]
    private var pipelines: [CameraPipeline] = []
    /// One inference worker per loaded model (keyed by `workerKey`), shared by its cameras.
    private var workers: [String: InferenceWorker] = [:]
    private var retired: [String: (capture: CaptureTotals, stats: PipelineStats)] = [:]
    private var retiredBatches: [String: BatchStats] = [:]
    private var reloads: [String: UInt64] = ["ok": 0, "failed": 0]
    private var stopped = false
    /// Where the outcome of each (re)load is written for `tubeletd --reload` (ReloadStatus); nil: nowhere.
    private let reloadStatusPath: String?
    private var reloadGeneration: UInt64 = 0

    public init(config: DaemonConfig, logger: Logger, notifier: SystemdNotifier = SystemdNotifier(),
                reloadStatusPath: String? = nil) {
        self.config = config
        self.logger = logger
        self.notifier = notifier
        self.reloadStatusPath = reloadStatusPath
    }

    /// True when the daemon's state lock can be taken within `timeout` seconds: what the systemd watchdog
    /// asks before each keep-alive, so that a deadlocked daemon is killed and restarted.
    public func isResponsive(timeout: Double) -> Bool {
        guard lock.lock(before: Date().addingTimeInterval(timeout)) else { return false }
        lock.unlock()
        return true
    }

    /// Test-only fault (`TUBELET_FAULT=hang-after:SECONDS`): takes the state lock and never gives it back,
    /// as a deadlock would, so that the watchdog test can see systemd kill and restart the daemon.
    public func injectHang() {
        lock.lock()
        logger.critical("fault injected: the daemon's state lock is held forever")
    }

    /// Writes the reload status file: generation 0 at start, one more for every reload that succeeded or
    /// failed. A write failure is logged, never fatal (the reload itself happened).
    private func recordLoad(isReload: Bool, succeeded: Bool, message: String) {
        guard let reloadStatusPath else { return }
        let status = lock.withLock { () -> ReloadStatus in
            if isReload { reloadGeneration += 1 }
            return ReloadStatus(generation: reloadGeneration, succeeded: succeeded, message: message)
        }
        do { try status.write(to: reloadStatusPath) } catch {
            logger.error("cannot write the reload status \(reloadStatusPath): \(error)")
        }
    }

    public var currentConfig: DaemonConfig { lock.lock(); defer { lock.unlock() }; return config }
    /// The events endpoint actually bound (port resolved).
    public var eventsEndpoint: String? { lock.lock(); defer { lock.unlock() }; return publisher?.boundEndpoint }
    public var metricsPort: Int? { lock.lock(); defer { lock.unlock() }; return http?.port }

    /// Binds the sockets, loads the models, starts every camera, publishes `started` and tells systemd READY=1.
    public func start() throws {
        operations.lock(); defer { operations.unlock() }
        let config = currentConfig
        let publisher = try EventPublisher(config: config.events, logger: logger)
        var http: HTTPServer?
        do {
            if let listen = config.metrics.listen {
                http = try HTTPServer(listen: HostPort(listen)!) { [weak self] path in
                    self?.respond(path) ?? .init(status: 503, body: "stopping\n")
                }
            }
            var models: [String: LoadedModel] = [:]
            for id in Set(config.cameras.map(\.model)).sorted() {
                let modelConfig = config.model(id: id)!
                logger.info("loading model \(id) from \(modelConfig.file)")
                models[id] = try LoadedModel.load(modelConfig)
            }
            var workers: [String: InferenceWorker] = [:]
            let pipelines = try config.cameras.map { camera in
                let model = models[camera.model]!
                return try CameraPipeline(camera: camera, model: model, worker: worker(for: model, config, &workers),
                                          publisher: publisher, logger: logger)
            }
            lock.lock()
            self.publisher = publisher
            self.http = http
            self.models = models
            self.pipelines = pipelines
            self.workers = workers
            lock.unlock()
        } catch {
            publisher.stop(timeout: 0)
            throw error
        }
        publisher.start()
        http?.start()
        publisher.publish(topic: "daemon", kind: "daemon", daemonFields("started", config: config))
        for pipeline in pipelines { pipeline.start() }
        let status = "\(config.cameras.count) camera\(config.cameras.count == 1 ? "" : "s"), events on \(publisher.boundEndpoint ?? config.events.connect.joined(separator: ", "))"
        logger.info("started: \(status)")
        recordLoad(isReload: false, succeeded: true, message: "started: \(status)")
        notifier.ready(status: status)
    }

    /// Reads the config file again and applies the difference; on any error the running configuration stays as it was.
    @discardableResult
    public func reload() -> ReloadOutcome {
        operations.lock(); defer { operations.unlock() }
        notifier.reloading()
        let old = currentConfig
        let outcome: ReloadOutcome
        do {
            outcome = try apply(try DaemonConfig.load(path: old.path), old: old)
        } catch {
            let message = "\(error)"
            logger.error("reload failed, keeping the running configuration: \(message)")
            var fields = daemonFields("reload_failed", config: old)
            fields["error"] = message
            publisher?.publish(topic: "daemon", kind: "daemon", fields)
            lock.lock(); reloads["failed", default: 0] += 1; lock.unlock()
            recordLoad(isReload: true, succeeded: false, message: message)
            notifier.ready(status: "reload failed: \(message)")
            return ReloadOutcome(succeeded: false, error: message)
        }
        return outcome
    }

    private func apply(_ new: DaemonConfig, old: DaemonConfig) throws -> ReloadOutcome {
        guard let publisher else { throw ReloadError("the daemon is not running") }
        // Models: keep those whose file is the same, load the others before anything is touched.
        var models: [String: LoadedModel] = [:]
        let current = lock.withLock { self.models }
        for id in Set(new.cameras.map(\.model)).sorted() {
            let modelConfig = new.model(id: id)!
            if let loaded = current[id], loaded.fileIdentity == LoadedModel.fileIdentity(modelConfig.file) {
                models[id] = loaded
            } else {
                logger.info("loading model \(id) from \(modelConfig.file)")
                models[id] = try LoadedModel.load(modelConfig)
            }
        }
        // Decide each camera's fate, and build the new pipelines (which may throw) before stopping any.
        var outcome = ReloadOutcome(succeeded: true)
        var keep: [String: CameraPipeline] = [:]
        var fresh: [String: CameraPipeline] = [:]
        let running = lock.withLock { self.pipelines }
        var workers = lock.withLock { self.workers }
        for camera in new.cameras {
            let model = models[camera.model]!
            if let pipeline = running.first(where: { $0.camera.id == camera.id }), let before = old.camera(id: camera.id) {
                let sameCapture = before.source == camera.source && before.capture == camera.capture && before.window == camera.window
                let sameModel = before.model == camera.model && pipeline.model.fileIdentity == model.fileIdentity
                if sameCapture && sameModel {
                    keep[camera.id] = pipeline
                    if before.decisions != camera.decisions { outcome.updated.append(camera.id) }
                    continue
                }
                outcome.restarted.append(camera.id)
            } else {
                outcome.added.append(camera.id)
            }
            fresh[camera.id] = try CameraPipeline(camera: camera, model: model, worker: worker(for: model, new, &workers),
                                                  publisher: publisher, logger: logger)
        }
        outcome.removed = running.map(\.camera.id).filter { id in !new.cameras.contains { $0.id == id } }

        // Apply: stop what goes, update decisions in place, start what is new.
        let stopping = running.filter { keep[$0.camera.id] == nil }
        stopAll(stopping) { outcome.removed.contains($0.camera.id) ? "removed" : "reconfigured" }
        for id in outcome.updated { keep[id]!.updateDecisions(new.camera(id: id)!.decisions) }
        var restartRequired: [String] = []
        if new.events != old.events { restartRequired.append("events") }
        if new.metrics != old.metrics { restartRequired.append("metrics") }
        if new.logging != old.logging { restartRequired.append("logging") }
        var applied = new
        applied.events = old.events
        applied.metrics = old.metrics
        applied.logging = old.logging
        lock.lock()
        for pipeline in stopping { retire(pipeline) }
        self.models = models
        self.pipelines = new.cameras.map { keep[$0.id] ?? fresh[$0.id]! }
        // Workers no camera uses any more end; the others take the new batch_wait.
        let used = Set(self.pipelines.map { ObjectIdentifier($0.worker) })
        for (key, worker) in workers where !used.contains(ObjectIdentifier(worker)) {
            worker.stop()
            retiredBatches[worker.name, default: BatchStats()].merge(worker.batchStats)
            workers[key] = nil
        }
        for pipeline in self.pipelines { pipeline.worker.batchWait = new.model(id: pipeline.model.id)!.batchWait }
        self.workers = workers
        self.config = applied
        reloads["ok", default: 0] += 1
        lock.unlock()
        for camera in new.cameras { fresh[camera.id]?.start() }

        var fields = daemonFields("reloaded", config: applied)
        fields["added"] = outcome.added
        fields["removed"] = outcome.removed
        fields["restarted"] = outcome.restarted
        fields["updated"] = outcome.updated
        if !restartRequired.isEmpty {
            fields["restart_required"] = restartRequired
            logger.warning("changes to \(restartRequired.joined(separator: ", ")) take effect after a restart")
        }
        publisher.publish(topic: "daemon", kind: "daemon", fields)
        let summary = "added \(outcome.added), removed \(outcome.removed), restarted \(outcome.restarted), decisions updated \(outcome.updated)"
        logger.info("reloaded: \(summary)")
        recordLoad(isReload: true, succeeded: true, message: "reloaded: \(summary)")
        notifier.ready(status: "\(new.cameras.count) cameras; reloaded: \(summary)")
        return outcome
    }

    /// Stops capture, publishes the end of every open action and `stopping`, closes the sockets.
    public func stop() {
        operations.lock(); defer { operations.unlock() }
        lock.lock()
        guard !stopped, let publisher else { lock.unlock(); return }
        stopped = true
        let pipelines = self.pipelines
        let config = self.config
        lock.unlock()
        notifier.stopping()
        logger.info("stopping")
        stopAll(pipelines) { _ in "stopping" }
        for worker in lock.withLock({ self.workers.values }) { worker.stop() }
        publisher.publish(topic: "daemon", kind: "daemon", daemonFields("stopping", config: config))
        publisher.stop(timeout: 1.5)
        lock.lock()
        let http = self.http
        lock.unlock()
        http?.stop()
        logger.info("stopped")
    }

    /// Stops pipelines in parallel: each takes up to its capture timeout, together no longer than the slowest.
    private func stopAll(_ pipelines: [CameraPipeline], reason: @escaping (CameraPipeline) -> String) {
        let group = DispatchGroup()
        for pipeline in pipelines {
            group.enter()
            let why = reason(pipeline)
            let thread = Thread {
                pipeline.stop(reason: why)
                group.leave()
            }
            thread.name = "stop-\(pipeline.camera.id)"
            thread.start()
        }
        // Bounded so that SIGTERM ends within 5 s (3 s here, 1.5 s for the last messages).
        _ = group.wait(timeout: .now() + 3)
    }

    /// The inference worker of `model` in `workers`, made (with the model's batch_wait) if there is none yet.
    private func worker(for model: LoadedModel, _ config: DaemonConfig, _ workers: inout [String: InferenceWorker]) -> InferenceWorker {
        let key = "\(model.id)|\(model.fileIdentity)"
        if let worker = workers[key] { return worker }
        let worker = InferenceWorker(name: model.id, batchWait: config.model(id: model.id)!.batchWait)
        workers[key] = worker
        return worker
    }

    private func retire(_ pipeline: CameraPipeline) {
        var totals = retired[pipeline.camera.id] ?? (CaptureTotals(), PipelineStats())
        totals.capture.add(pipeline.captureCounters)
        totals.stats.merge(pipeline.pipelineStats)
        retired[pipeline.camera.id] = totals
    }

    private func daemonFields(_ type: String, config: DaemonConfig) -> [String: Any] {
        ["type": type, "pid": Int(getpid()), "host": ProcessInfo.processInfo.hostName, "config": config.path,
         "cameras": config.cameras.map(\.id), "models": config.models.map(\.id)]
    }

    // MARK: Health and metrics (HTTP thread)

    /// Each camera's id and state; ok when all are streaming.
    public func health() -> (ok: Bool, cameras: [(id: String, state: SourceState)]) {
        let pipelines = lock.withLock { self.pipelines }
        let states = pipelines.map { ($0.camera.id, $0.sourceState) }
        return (!states.isEmpty && states.allSatisfy { $0.1 == .streaming }, states)
    }

    func respond(_ path: String) -> HTTPServer.Response {
        switch path {
        case "/metrics":
            return .init(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metricsText())
        case "/healthz":
            let (ok, cameras) = health()
            let lines = cameras.map { "\($0.id) \($0.state)" }.joined(separator: "\n")
            return .init(status: ok ? 200 : 503, body: (ok ? "ok\n" : "unhealthy\n") + lines + "\n")
        default:
            return .init(status: 404, body: "not found: try /metrics or /healthz\n")
        }
    }

    public func metricsText() -> String {
        lock.lock()
        let pipelines = self.pipelines
        let retired = self.retired
        let reloads = self.reloads
        let publisher = self.publisher
        var batches = retiredBatches
        for worker in workers.values { batches[worker.name, default: BatchStats()].merge(worker.batchStats) }
        lock.unlock()
        typealias Row = (id: String, capture: CaptureTotals, stats: PipelineStats, up: Bool, open: Int)
        var rows: [Row] = []
        var ids = pipelines.map(\.camera.id)
        for id in retired.keys.sorted() where !ids.contains(id) { ids.append(id) }
        for id in ids {
            var capture = retired[id]?.capture ?? CaptureTotals()
            var stats = retired[id]?.stats ?? PipelineStats()
            var up = false, open = 0
            if let pipeline = pipelines.first(where: { $0.camera.id == id }) {
                capture.add(pipeline.captureCounters)
                stats.merge(pipeline.pipelineStats)
                up = pipeline.sourceState == .streaming
                open = pipeline.openActions
            }
            rows.append((id, capture, stats, up, open))
        }
        var out = PrometheusText()
        func perCamera(_ name: String, _ type: String, _ help: String, _ value: (Row) -> Double) {
            out.describe(name, type, help)
            for row in rows { out.sample(name, [("camera", row.id)], value(row)) }
        }
        perCamera("tubelet_frames_captured_total", "counter", "Frames decoded from the camera.") { Double($0.capture.framesDecoded) }
        perCamera("tubelet_frames_sampled_total", "counter", "Decoded frames kept by the frame-stride / fps sampler and converted.") { Double($0.capture.framesConverted) }
        perCamera("tubelet_frames_processed_total", "counter", "Frames given to the clip scheduler.") { Double($0.stats.framesProcessed) }
        perCamera("tubelet_frames_dropped_total", "counter", "Frames inference fell too far behind to see (overwritten in the ring).") { Double($0.capture.framesDroppedByReaders) }
        perCamera("tubelet_decode_errors_total", "counter", "Packets or pictures the decoder rejected.") { Double($0.capture.decodeErrors) }
        perCamera("tubelet_reconnects_total", "counter", "Times streaming resumed after the camera was lost.") { Double($0.capture.reconnects) }
        perCamera("tubelet_clips_total", "counter", "Clips classified.") { Double($0.stats.clips) }
        perCamera("tubelet_clips_skipped_total", "counter", "Clips that fell due while inference was a whole hop behind, skipped.") { Double($0.stats.clipsSkipped) }
        perCamera("tubelet_gflop_computed_total", "counter", "GFLOP computed for clips.") { $0.stats.gflopComputed }
        perCamera("tubelet_reuse_gflop_saved_total", "counter", "GFLOP not computed thanks to reuse between overlapping clips.") { max(0, $0.stats.gflopFullClip - $0.stats.gflopComputed) }
        perCamera("tubelet_camera_up", "gauge", "1 while the camera is streaming.") { $0.up ? 1 : 0 }
        perCamera("tubelet_open_actions", "gauge", "Actions started and not yet ended.") { Double($0.open) }
        out.describe("tubelet_clip_latency_seconds", "histogram", "From a clip's last frame to its result being published.")
        for row in rows { out.histogram("tubelet_clip_latency_seconds", [("camera", row.id)], row.stats.clipLatency) }
        out.describe("tubelet_inference_seconds", "histogram", "Model time per clip.")
        for row in rows { out.histogram("tubelet_inference_seconds", [("camera", row.id)], row.stats.inferenceSeconds) }
        out.describe("tubelet_batch_size", "histogram", "Clips per network pass of a model's inference worker (clips of its cameras due together share one pass).")
        for model in batches.keys.sorted() { out.histogram("tubelet_batch_size", [("model", model)], batches[model]!.passSize) }
        let events = publisher?.counters ?? EventPublisher.Counters()
        out.describe("tubelet_events_published_total", "counter", "Event messages sent, by kind.")
        for kind in ["action", "status", "daemon"] { out.sample("tubelet_events_published_total", [("kind", kind)], Double(events.published[kind] ?? 0)) }
        out.describe("tubelet_events_dropped_total", "counter", "Event messages dropped (queue full or every subscriber at its high-water mark).")
        out.sample("tubelet_events_dropped_total", [], Double(events.dropped))
        out.describe("tubelet_event_subscriptions", "gauge", "Topic subscriptions held by connected subscribers.")
        out.sample("tubelet_event_subscriptions", [], Double(events.subscriptions))
        out.describe("tubelet_reloads_total", "counter", "Configuration reloads, by result.")
        for result in ["ok", "failed"] { out.sample("tubelet_reloads_total", [("result", result)], Double(reloads[result] ?? 0)) }
        return out.text
    }
}

/// Capture counters summed over a camera's pipelines (a restarted pipeline starts its counters at zero).
struct CaptureTotals {
    var framesDecoded: UInt64 = 0, framesSampled: UInt64 = 0, framesConverted: UInt64 = 0
    var framesDroppedByReaders: UInt64 = 0, decodeErrors: UInt64 = 0, reconnects: UInt64 = 0

    mutating func add(_ c: CaptureCounters) {
        framesDecoded += c.framesDecoded
        framesSampled += c.framesSampled
        framesConverted += c.framesConverted
        framesDroppedByReaders += c.framesDroppedByReaders
        decodeErrors += c.decodeErrors
        reconnects += c.reconnects
    }
}

struct ReloadError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

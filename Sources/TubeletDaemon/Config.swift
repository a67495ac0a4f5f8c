import Foundation
import Yams

/// The daemon's configuration, as read from one YAML file (see Config/tubelet.yaml).
/// Global `capture`, `window` and `decisions` sections are defaults; each camera may override any of their keys.
public struct DaemonConfig: Sendable, Equatable {
    public var path: String
    public var models: [ModelConfig]
    public var cameras: [CameraConfig]
    public var events: EventsConfig
    public var metrics: MetricsConfig
    public var logging: LoggingConfig

    public func model(id: String) -> ModelConfig? { models.first { $0.id == id } }
    public func camera(id: String) -> CameraConfig? { cameras.first { $0.id == id } }
}

public struct ModelConfig: Sendable, Equatable {
    public var id: String
    public var file: String
    /// Cameras this model runs on; nil = every camera (allowed only when there is one model).
    public var cameras: [String]?
    /// Seconds the model's inference worker waits, once one camera's clip is due, for the other
    /// cameras' clips to share the forward pass.
    public var batchWait: Double = 0.005
}

public struct CameraConfig: Sendable, Equatable {
    public var id: String
    /// rtsp://…, a file path, or a V4L2 device (/dev/videoN).
    public var source: String
    /// The id of the model that runs on this camera (resolved from `models.*.cameras`).
    public var model: String
    public var capture: CaptureConfig
    public var window: WindowConfig
    public var decisions: DecisionConfig
}

public struct CaptureConfig: Sendable, Equatable {
    public var transport: String = "tcp"
    /// What a V4L2 device is asked for; ignored for streams and files.
    public var width: Int = 1280
    public var height: Int = 720
    public var fps: Double = 30
    /// Sample frames at this rate by timestamp instead of keeping every `window.frame_stride`-th frame.
    public var sampleFPS: Double? = nil
    public var connectTimeout: Double = 10
    public var readTimeout: Double = 10
    public var stallTimeout: Double = 20
    public var backoffFirst: Double = 1
    public var backoffCap: Double = 30
    public var ringFrames: Int = 64
    /// Files only: pace at the file's frame rate, and start again at the end.
    public var realtime: Bool = true
    public var loop: Bool = true
    public init() {}
}

public struct WindowConfig: Sendable, Equatable {
    /// nil: the model's own recipe.
    public var clipFrames: Int? = nil
    public var frameStride: Int? = nil
    public var hop: Int = 4
    public var reuse: String = "none"
    public var refresh: Int? = nil
    public var approximate: Bool = false
    public init() {}
}

public struct LabelThresholds: Sendable, Equatable {
    public var minScore: Double?
    public var endScore: Double?
    public var minDuration: Double?

    public init(minScore: Double? = nil, endScore: Double? = nil, minDuration: Double? = nil) {
        self.minScore = minScore
        self.endScore = endScore
        self.minDuration = minDuration
    }
}

public struct DecisionConfig: Sendable, Equatable {
    public enum Smoothing: Sendable, Equatable {
        /// Mean of the last `clips` clips' probabilities (1 = no smoothing).
        case mean(clips: Int)
        /// Exponential moving average: s = alpha·p + (1-alpha)·s.
        case ema(alpha: Double)
    }
    /// An action starts when its smoothed score is at least this...
    public var minScore: Double = 0.5
    /// ...and ends when it falls below this (hysteresis: end_score <= min_score).
    public var endScore: Double = 0.3
    /// Seconds the score must stay at or above min_score before the action starts.
    public var minDuration: Double = 0
    public var smoothing: Smoothing = .mean(clips: 1)
    public var ignoreLabels: [String] = []
    public var labels: [String: LabelThresholds] = [:]
    /// Classes listed in each event's `top`.
    public var topK: Int = 5
    /// Seconds between `update` events of one open action (0: every clip).
    public var updateInterval: Double = 1

    public init() {}

    public func minScore(for label: String) -> Double { labels[label]?.minScore ?? minScore }
    public func endScore(for label: String) -> Double { labels[label]?.endScore ?? endScore }
    public func minDuration(for label: String) -> Double { labels[label]?.minDuration ?? minDuration }
}

public struct CurveConfig: Sendable, Equatable {
    /// A file holding the server's Z85 secret key (40 characters), as `zmq_curve_keypair` writes it.
    public var secretKeyFile: String
    /// Z85 public keys of the clients allowed to subscribe; empty = any client that knows the server key.
    public var allowedClients: [String]

    public init(secretKeyFile: String, allowedClients: [String]) {
        self.secretKeyFile = secretKeyFile
        self.allowedClients = allowedClients
    }
}

public struct EventsConfig: Sendable, Equatable {
    /// Where the PUB socket binds (nil: bind nowhere, connect only).
    public var endpoint: String? = "tcp://127.0.0.1:5556"
    /// Endpoints the PUB socket connects to, e.g. a `tubelet proxy`'s XSUB side.
    public var connect: [String] = []
    public var topicPrefix: String = "tubelet"
    /// Messages queued per subscriber before newer ones are dropped (ZMQ_SNDHWM).
    public var sendHighWaterMark: Int = 1000
    /// Seconds to hold the first messages until a subscriber is there (a subscriber started before the daemon gets `started`).
    public var startupGrace: Double = 1
    public var curve: CurveConfig? = nil
    public init() {}
}

public struct MetricsConfig: Sendable, Equatable {
    /// host:port for /metrics and /healthz; nil disables the server.
    public var listen: String? = "127.0.0.1:9464"
    public init() {}
}

public struct LoggingConfig: Sendable, Equatable {
    public var level: String = "info"
    /// auto (journald prefixes when stderr goes to the journal), journald, plain.
    public var format: String = "auto"
    public init() {}
}

/// A configuration error with its place in the file.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String

    public var description: String { "\(file):\(line):\(column): \(message)" }
}

// MARK: Reading

extension DaemonConfig {
    public static func load(path: String) throws -> DaemonConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, line: 0, column: 0, message: "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, line: 0, column: 0, message: "the file is not UTF-8 text")
        }
        return try parse(yaml: text, path: URL(fileURLWithPath: path).standardizedFileURL.path)
    }

    public static func parse(yaml text: String, path: String) throws -> DaemonConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigReader.convert(error, file: path)
        }
        guard let root else { throw ConfigError(file: path, line: 1, column: 1, message: "the file is empty") }
        return try ConfigReader(file: path).readRoot(root)
    }
}

/// Reads the YAML node tree strictly: every key known, every value typed and in range.
struct ConfigReader {
    let file: String

    static let idPattern = try! NSRegularExpression(pattern: "^[A-Za-z0-9_-]{1,64}$")

    static func convert(_ error: YamlError, file: String) -> ConfigError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return ConfigError(file: file, line: mark.line, column: mark.column, message: "YAML: \(problem)")
        default:
            return ConfigError(file: file, line: 0, column: 0, message: "YAML: \(error)")
        }
    }

    func fail(_ node: Node?, _ message: String) -> ConfigError {
        ConfigError(file: file, line: node?.mark?.line ?? 0, column: node?.mark?.column ?? 0, message: message)
    }

    /// One mapping being read: records which keys were read so that the rest can be reported as unknown.
    final class Section {
        let reader: ConfigReader
        let node: Node
        let path: String
        var entries: [(key: String, keyNode: Node, value: Node)] = []
        var read: Set<String> = []

        init(_ reader: ConfigReader, _ node: Node, path: String) throws {
            self.reader = reader
            self.node = node
            self.path = path
            guard let mapping = node.mapping else {
                throw reader.fail(node, "\(path.isEmpty ? "the file" : path): expected a mapping of keys to values, found \(describe(node))")
            }
            var seen: Set<String> = []
            for (key, value) in mapping {
                guard let name = key.scalar?.string else { throw reader.fail(key, "\(path): keys must be plain strings") }
                if !seen.insert(name).inserted { throw reader.fail(key, "\(qualified(name)): duplicate key") }
                entries.append((name, key, value))
            }
        }

        func qualified(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

        func value(_ key: String) -> Node? {
            read.insert(key)
            guard let entry = entries.first(where: { $0.key == key }) else { return nil }
            if let scalar = entry.value.scalar, scalar.style == .plain, ["", "~", "null", "Null", "NULL"].contains(scalar.string) {
                return nil  // `key:` or `key: null` means the default
            }
            return entry.value
        }

        func has(_ key: String) -> Bool { entries.contains { $0.key == key } }

        /// Fails on the first key nobody asked for.
        func finish(known: [String]) throws {
            for entry in entries where !read.contains(entry.key) {
                throw reader.fail(entry.keyNode, "\(qualified(entry.key)): unknown key (known here: \(known.joined(separator: ", ")))")
            }
        }

        func string(_ key: String) throws -> String? {
            guard let node = value(key) else { return nil }
            guard let scalar = node.scalar else { throw reader.fail(node, "\(qualified(key)): expected a string, found \(describe(node))") }
            return scalar.string
        }

        func int(_ key: String, min: Int? = nil, max: Int? = nil) throws -> Int? {
            guard let node = value(key) else { return nil }
            guard let scalar = node.scalar, scalar.style == .plain, let value = Int(scalar.string) else {
                throw reader.fail(node, "\(qualified(key)): expected an integer, found \(describe(node))")
            }
            if let min, value < min { throw reader.fail(node, "\(qualified(key)): must be at least \(min), found \(value)") }
            if let max, value > max { throw reader.fail(node, "\(qualified(key)): must be at most \(max), found \(value)") }
            return value
        }

        func double(_ key: String, min: Double? = nil, max: Double? = nil, positive: Bool = false) throws -> Double? {
            guard let node = value(key) else { return nil }
            guard let scalar = node.scalar, scalar.style == .plain, let value = Double(scalar.string), value.isFinite else {
                throw reader.fail(node, "\(qualified(key)): expected a number, found \(describe(node))")
            }
            if positive && value <= 0 { throw reader.fail(node, "\(qualified(key)): must be greater than 0, found \(scalar.string)") }
            if let min, value < min { throw reader.fail(node, "\(qualified(key)): must be at least \(min), found \(scalar.string)") }
            if let max, value > max { throw reader.fail(node, "\(qualified(key)): must be at most \(max), found \(scalar.string)") }
            return value
        }

        func bool(_ key: String) throws -> Bool? {
            guard let node = value(key) else { return nil }
            guard let scalar = node.scalar, scalar.style == .plain, ["true", "false"].contains(scalar.string) else {
                throw reader.fail(node, "\(qualified(key)): expected true or false, found \(describe(node))")
            }
            return scalar.string == "true"
        }

        func choice(_ key: String, _ choices: [String]) throws -> String? {
            guard let text = try string(key) else { return nil }
            guard choices.contains(text) else {
                throw reader.fail(value(key), "\(qualified(key)): expected one of \(choices.joined(separator: ", ")), found '\(text)'")
            }
            return text
        }

        func strings(_ key: String) throws -> [String]? {
            guard let node = value(key) else { return nil }
            guard let sequence = node.sequence else { throw reader.fail(node, "\(qualified(key)): expected a list, found \(describe(node))") }
            return try sequence.map { item in
                guard let scalar = item.scalar else { throw reader.fail(item, "\(qualified(key)): expected a list of strings, found \(describe(item))") }
                return scalar.string
            }
        }

        func section(_ key: String) throws -> Section? {
            guard let node = value(key) else { return nil }
            return try Section(reader, node, path: qualified(key))
        }

        /// The mapping under one of this section's own entries (a model, a camera, a label), which must be there:
        /// `front:` with nothing after it is an error, not a crash (found by Fuzz/FuzzConfig).
        func section(of entry: (key: String, keyNode: Node, value: Node)) throws -> Section {
            guard let section = try section(entry.key) else {
                throw reader.fail(entry.keyNode, "\(qualified(entry.key)): expected a mapping of keys to values, found nothing")
            }
            return section
        }
    }

    func readRoot(_ root: Node) throws -> DaemonConfig {
        let top = try Section(self, root, path: "")
        let captureDefaults = try top.section("capture").map { try readCapture($0, base: CaptureConfig()) } ?? CaptureConfig()
        let windowDefaults = try top.section("window").map { try readWindow($0, base: WindowConfig()) } ?? WindowConfig()
        let decisionDefaults = try top.section("decisions").map { try readDecisions($0, base: DecisionConfig()) } ?? DecisionConfig()
        let events = try top.section("events").map(readEvents) ?? EventsConfig()
        let metrics = try top.section("metrics").map(readMetrics) ?? MetricsConfig()
        let logging = try top.section("logging").map(readLogging) ?? LoggingConfig()

        guard let modelsSection = try top.section("models") else { throw fail(root, "models: missing (at least one model is needed)") }
        var models: [ModelConfig] = []
        var modelNodes: [String: Node] = [:]
        for entry in modelsSection.entries {
            try checkID(entry.key, entry.keyNode, what: "model id")
            let section = try modelsSection.section(of: entry)
            guard var file = try section.string("file") else { throw fail(entry.value, "\(section.path).file: missing") }
            file = resolve(file)
            let cameras = try section.strings("cameras")
            modelNodes[entry.key] = section.value("cameras") ?? entry.keyNode
            let batchWait = try section.double("batch_wait", min: 0, max: 1) ?? 0.005
            try section.finish(known: ["file", "cameras", "batch_wait"])
            models.append(ModelConfig(id: entry.key, file: file, cameras: cameras, batchWait: batchWait))
        }
        guard !models.isEmpty else { throw fail(modelsSection.node, "models: at least one model is needed") }

        guard let camerasSection = try top.section("cameras") else { throw fail(root, "cameras: missing (at least one camera is needed)") }
        var cameras: [CameraConfig] = []
        for entry in camerasSection.entries {
            try checkID(entry.key, entry.keyNode, what: "camera id")
            let section = try camerasSection.section(of: entry)
            guard var source = try section.string("source"), !source.isEmpty else {
                throw fail(entry.value, "\(section.path).source: missing (an rtsp:// URL, a file or /dev/videoN)")
            }
            // A file named by a relative path is relative to this file, like a model's; URLs stay as they are.
            if !source.contains("://") { source = resolve(source) }
            let capture = try section.section("capture").map { try readCapture($0, base: captureDefaults) } ?? captureDefaults
            let window = try section.section("window").map { try readWindow($0, base: windowDefaults) } ?? windowDefaults
            let decisions = try section.section("decisions").map { try readDecisions($0, base: decisionDefaults) } ?? decisionDefaults
            let modelNode = section.value("model")
            let explicitModel = try section.string("model")
            try section.finish(known: ["source", "model", "capture", "window", "decisions"])
            // Which model: the camera's `model`, else the model that lists it, else the only model.
            var model: String
            let listing = models.filter { $0.cameras?.contains(entry.key) == true }
            if let explicitModel {
                guard models.contains(where: { $0.id == explicitModel }) else {
                    throw fail(modelNode, "\(section.path).model: no model '\(explicitModel)' (models: \(models.map(\.id).joined(separator: ", ")))")
                }
                if let other = listing.first(where: { $0.id != explicitModel }) {
                    throw fail(modelNode, "\(section.path).model: '\(explicitModel)', but models.\(other.id).cameras lists this camera too; one model per camera")
                }
                model = explicitModel
            } else if listing.count > 1 {
                throw fail(entry.keyNode, "cameras.\(entry.key): listed by models \(listing.map(\.id).joined(separator: " and ")); one model per camera")
            } else if let only = listing.first {
                model = only.id
            } else if let unrestricted = models.filter({ $0.cameras == nil }).first, models.filter({ $0.cameras == nil }).count == 1 {
                model = unrestricted.id
            } else {
                throw fail(entry.keyNode, "cameras.\(entry.key): no model runs on this camera (list it in models.<id>.cameras or set model:)")
            }
            cameras.append(CameraConfig(id: entry.key, source: source, model: model, capture: capture, window: window, decisions: decisions))
        }
        guard !cameras.isEmpty else { throw fail(camerasSection.node, "cameras: at least one camera is needed") }
        for model in models {
            for name in model.cameras ?? [] where !cameras.contains(where: { $0.id == name }) {
                throw fail(modelNodes[model.id], "models.\(model.id).cameras: no camera '\(name)'")
            }
        }
        try top.finish(known: ["models", "cameras", "capture", "window", "decisions", "events", "metrics", "logging"])
        return DaemonConfig(path: file, models: models, cameras: cameras, events: events, metrics: metrics, logging: logging)
    }

    func checkID(_ id: String, _ node: Node, what: String) throws {
        if Self.idPattern.firstMatch(in: id, range: NSRange(id.startIndex..., in: id)) == nil {
            throw fail(node, "'\(id)': a \(what) is 1-64 letters, digits, '_' or '-' (it becomes part of topics and metric labels)")
        }
    }

    /// Relative paths are relative to the config file's folder.
    func resolve(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent(path).standardized.path
    }

    func readCapture(_ s: Section, base: CaptureConfig) throws -> CaptureConfig {
        var c = base
        c.transport = try s.choice("transport", ["tcp", "udp"]) ?? c.transport
        c.width = try s.int("width", min: 16, max: 8192) ?? c.width
        c.height = try s.int("height", min: 16, max: 8192) ?? c.height
        c.fps = try s.double("fps", max: 1000, positive: true) ?? c.fps
        if s.has("sample_fps") { c.sampleFPS = try s.double("sample_fps", max: 1000, positive: true) } else { _ = s.value("sample_fps") }
        c.connectTimeout = try s.double("connect_timeout", max: 3600, positive: true) ?? c.connectTimeout
        c.readTimeout = try s.double("read_timeout", max: 3600, positive: true) ?? c.readTimeout
        c.stallTimeout = try s.double("stall_timeout", max: 3600, positive: true) ?? c.stallTimeout
        c.backoffFirst = try s.double("backoff_first", max: 3600, positive: true) ?? c.backoffFirst
        c.backoffCap = try s.double("backoff_cap", max: 86400, positive: true) ?? c.backoffCap
        c.ringFrames = try s.int("ring_frames", min: 2, max: 4096) ?? c.ringFrames
        c.realtime = try s.bool("realtime") ?? c.realtime
        c.loop = try s.bool("loop") ?? c.loop
        try s.finish(known: ["transport", "width", "height", "fps", "sample_fps", "connect_timeout", "read_timeout", "stall_timeout",
                             "backoff_first", "backoff_cap", "ring_frames", "realtime", "loop"])
        if c.backoffCap < c.backoffFirst {
            throw fail(s.value("backoff_cap") ?? s.node, "\(s.path).backoff_cap (\(c.backoffCap)) must be at least backoff_first (\(c.backoffFirst))")
        }
        return c
    }

    func readWindow(_ s: Section, base: WindowConfig) throws -> WindowConfig {
        var w = base
        w.clipFrames = try s.int("clip_frames", min: 1, max: 1024) ?? w.clipFrames
        w.frameStride = try s.int("frame_stride", min: 1, max: 1000) ?? w.frameStride
        w.hop = try s.int("hop", min: 1, max: 1024) ?? w.hop
        w.reuse = try s.choice("reuse", ["none", "exact", "kv"]) ?? w.reuse
        if s.has("refresh") { w.refresh = try s.int("refresh", min: 1, max: 1_000_000) } else { _ = s.value("refresh") }
        w.approximate = try s.bool("approximate") ?? w.approximate
        try s.finish(known: ["clip_frames", "frame_stride", "hop", "reuse", "refresh", "approximate"])
        if w.approximate && w.reuse != "kv" {
            throw fail(s.value("approximate") ?? s.node, "\(s.path).approximate: the stale-token approximation is a kv mode (reuse is \(w.reuse))")
        }
        if w.refresh != nil && !w.approximate {
            throw fail(s.value("refresh") ?? s.node, "\(s.path).refresh: goes with approximate: true (recompute exactly every N labels)")
        }
        if let clip = w.clipFrames, w.hop > clip {
            throw fail(s.value("hop") ?? s.node, "\(s.path).hop (\(w.hop)) must not exceed clip_frames (\(clip)): frames would be skipped")
        }
        return w
    }

    func readThresholds(_ s: Section) throws -> LabelThresholds {
        let t = LabelThresholds(minScore: try s.double("min_score", min: 0, max: 1), endScore: try s.double("end_score", min: 0, max: 1),
                                minDuration: try s.double("min_duration", min: 0, max: 86400))
        try s.finish(known: ["min_score", "end_score", "min_duration"])
        return t
    }

    func readDecisions(_ s: Section, base: DecisionConfig) throws -> DecisionConfig {
        var d = base
        d.minScore = try s.double("min_score", min: 0, max: 1) ?? d.minScore
        d.endScore = try s.double("end_score", min: 0, max: 1) ?? d.endScore
        d.minDuration = try s.double("min_duration", min: 0, max: 86400) ?? d.minDuration
        if let smoothing = try s.section("smoothing") {
            let method = try smoothing.choice("method", ["mean", "ema"]) ?? "mean"
            switch method {
            case "ema":
                guard let alpha = try smoothing.double("alpha", max: 1, positive: true) else {
                    throw fail(smoothing.node, "\(smoothing.path).alpha: needed for method ema (0 < alpha <= 1)")
                }
                d.smoothing = .ema(alpha: alpha)
            default:
                d.smoothing = .mean(clips: try smoothing.int("clips", min: 1, max: 1000) ?? 1)
            }
            try smoothing.finish(known: method == "ema" ? ["method", "alpha"] : ["method", "clips"])
        }
        d.ignoreLabels = try s.strings("ignore_labels") ?? d.ignoreLabels
        if let labels = try s.section("labels") {
            for entry in labels.entries {
                let section = try labels.section(of: entry)
                let thresholds = try readThresholds(section)
                let minScore = thresholds.minScore ?? d.minScore, endScore = thresholds.endScore ?? d.endScore
                if endScore > minScore {
                    throw fail(entry.keyNode, "\(section.path): end_score (\(endScore)) must not exceed min_score (\(minScore))")
                }
                d.labels[entry.key] = thresholds
            }
        }
        d.topK = try s.int("top_k", min: 1, max: 100) ?? d.topK
        d.updateInterval = try s.double("update_interval", min: 0, max: 3600) ?? d.updateInterval
        try s.finish(known: ["min_score", "end_score", "min_duration", "smoothing", "ignore_labels", "labels", "top_k", "update_interval"])
        if d.endScore > d.minScore {
            throw fail(s.value("end_score") ?? s.value("min_score") ?? s.node,
                       "\(s.path).end_score (\(d.endScore)) must not exceed min_score (\(d.minScore))")
        }
        return d
    }

    func readEvents(_ s: Section) throws -> EventsConfig {
        var e = EventsConfig()
        if s.has("endpoint") { e.endpoint = try s.string("endpoint") } else { _ = s.value("endpoint") }
        if let endpoint = e.endpoint, let node = s.value("endpoint") { try checkEndpoint(endpoint, node, s.qualified("endpoint")) }
        e.connect = try s.strings("connect") ?? []
        for (i, endpoint) in e.connect.enumerated() { try checkEndpoint(endpoint, s.value("connect")!.sequence![i], s.qualified("connect")) }
        if e.endpoint == nil && e.connect.isEmpty {
            throw fail(s.node, "\(s.path): give an endpoint to bind or a connect list (events would go nowhere)")
        }
        e.topicPrefix = try s.string("topic_prefix") ?? e.topicPrefix
        if e.topicPrefix.isEmpty || e.topicPrefix.contains(where: { $0 == " " || $0 == "\0" }) {
            throw fail(s.value("topic_prefix"), "\(s.qualified("topic_prefix")): must be non-empty, without spaces")
        }
        e.sendHighWaterMark = try s.int("send_hwm", min: 1, max: 10_000_000) ?? e.sendHighWaterMark
        e.startupGrace = try s.double("startup_grace", min: 0, max: 60) ?? e.startupGrace
        if let curve = try s.section("curve") {
            guard let keyFile = try curve.string("secret_key_file") else {
                throw fail(curve.node, "\(curve.path).secret_key_file: missing (a file with the server's Z85 secret key)")
            }
            let clients = try curve.strings("allowed_clients") ?? []
            for (i, key) in clients.enumerated() where key.count != 40 {
                throw fail(curve.value("allowed_clients")!.sequence![i], "\(curve.path).allowed_clients: '\(key)' is not a 40-character Z85 public key")
            }
            try curve.finish(known: ["secret_key_file", "allowed_clients"])
            e.curve = CurveConfig(secretKeyFile: resolve(keyFile), allowedClients: clients)
        }
        try s.finish(known: ["endpoint", "connect", "topic_prefix", "send_hwm", "startup_grace", "curve"])
        return e
    }

    func checkEndpoint(_ endpoint: String, _ node: Node, _ path: String) throws {
        let schemes = ["tcp://", "ipc://", "inproc://"]
        guard schemes.contains(where: { endpoint.hasPrefix($0) }), endpoint.count > 7 else {
            throw fail(node, "\(path): '\(endpoint)' is not a ZeroMQ endpoint (tcp://HOST:PORT or ipc://PATH)")
        }
    }

    func readMetrics(_ s: Section) throws -> MetricsConfig {
        var m = MetricsConfig()
        if s.has("listen") {
            m.listen = try s.string("listen")
            if let listen = m.listen, HostPort(listen) == nil {
                throw fail(s.value("listen"), "\(s.qualified("listen")): expected HOST:PORT (e.g. 127.0.0.1:9464), found '\(listen)'")
            }
        } else { _ = s.value("listen") }
        try s.finish(known: ["listen"])
        return m
    }

    func readLogging(_ s: Section) throws -> LoggingConfig {
        var l = LoggingConfig()
        l.level = try s.choice("level", ["trace", "debug", "info", "notice", "warning", "error", "critical"]) ?? l.level
        l.format = try s.choice("format", ["auto", "journald", "plain"]) ?? l.format
        try s.finish(known: ["level", "format"])
        return l
    }
}

/// "HOST:PORT" with an IPv4 address or a name; "[v6]:PORT" for IPv6.
public struct HostPort: Sendable, Equatable {
    public var host: String
    public var port: Int

    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.host = host
        self.port = port
    }
}

private func describe(_ node: Node) -> String {
    switch node {
    case .scalar(let scalar): return scalar.string.isEmpty ? "an empty value" : "'\(scalar.string)'"
    case .mapping: return "a mapping"
    case .sequence: return "a list"
    }
}

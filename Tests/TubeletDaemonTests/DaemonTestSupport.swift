import Foundation
import TubeletDaemon
import TubeletLoading
import TubeletModels
import XCTest

/// Paths in the source tree.
enum Repo {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    /// A binary built next to this test bundle (`swift build --build-tests` builds them all).
    static func binary(_ name: String) throws -> String {
        let path = Bundle.main.executableURL!.deletingLastPathComponent().appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw XCTSkip("no \(name) binary at \(path); run `swift build -c release --build-tests` first")
        }
        return path
    }
}

/// Files made once per test run: a tiny model with predictable geometry and a test video.
enum DaemonFixtures {
    static let directory: URL = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tubelet-daemon-tests-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }()

    private static let lock = NSLock()
    nonisolated(unsafe) private static var made: [String: String] = [:]

    /// The 6-class window_433 Video Swin fixture (random weights) with a small recipe: 8 frames, stride 2, 32x32.
    /// Labels are walking, running, jumping, sitting, waving, clapping.
    static func model() throws -> String {
        lock.lock(); defer { lock.unlock() }
        if let path = made["model"] { return path }
        let checkpoint = Repo.path("Tests/TubeletModelsTests/Fixtures/swin/window_433/torchvision.pth")
        let imported = try SwinImport.importCheckpoint(path: checkpoint)
        let path = directory.appendingPathComponent("model.safetensors").path
        let recipe = Preprocessing(frames: 8, frameStride: 2, resizeShortSide: 32, cropSize: 32, pixelScale: 1.0 / 255,
                                   mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])
        try ModelFile.write(videoSwin: imported.config, weights: imported.weights, preprocessing: recipe, labels: labels,
                            source: "test:window_433", to: path)
        made["model"] = path
        return path
    }

    static let labels = ["walking", "running", "jumping", "sitting", "waving", "clapping"]

    /// 160x120 H.264 at 25 fps, keyframe every 10 frames, no B-frames.
    static func video(seconds: Int) throws -> String {
        lock.lock(); defer { lock.unlock() }
        let name = "video\(seconds).mp4"
        if let path = made[name] { return path }
        let path = directory.appendingPathComponent(name).path
        let result = try runProgram("/usr/bin/ffmpeg", ["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                                                 "testsrc2=size=160x120:rate=25:duration=\(seconds)", "-c:v", "libx264",
                                                 "-preset", "ultrafast", "-g", "10", "-bf", "0", "-pix_fmt", "yuv420p", path])
        guard result.status == 0 else { throw TestFailure("ffmpeg failed: \(result.stderr)") }
        made[name] = path
        return path
    }

    static func scratch(_ name: String) -> URL {
        let dir = directory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct ProcessResult { var status: Int32; var stdout: String; var stderr: String }

/// Runs a program to its end (with a time limit) and returns its output.
func runProgram(_ executable: String, _ arguments: [String], timeout: Double = 60) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardInput = FileHandle.nullDevice
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let group = DispatchGroup()
    nonisolated(unsafe) var stdout = Data(), stderr = Data()
    group.enter()
    DispatchQueue.global().async { stdout = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter()
    DispatchQueue.global().async { stderr = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    if !waitUntil(timeout: timeout, { !process.isRunning }) {
        kill(process.processIdentifier, SIGKILL)
    }
    process.waitUntilExit()
    group.wait()
    return ProcessResult(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                         stderr: String(decoding: stderr, as: UTF8.self))
}

/// A long-running child process (tubeletd, tubelet proxy, the RTSP server) whose stderr goes to a file.
/// Killed when the test lets go of it, so that no process outlives the test.
final class ChildProcess {
    let process = Process()
    let logPath: String
    let name: String

    init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], name: String) throws {
        self.name = name
        logPath = DaemonFixtures.directory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8)).log").path
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "NOTIFY_SOCKET")
        env.removeValue(forKey: "JOURNAL_STREAM")
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle(forWritingAtPath: logPath)
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
        Self.lock.lock()
        Self.started.append(process)
        Self.lock.unlock()
    }

    deinit { kill() }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var started: [Process] = []

    /// SIGKILLs every child a test started and left running (call from tearDown: no process outlives its test).
    static func killAll() {
        lock.lock()
        let all = started
        started.removeAll()
        lock.unlock()
        for process in all where process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func signal(_ signal: Int32) { if process.isRunning { Glibc.kill(pid, signal) } }

    /// Waits for the exit; nil if it is still running after `timeout`.
    func waitForExit(timeout: Double) -> Int32? {
        guard waitUntil(timeout: timeout, { !process.isRunning }) else { return nil }
        process.waitUntilExit()
        return process.terminationStatus
    }

    func kill() {
        if process.isRunning {
            Glibc.kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// GStreamer's RTSP server (tools/rtsp_server.py, as the capture tests run it) on 127.0.0.1.
final class RTSPServer {
    let port = freePort()
    let file: String
    private var child: ChildProcess?

    init(file: String) { self.file = file }

    static func skipUnlessAvailable() throws {
        let check = try? runProgram("/usr/bin/python3", ["-c", "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"])
        if check?.status != 0 {
            throw XCTSkip("SKIPPED: GStreamer RTSP server missing; install .ci/apt-packages-capture.txt")
        }
    }

    var url: String { "rtsp://127.0.0.1:\(port)/stream" }

    func start() throws {
        child = try ChildProcess("/usr/bin/python3", [Repo.path("tools/rtsp_server.py"), "--file", file, "--port", String(port)], name: "rtsp")
        guard waitUntil(timeout: 15, { accepts(port: port) || child?.isRunning != true }), child?.isRunning == true else {
            throw TestFailure("RTSP server did not start: \(child?.log ?? "")")
        }
    }

    func kill() { child?.kill(); child = nil }
    deinit { kill() }
}

func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

func accepts(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}

/// Polls `condition` every 20 ms until it holds or `timeout` seconds pass.
func waitUntil(timeout: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.02)
    }
    return condition()
}

/// One received event.
struct Event {
    var topic: String
    var json: [String: Any]
    var receivedAt: Date
    var type: String? { json["type"] as? String }
    var camera: String? { json["camera"] as? String }
    var state: String? { json["state"] as? String }
    var sequence: Int { json["sequence"] as? Int ?? -1 }
    var isAction: Bool { topic.hasSuffix(".action") }
    var isStatus: Bool { topic.hasSuffix(".status") }
}

/// A real ZeroMQ SUB socket that collects events and checks each against its JSON Schema.
final class Subscriber {
    let context = ZMQContext()
    let socket: ZMQSocket
    private(set) var events: [Event] = []
    private(set) var schemaErrors: [String] = []

    init(connect endpoint: String, topics: [String] = [""], curve: (server: String, clientSecret: String)? = nil,
         receiveLimit: Int32? = nil) throws {
        socket = try ZMQSocket(context, .sub)
        if let receiveLimit { try socket.setReceiveLimits(messages: receiveLimit, kernelBytes: 4096) }
        try socket.setLinger(milliseconds: 0)
        try socket.setReconnectInterval(milliseconds: 20)
        if let curve { try socket.useCurveClient(serverPublicKey: curve.server, clientSecretKey: curve.clientSecret) }
        for topic in topics { try socket.subscribe(topic) }
        try socket.connect(endpoint)
    }

    deinit {
        socket.close(lingerMilliseconds: 0)
        context.terminate()
    }

    /// Receives until `predicate` holds for some event received after the first `after` events; returns that event.
    @discardableResult
    func waitFor(after: Int = 0, timeout: Double, _ predicate: (Event) -> Bool) -> Event? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        if let found = events.dropFirst(after).first(where: predicate) { return found }
        while Date() < deadline {
            guard let event = receiveOne(timeout: deadline.timeIntervalSinceNow) else { continue }
            if events.count > after && predicate(event) { return event }
        }
        return nil
    }

    /// Receives whatever arrives for `seconds`.
    func drain(for seconds: Double) {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while Date() < deadline { _ = receiveOne(timeout: deadline.timeIntervalSinceNow) }
    }

    private func receiveOne(timeout: Double) -> Event? {
        guard let parts = try? socket.receive(timeoutMilliseconds: Int32(max(1, min(100, timeout * 1000)))) else { return nil }
        guard parts.count == 2 else {
            schemaErrors.append("message with \(parts.count) parts")
            return nil
        }
        let topic = String(decoding: parts[0], as: UTF8.self)
        guard let json = (try? JSONSerialization.jsonObject(with: Data(parts[1]))) as? [String: Any] else {
            schemaErrors.append("\(topic): body is not a JSON object")
            return nil
        }
        let event = Event(topic: topic, json: json, receivedAt: Date())
        for problem in EventSchemas.shared.validate(topic: topic, json) { schemaErrors.append("\(topic): \(problem)") }
        events.append(event)
        return event
    }

    func actions(camera: String) -> [Event] { events.filter { $0.topic == "tubelet.\(camera).action" } }
    func statuses(camera: String) -> [Event] { events.filter { $0.topic == "tubelet.\(camera).status" } }
    var daemon: [Event] { events.filter { $0.topic == "tubelet.daemon" } }
}

/// The JSON Schemas in Config/schemas, and a validator for the part of JSON Schema they use:
/// type, required, properties, additionalProperties: false, enum, items, minimum, maximum.
final class EventSchemas: @unchecked Sendable {
    static let shared = EventSchemas()
    let action: [String: Any], status: [String: Any], daemon: [String: Any]

    private init() {
        func load(_ name: String) -> [String: Any] {
            let data = FileManager.default.contents(atPath: Repo.path("Config/schemas/\(name).schema.json"))!
            return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
        }
        action = load("action")
        status = load("status")
        daemon = load("daemon")
    }

    func validate(topic: String, _ value: Any) -> [String] {
        if topic.hasSuffix(".action") { return validate(value, against: action, at: "$") }
        if topic.hasSuffix(".status") { return validate(value, against: status, at: "$") }
        if topic.hasSuffix(".daemon") { return validate(value, against: daemon, at: "$") }
        return ["no schema for topic \(topic)"]
    }

    func validate(_ value: Any, against schema: [String: Any], at path: String) -> [String] {
        var problems: [String] = []
        if let choices = schema["enum"] as? [Any] {
            // The schemas' enums are all strings.
            if !(value is String) || !choices.contains(where: { ($0 as? String) == (value as? String) }) {
                problems.append("\(path): \(value) is not one of \(choices)")
            }
        }
        if let type = schema["type"] as? String {
            let ok: Bool
            switch type {
            case "object": ok = value is [String: Any]
            case "array": ok = value is [Any]
            case "string": ok = value is String
            case "integer": ok = (value as? NSNumber).map { !isBool($0) && $0.doubleValue == $0.doubleValue.rounded() } ?? false
            case "number": ok = (value as? NSNumber).map { !isBool($0) } ?? false
            case "boolean": ok = (value as? NSNumber).map(isBool) ?? false
            default: ok = false
            }
            if !ok { return problems + ["\(path): expected \(type), found \(value)"] }
        }
        if let number = value as? NSNumber, !isBool(number) {
            if let minimum = schema["minimum"] as? Double, number.doubleValue < minimum { problems.append("\(path): \(number) < minimum \(minimum)") }
            if let maximum = schema["maximum"] as? Double, number.doubleValue > maximum { problems.append("\(path): \(number) > maximum \(maximum)") }
        }
        if let object = value as? [String: Any] {
            let properties = schema["properties"] as? [String: [String: Any]] ?? [:]
            for key in schema["required"] as? [String] ?? [] where object[key] == nil { problems.append("\(path): missing \(key)") }
            for (key, item) in object {
                if let property = properties[key] {
                    problems += validate(item, against: property, at: "\(path).\(key)")
                } else if (schema["additionalProperties"] as? Bool) == false {
                    problems.append("\(path): unexpected property \(key)")
                }
            }
        }
        if let array = value as? [Any], let items = schema["items"] as? [String: Any] {
            for (i, item) in array.enumerated() { problems += validate(item, against: items, at: "\(path)[\(i)]") }
        }
        return problems
    }

    private func isBool(_ number: NSNumber) -> Bool { String(cString: number.objCType) == "c" }  // JSON true/false
}

/// A NOTIFY_SOCKET for a child process: a datagram socket bound to a path, read continuously by a thread
/// (as systemd does: the daemon's datagrams must not pile up), collecting what sd_notify sends.
final class NotifySocket: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var received: [String] = []
    private var stopping = false
    private var finished = false

    init() throws {
        path = DaemonFixtures.directory.appendingPathComponent("notify-\(UUID().uuidString.prefix(8)).sock").path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else { throw TestFailure("cannot bind \(path)") }
        Thread { [self] in read() }.start()
    }

    deinit {
        lock.lock(); stopping = true; lock.unlock()
        _ = waitUntil(timeout: 1) { lock.withLock { finished } }
        close(fd)
        unlink(path)
    }

    var messages: [String] { lock.withLock { received } }

    private func read() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !lock.withLock({ stopping }) {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 50) > 0 else { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 {
                let text = String(decoding: buffer[0..<n], as: UTF8.self)
                lock.withLock { received.append(text) }
            }
        }
        lock.withLock { finished = true }
    }

    /// Waits until a datagram after the first `after` holds `line` (e.g. READY=1).
    @discardableResult
    func waitFor(_ line: String, after: Int = 0, timeout: Double) -> Bool {
        waitUntil(timeout: timeout) { messages.dropFirst(after).contains { $0.split(separator: "\n").contains(Substring(line)) } }
    }
}

/// Writes a daemon config for the tests: one YAML text, `cameras` given as a block.
func daemonConfig(model: String, eventsEndpoint: String?, connect: [String] = [], metricsPort: Int? = nil,
                  decisions: String = "min_score: 0\n  end_score: 0\n  update_interval: 0", cameras: String) -> String {
    """
    models:
      tiny:
        file: \(model)
    window:
      hop: 4
    capture:
      stall_timeout: 2
      read_timeout: 2
      connect_timeout: 3
      backoff_first: 0.2
      backoff_cap: 1
    decisions:
      \(decisions)
    events:
      endpoint: \(eventsEndpoint ?? "null")
      connect: [\(connect.joined(separator: ", "))]
      startup_grace: 3
    metrics:
      listen: \(metricsPort.map { "127.0.0.1:\($0)" } ?? "null")
    logging:
      level: debug
      format: plain
    cameras:
    \(cameras)
    """
}

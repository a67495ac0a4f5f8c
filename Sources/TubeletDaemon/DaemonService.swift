import Foundation
import Logging
import ServiceLifecycle
import TubeletLoading
import TubeletStreaming
import UnixSignals

/// The daemon as a swift-service-lifecycle service: SIGTERM / SIGINT shut it down gracefully (the
/// ServiceGroup's signals), SIGHUP reloads the configuration, and systemd's watchdog is fed while it runs.
/// Everything that blocks runs on threads of its own.
public struct DaemonService: Service {
    public let daemon: Daemon
    public let notifier: SystemdNotifier

    /// Test-only: seconds after start at which the daemon deadlocks on purpose (`TUBELET_FAULT=hang-after:SECONDS`),
    /// for the watchdog test under a real systemd.
    public let hangFault: Double?

    public init(daemon: Daemon, notifier: SystemdNotifier, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.daemon = daemon
        self.notifier = notifier
        if let fault = environment["TUBELET_FAULT"], fault.hasPrefix("hang-after:"), let seconds = Double(fault.dropFirst("hang-after:".count)) {
            hangFault = seconds
        } else {
            hangFault = nil
        }
    }

    public func run() async throws {
        // Trap SIGHUP before anything else: its default action would end the process.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let daemon = self.daemon, notifier = self.notifier
        try await onThread("start") { try daemon.start() }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in hangups.cancelOnGracefulShutdown() {
                    daemon.logger.info("SIGHUP: reloading the configuration")
                    _ = try? await onThread("reload") { daemon.reload() }
                }
            }
            if let interval = notifier.watchdogInterval {
                // A keep-alive only while the daemon's state lock can be taken: a deadlocked daemon stops
                // sending them, and systemd kills and restarts it (WatchdogSec=, Restart=on-failure).
                group.addTask {
                    while !Task.isCancelled {
                        if (try? await onThread("watchdog") { daemon.isResponsive(timeout: min(1, interval / 2)) }) == true {
                            notifier.watchdog()
                        } else {
                            daemon.logger.error("watchdog: the daemon did not answer; no keep-alive sent")
                        }
                        try? await Task.sleep(nanoseconds: UInt64(interval * 1e9))
                    }
                }
            }
            if let seconds = hangFault {
                group.addTask {
                    try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
                    if !Task.isCancelled { _ = try? await onThread("fault") { daemon.injectHang() } }
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        try? await onThread("stop") { daemon.stop() }
    }
}

/// Runs blocking work on a new thread and awaits it, keeping Swift's cooperative threads free.
public func onThread<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.name = name
        thread.start()
    }
}

/// `tubeletd --check-config`: the file parses and validates, every model loads, and every camera's window
/// settings suit its model. Returns a one-line summary or throws the first problem.
public func checkConfig(path: String) throws -> String {
    let config = try DaemonConfig.load(path: path)
    var models: [String: LoadedModel] = [:]
    for id in Set(config.cameras.map(\.model)).sorted() {
        let model = config.model(id: id)!
        do { models[id] = try LoadedModel.load(model) } catch {
            throw ConfigError(file: path, line: 0, column: 0, message: "models.\(id): \(error)")
        }
    }
    for camera in config.cameras {
        do { _ = try ClipScheduler(model: models[camera.model]!.model, settings: windowSettings(camera.window, model: models[camera.model]!.model)) } catch {
            throw ConfigError(file: path, line: 0, column: 0, message: "cameras.\(camera.id): \(error)")
        }
    }
    if let curve = config.events.curve {
        do { _ = try CurveKeyPair.publicKey(forSecret: try CurveKeyPair.readKey(file: curve.secretKeyFile)) } catch {
            throw ConfigError(file: path, line: 0, column: 0, message: "events.curve: \(error)")
        }
    }
    return "\(path): ok: \(config.cameras.count) camera(s) (\(config.cameras.map(\.id).joined(separator: ", "))), "
        + "\(config.models.count) model(s) (\(config.models.map(\.id).joined(separator: ", ")))"
}

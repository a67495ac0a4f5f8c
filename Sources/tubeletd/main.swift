import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import TubeletDaemon

/// tubeletd: action recognition on live video, events over ZeroMQ. See Config/tubelet.yaml.
@main
struct TubeletDaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tubeletd",
        abstract: "Recognise actions in live video and publish label events over ZeroMQ.",
        discussion: "SIGHUP reloads the configuration; SIGTERM or SIGINT stop the daemon gracefully.")

    @Option(name: .shortAndLong, help: "Configuration file (YAML).") var config = "/etc/tubelet/tubelet.yaml"
    @Option(help: ArgumentHelp("Validate this configuration file (and load its models) without starting; exit 0 if valid, 1 if not.",
                               valueName: "file")) var checkConfig: String?

    func run() async throws {
        if let path = checkConfig {
            do {
                print(try TubeletDaemon.checkConfig(path: path))
                return
            } catch {
                FileHandle.standardError.write(Data("tubeletd: \(error)\n".utf8))
                throw ExitCode(1)
            }
        }
        let loaded: DaemonConfig
        do { loaded = try DaemonConfig.load(path: config) } catch {
            FileHandle.standardError.write(Data("tubeletd: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let level = Logger.Level(rawValue: loaded.logging.level) ?? .info
        let journald = loaded.logging.format == "journald" || (loaded.logging.format == "auto" && StderrLogHandler.stderrIsJournal())
        LoggingSystem.bootstrap { StderrLogHandler(label: $0, level: level, journald: journald) }
        let logger = Logger(label: "tubeletd")
        let notifier = SystemdNotifier()
        let service = DaemonService(daemon: Daemon(config: loaded, logger: logger, notifier: notifier), notifier: notifier)
        let group = ServiceGroup(configuration: .init(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            logger.critical("\(error)")
            notifier.notify(["STATUS=failed: \(error)", "ERRNO=1"])
            throw ExitCode(1)
        }
    }
}

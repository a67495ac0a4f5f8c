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
        discussion: "SIGHUP reloads the configuration; SIGTERM or SIGINT stop the daemon gracefully.",
        version: tubeletVersion)

    @Option(name: .shortAndLong, help: "Configuration file (YAML).") var config = "/etc/tubelet/tubelet.yaml"
    @Option(help: ArgumentHelp("Validate this configuration file (and load its models) without starting; exit 0 if valid, 1 if not.",
                               valueName: "file")) var checkConfig: String?
    @Option(help: ArgumentHelp("Ask the running tubeletd PID to reload its configuration (SIGHUP) and wait for its answer: exit 0 when applied, 1 when refused (the reason on stderr). systemd's ExecReload uses it.",
                               valueName: "pid")) var reload: Int32?
    @Option(help: ArgumentHelp("Where the daemon writes the outcome of each reload for --reload (default: $RUNTIME_DIRECTORY, set by systemd's RuntimeDirectory=).",
                               valueName: "dir")) var runtimeDirectory: String?

    private var reloadStatusPath: String? {
        ReloadStatus.path(runtimeDirectory: runtimeDirectory ?? ProcessInfo.processInfo.environment["RUNTIME_DIRECTORY"])
    }

    func run() async throws {
        if let pid = reload {
            guard let statusPath = reloadStatusPath else {
                FileHandle.standardError.write(Data("tubeletd: --reload needs --runtime-directory or $RUNTIME_DIRECTORY (systemd sets it from RuntimeDirectory=)\n".utf8))
                throw ExitCode(2)
            }
            do {
                let status = try ReloadStatus.requestReload(pid: pid, statusPath: statusPath, timeout: 110)
                if status.succeeded {
                    print("tubeletd: \(status.message)")
                    return
                }
                FileHandle.standardError.write(Data("tubeletd: reload refused, the running configuration is kept: \(status.message)\n".utf8))
            } catch {
                FileHandle.standardError.write(Data("tubeletd: reload: \(error)\n".utf8))
            }
            throw ExitCode(1)
        }
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
        let service = DaemonService(daemon: Daemon(config: loaded, logger: logger, notifier: notifier, reloadStatusPath: reloadStatusPath), notifier: notifier)
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

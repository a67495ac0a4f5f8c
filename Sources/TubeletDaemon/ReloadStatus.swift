import Foundation
import Glibc

/// The outcome of the daemon's last configuration load, kept in a file so that `systemctl reload` can
/// wait for it: systemd 252 (Debian 12) has no `Type=notify-reload`, so the unit's ExecReload runs
/// `tubeletd --reload $MAINPID`, which sends SIGHUP and returns only once this file's generation has moved,
/// with exit status 1 (and the reason on stderr, hence in the journal) when the file was refused.
///
/// File format, one line: `GENERATION ok|failed MESSAGE` (generation 0 is the start).
public struct ReloadStatus: Equatable, Sendable {
    public var generation: UInt64
    public var succeeded: Bool
    public var message: String

    public init(generation: UInt64, succeeded: Bool, message: String) {
        self.generation = generation
        self.succeeded = succeeded
        self.message = message
    }

    static let fileName = "reload-status"

    /// `$RUNTIME_DIRECTORY/reload-status` (systemd sets RUNTIME_DIRECTORY from the unit's RuntimeDirectory=;
    /// several directories come separated by ':', the first is ours). Nil outside systemd.
    public static func path(runtimeDirectory: String?) -> String? {
        guard let directory = runtimeDirectory?.split(separator: ":").first, !directory.isEmpty else { return nil }
        return "\(directory)/\(fileName)"
    }

    /// The line as written: newlines in the message are folded so the file stays one line.
    var line: String {
        let folded = message.replacingOccurrences(of: "\n", with: " ")
        return "\(generation) \(succeeded ? "ok" : "failed") \(folded)\n"
    }

    /// Parses `line`; nil for anything else (a missing or half-written file reads as "no status yet").
    init?(line: String) {
        let parts = line.trimmingCharacters(in: .newlines).split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, let generation = UInt64(parts[0]), parts[1] == "ok" || parts[1] == "failed" else { return nil }
        self.init(generation: generation, succeeded: parts[1] == "ok", message: parts.count == 3 ? String(parts[2]) : "")
    }

    /// Written to a temporary name and renamed, so a reader never sees half a line.
    public func write(to path: String) throws {
        let temporary = path + ".tmp"
        try Data(line.utf8).write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, path) == 0 else {
            throw ReloadRequestError("cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))")
        }
    }

    public static func read(from path: String) -> ReloadStatus? {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else { return nil }
        return ReloadStatus(line: text)
    }

    /// Sends SIGHUP to `pid` and waits until the daemon has written a newer generation than the one before
    /// the signal. Returns that status (succeeded or not); throws when there is no status file, the signal
    /// cannot be sent, or no answer comes within `timeout` seconds.
    public static func requestReload(pid: pid_t, statusPath: String, timeout: Double) throws -> ReloadStatus {
        guard let before = read(from: statusPath) else {
            throw ReloadRequestError("no reload status at \(statusPath): is tubeletd (pid \(pid)) running and started?")
        }
        guard kill(pid, SIGHUP) == 0 else {
            throw ReloadRequestError("cannot signal pid \(pid): \(String(cString: strerror(errno)))")
        }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let now = read(from: statusPath), now.generation > before.generation { return now }
            if kill(pid, 0) != 0 && errno == ESRCH { throw ReloadRequestError("tubeletd (pid \(pid)) exited during the reload") }
            usleep(50_000)
        }
        throw ReloadRequestError("tubeletd (pid \(pid)) did not answer the reload within \(Int(timeout)) s")
    }
}

public struct ReloadRequestError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

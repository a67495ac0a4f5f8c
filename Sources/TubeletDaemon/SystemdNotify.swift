import Foundation
import Glibc

/// sd_notify(3) without libsystemd: one datagram per state change to $NOTIFY_SOCKET
/// (a path, or an abstract socket when it starts with '@'). A no-op when not run by systemd.
public final class SystemdNotifier: @unchecked Sendable {
    public let socketPath: String?
    /// Half of $WATCHDOG_USEC, when systemd asks this process for keep-alives.
    public let watchdogInterval: Double?
    private let lock = NSLock()

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        if let usec = environment["WATCHDOG_USEC"].flatMap(Double.init), usec > 0,
           environment["WATCHDOG_PID"].map({ Int32($0) == getpid() }) ?? true {
            watchdogInterval = usec / 2e6
        } else {
            watchdogInterval = nil
        }
    }

    /// Sends `KEY=VALUE` lines; false when there is no socket or sending failed. Never blocks: a
    /// manager that does not read (a full datagram queue) loses the message instead of stalling us.
    @discardableResult
    public func notify(_ lines: [String]) -> Bool {
        guard let socketPath else { return false }
        lock.lock(); defer { lock.unlock() }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(socketPath.utf8)
        if pathBytes.first == UInt8(ascii: "@") { pathBytes[0] = 0 }  // abstract namespace
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + pathBytes.count + (pathBytes.first == 0 ? 0 : 1))
        let message = Array(lines.joined(separator: "\n").utf8)
        let sent = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, message, message.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT), $0, length) }
        }
        return sent == message.count
    }

    public func ready(status: String) { notify(["READY=1", "STATUS=\(status)"]) }
    public func reloading() { notify(["RELOADING=1", "MONOTONIC_USEC=\(Self.monotonicMicroseconds)", "STATUS=reloading the configuration"]) }
    public func stopping() { notify(["STOPPING=1", "STATUS=stopping"]) }
    public func status(_ text: String) { notify(["STATUS=\(text)"]) }
    public func watchdog() { notify(["WATCHDOG=1"]) }

    static var monotonicMicroseconds: UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    }
}

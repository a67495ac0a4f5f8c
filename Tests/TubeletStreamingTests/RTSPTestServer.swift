import Foundation
import XCTest

/// GStreamer's RTSP server (tools/rtsp_server.py, run with Debian's /usr/bin/python3) serving
/// one file on 127.0.0.1. Tests start, kill, pause and restart it.
final class RTSPTestServer {
    let port: Int
    let file: String
    let path = "/stream"
    private var process: Process?

    static let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("tools/rtsp_server.py").path

    /// Skips the test when the GStreamer RTSP server is not installed.
    static func skipUnlessAvailable() throws {
        let check = Process()
        check.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        check.arguments = ["-c", "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"]
        check.standardOutput = FileHandle.nullDevice
        check.standardError = FileHandle.nullDevice
        guard (try? check.run()) != nil else {
            throw XCTSkip("SKIPPED: /usr/bin/python3 not found; the RTSP tests need Debian's python3-gst-1.0 and gir1.2-gst-rtsp-server-1.0")
        }
        check.waitUntilExit()
        if check.terminationStatus != 0 {
            throw XCTSkip("SKIPPED: GStreamer RTSP server missing; install .ci/apt-packages-capture.txt "
                          + "(gir1.2-gst-rtsp-server-1.0, python3-gst-1.0, gstreamer1.0-plugins-good/-bad)")
        }
    }

    init(file: String, port: Int = RTSPTestServer.freePort()) {
        self.file = file
        self.port = port
    }

    deinit { kill() }

    func url(credentials: String? = nil) -> String {
        "rtsp://\(credentials.map { "\($0)@" } ?? "")127.0.0.1:\(port)\(path)"
    }

    /// Starts the server and waits (up to 15 s) until it accepts connections.
    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [Self.script, "--file", file, "--port", String(port), "--path", path]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        guard waitUntil(timeout: 15, { Self.accepts(port: port) || !process.isRunning }), process.isRunning else {
            kill()
            throw NSError(domain: "RTSPTestServer", code: 1, userInfo: [NSLocalizedDescriptionKey: "RTSP server did not start on port \(port)"])
        }
    }

    /// SIGKILL: the connection drops without an RTSP teardown, like a camera losing power.
    func kill() {
        guard let process, process.isRunning else { self.process = nil; return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    /// SIGSTOP: the connection stays open but no data flows, like a hung camera.
    func pause() { if let process { Glibc.kill(process.processIdentifier, SIGSTOP) } }
    func resume() { if let process { Glibc.kill(process.processIdentifier, SIGCONT) } }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func accepts(port: Int) -> Bool {
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
}

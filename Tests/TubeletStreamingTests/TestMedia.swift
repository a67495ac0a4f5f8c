import Foundation
import XCTest

/// Test videos generated once per test run with the ffmpeg CLI (testsrc2 pattern, small sizes).
enum TestMedia {
    static let directory: URL = {
        removeDirectoriesOfFinishedRuns()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tubelet-capture-tests-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }()

    /// Earlier runs' media (their process is gone): XCTest has no hook to clean up after the last test.
    private static func removeDirectoriesOfFinishedRuns() {
        let temp = FileManager.default.temporaryDirectory
        let prefix = "tubelet-capture-tests-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temp.path)) ?? [] where name.hasPrefix(prefix) {
            if let pid = Int32(name.dropFirst(prefix.count)), kill(pid, 0) != 0, errno == ESRCH {
                try? FileManager.default.removeItem(at: temp.appendingPathComponent(name))
            }
        }
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var made: [String: String] = [:]

    /// Runs ffmpeg once per distinct `name`, returns the file's path.
    static func file(_ name: String, _ ffmpegArguments: [String]) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if let path = made[name] { return path }
        let path = directory.appendingPathComponent(name).path
        try run("/usr/bin/ffmpeg", ["-hide_banner", "-loglevel", "error", "-y"] + ffmpegArguments + [path])
        made[name] = path
        return path
    }

    static func run(_ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw NSError(domain: "TestMedia", code: Int(process.terminationStatus),
                          userInfo: [NSLocalizedDescriptionKey: "\(executable) \(arguments.joined(separator: " ")) failed"])
        }
    }

    static func testsrc(size: String = "320x240", rate: Int = 25, seconds: Double = 2) -> [String] {
        ["-f", "lavfi", "-i", "testsrc2=size=\(size):rate=\(rate):duration=\(seconds)"]
    }

    /// 50 frames of 320x240 H.264 in MP4, keyframe every 25.
    static func h264() throws -> String {
        try file("h264.mp4", testsrc() + ["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p"])
    }

    static func h265() throws -> String {
        try file("h265.mp4", testsrc() + ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
                                          "-pix_fmt", "yuv420p", "-tag:v", "hvc1"])
    }

    static func mjpegAVI() throws -> String {
        try file("mjpeg.avi", testsrc() + ["-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p"])
    }

    /// A solid colour, to check the colour conversion.
    static func solid(color: String, codec: [String], name: String) throws -> String {
        try file(name, ["-f", "lavfi", "-i", "color=c=\(color):size=320x240:rate=25:duration=0.4"] + codec)
    }

    /// A file for a network server to play: 160x120 H.264 at 25 fps, keyframe every 10 frames.
    static func longH264(seconds: Int) throws -> String {
        try file("long\(seconds).mp4", testsrc(size: "160x120", seconds: Double(seconds))
            + ["-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-pix_fmt", "yuv420p", "-bf", "0"])
    }

    /// The H.264 MP4 with its index up front, cut to 60 % of its bytes.
    static func truncatedH264() throws -> String {
        lock.lock(); defer { lock.unlock() }
        let path = directory.appendingPathComponent("truncated.mp4").path
        if made["truncated.mp4"] == nil {
            let full = directory.appendingPathComponent("faststart.mp4").path
            try run("/usr/bin/ffmpeg", ["-hide_banner", "-loglevel", "error", "-y"] + testsrc()
                + ["-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-movflags", "+faststart", full])
            let data = try Data(contentsOf: URL(fileURLWithPath: full))
            try data.prefix(data.count * 6 / 10).write(to: URL(fileURLWithPath: path))
            made["truncated.mp4"] = path
        }
        return path
    }

    /// A copy of `source` with `count` bytes overwritten by garbage in `spans` places spread over
    /// the middle of the file (deterministic).
    static func corrupted(_ source: String, name: String, spans: Int = 6, count: Int = 64) throws -> String {
        lock.lock(); defer { lock.unlock() }
        let path = directory.appendingPathComponent(name).path
        if made[name] == nil {
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: source)))
            var seed: UInt32 = 12345
            for span in 0..<spans {
                let start = bytes.count * (30 + span * 40 / spans) / 100
                for i in start..<min(bytes.count, start + count) {
                    seed = seed &* 1103515245 &+ 12345
                    bytes[i] = UInt8(truncatingIfNeeded: seed >> 16)
                }
            }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            made[name] = path
        }
        return path
    }

    /// 25 frames of 320x240 then 25 frames of 640x360, one MPEG-TS stream (the SPS changes mid-stream).
    static func resolutionChange() throws -> String {
        lock.lock(); defer { lock.unlock() }
        let path = directory.appendingPathComponent("reschange.ts").path
        if made["reschange.ts"] == nil {
            var parts = Data()
            for (i, size) in ["320x240", "640x360"].enumerated() {
                let part = directory.appendingPathComponent("part\(i).ts").path
                try run("/usr/bin/ffmpeg", ["-hide_banner", "-loglevel", "error", "-y"] + testsrc(size: size, seconds: 1)
                    + ["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-bsf:v", "h264_mp4toannexb",
                       "-f", "mpegts", part])
                parts.append(try Data(contentsOf: URL(fileURLWithPath: part)))
            }
            try parts.write(to: URL(fileURLWithPath: path))
            made["reschange.ts"] = path
        }
        return path
    }

    static func audioOnly() throws -> String {
        try file("audio.wav", ["-f", "lavfi", "-i", "sine=frequency=440:duration=0.5"])
    }
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

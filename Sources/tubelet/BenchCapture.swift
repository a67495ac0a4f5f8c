import ArgumentParser
import Foundation
import Glibc
import TubeletStreaming

/// `tubelet bench-capture SOURCE`: decode + convert throughput and CPU time per frame.
struct BenchCapture: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-capture",
        abstract: "Measure decode + convert frames per second and CPU time per frame of a video source.",
        discussion: """
            Runs the capture pipeline (demux, decode, convert to the model geometry into the ring) as fast
            as the source allows and reports throughput and process CPU time per frame. Files are decoded
            flat out unless --realtime is given; for cameras and RTSP the rate is the source's own.
            """)

    @Argument(help: "A video file, an rtsp:// or http:// URL, or a V4L2 device (/dev/videoN).")
    var source: String

    @Option(help: "Stop after this many frames.")
    var frames: Int = 500

    @Option(help: "Stop after this many seconds.")
    var seconds: Double = 60

    @Option(help: "Output geometry: 'kinetics' (short side 256, centre crop 224) or WIDTHxHEIGHT (stretch).")
    var geometry: String = "kinetics"

    @Option(help: "libavcodec decoding threads.")
    var decoderThreads: Int = 1

    @Option(help: "RTSP transport: tcp or udp.")
    var transport: String = "tcp"

    @Flag(help: "Pace a file at its own frame rate, as if it were a camera.")
    var realtime = false

    @Flag(help: "Start a file again at its end (use with a short file and a large --frames).")
    var loop = false

    func run() throws {
        var options = CaptureOptions(url: source, geometry: try parseGeometry())
        options.decoderThreads = decoderThreads
        options.transport = transport == "udp" ? .udp : .tcp
        options.realtime = realtime
        options.loop = loop
        options.ringCapacity = 8
        options.maxAttempts = 1
        let states = StateLog()
        let capture = CaptureSource(options: options, onStateChange: { states.append($0) })

        let cpuBefore = processCPUSeconds()
        let wallBefore = CaptureClock.monotonicSeconds()
        capture.start()
        let deadline = wallBefore + seconds
        while capture.isRunning, capture.counters.framesConverted < UInt64(frames), CaptureClock.monotonicSeconds() < deadline {
            usleep(20_000)
        }
        capture.stop()
        let wall = CaptureClock.monotonicSeconds() - wallBefore
        let cpu = processCPUSeconds() - cpuBefore
        let counters = capture.counters

        let converted = Double(max(counters.framesConverted, 1))
        print("source:            \(capture.name)")
        print("geometry:          \(options.geometry) RGB24, decoder threads \(decoderThreads)")
        print("frames:            \(counters.framesDecoded) decoded, \(counters.framesConverted) converted, "
              + "\(counters.decodeErrors) decode errors")
        print("wall time:         \(String(format: "%.2f", wall)) s (includes opening the source)")
        print("throughput:        \(String(format: "%.1f", Double(counters.framesConverted) / wall)) frames/s")
        print("CPU time / frame:  \(String(format: "%.2f", cpu / converted * 1000)) ms (process CPU, user + system)")
        print("cost at 25 fps:    \(String(format: "%.1f", cpu / converted * 25 * 100)) % of one core")
        print("states:            \(states.all.map(\.description).joined(separator: " -> "))")
        if counters.framesConverted == 0 { throw ExitCode.failure }
    }

    private func parseGeometry() throws -> FrameGeometry {
        if geometry == "kinetics" { return .kinetics }
        let parts = geometry.lowercased().split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2, parts[0] > 0, parts[1] > 0 else {
            throw ValidationError("--geometry must be 'kinetics' or WIDTHxHEIGHT, not '\(geometry)'")
        }
        return .stretch(width: parts[0], height: parts[1])
    }

    private func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }
}

private final class StateLog: @unchecked Sendable {
    private let lock = NSLock()
    private var states: [SourceState] = []
    func append(_ change: SourceStateChange) { lock.lock(); states.append(change.state); lock.unlock() }
    var all: [SourceState] { lock.lock(); defer { lock.unlock() }; return states }
}

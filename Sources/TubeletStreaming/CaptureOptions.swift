/// Everything a `CaptureSource` needs to know about one camera, stream or file.
public struct CaptureOptions: Sendable {
    public enum Transport: String, Sendable { case tcp, udp }

    /// Which decoded frames go into the ring.
    public enum Sampling: Sendable, Equatable {
        case everyFrame
        /// Keep every n-th decoded frame (`frame_stride`).
        case frameStride(Int)
        /// Keep frames at about this rate, by timestamp (`fps`).
        case fps(Double)
    }

    /// rtsp://, rtsps://, http(s)://, a file path, or a V4L2 device (/dev/videoN or v4l2:///dev/videoN).
    public var url: String
    /// RTSP lower transport; TCP (interleaved) by default, as most cameras behind NAT need it.
    public var transport: Transport = .tcp
    /// Seconds allowed to open a source (connect, RTSP handshake, probe) before giving up on the attempt.
    public var connectTimeout: Double = 10
    /// Seconds a single blocking read may wait for data.
    public var readTimeout: Double = 10
    /// Seconds without a decoded frame after which a connected source is `stalled` and reconnected.
    public var stallTimeout: Double = 20
    /// Reconnect backoff: first delay, cap, and jitter as a fraction of the delay (0.2 = ±20 %).
    public var backoffFirst: Double = 1
    public var backoffCap: Double = 30
    public var backoffJitter: Double = 0.2
    /// Attempts to open the source before staying offline for good; nil (default) = retry forever.
    public var maxAttempts: Int? = nil
    public var sampling: Sampling = .everyFrame
    public var geometry: FrameGeometry = .kinetics
    /// Pace a file at its own frame rate, as if it were a camera.
    public var realtime: Bool = false
    /// Start a file again at its end (timestamps keep increasing).
    public var loop: Bool = false
    /// libavcodec decoding threads. 1 keeps latency and CPU use predictable.
    public var decoderThreads: Int = 1
    /// Frames the ring holds when the source creates its own ring.
    public var ringCapacity: Int = 64
    /// Settings for V4L2 devices (ignored for other sources).
    public var v4l2 = V4L2Options()

    public init(url: String, geometry: FrameGeometry = .kinetics) {
        self.url = url
        self.geometry = geometry
    }

    /// What kind of source `url` names.
    public var kind: SourceKind { SourceKind(url: url) }
}

public enum SourceKind: Sendable, Equatable {
    /// A local file: ends at EOF (unless looped), no stall detection unless paced in real time.
    case file
    /// A network stream: EOF means the connection was lost, and the source reconnects.
    case network
    /// A V4L2 capture device.
    case v4l2(devicePath: String)

    init(url: String) {
        if url.hasPrefix("v4l2://") {
            self = .v4l2(devicePath: String(url.dropFirst("v4l2://".count)))
            return
        }
        if url.hasPrefix("/dev/video") {
            self = .v4l2(devicePath: url)
            return
        }
        let scheme = url.split(separator: ":", maxSplits: 1).first.map { $0.lowercased() } ?? ""
        let networkSchemes: Set<String> = ["rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "srt", "udp", "tcp", "rtp"]
        self = url.contains("://") && networkSchemes.contains(scheme) ? .network : .file
    }
}

/// The V4L2 capture request. The device may adjust size and rate; the source uses what it grants.
public struct V4L2Options: Sendable, Equatable {
    public var width: Int = 1280
    public var height: Int = 720
    public var fps: Double = 30
    /// FourCCs in order of preference ("MJPG", "YUYV", "NV12", ...). The first one the device
    /// offers is used; none offered is an error naming the device and what it does offer.
    public var pixelFormats: [String] = ["MJPG", "YUYV", "NV12"]
    /// Memory-mapped buffers to cycle.
    public var bufferCount: Int = 4

    public init(width: Int = 1280, height: Int = 720, fps: Double = 30, pixelFormats: [String] = ["MJPG", "YUYV", "NV12"],
                bufferCount: Int = 4) {
        self.width = width
        self.height = height
        self.fps = fps
        self.pixelFormats = pixelFormats
        self.bufferCount = bufferCount
    }
}

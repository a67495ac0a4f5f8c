/// One converted RGB24 frame with its place on the capture clock.
///
/// Frames handed out by `decodeVideoFrames` own their pixels. Readers of a `FrameRing` can
/// reuse one `Frame` with `FrameRingReader.next(into:timeout:)`, which overwrites `rgb` in place
/// (no allocation in steady state), or look at the ring's slot directly with `withNext`.
public struct Frame: Sendable {
    /// width * height * 3 bytes, row-major, RGB order.
    public var rgb: [UInt8]
    public var width: Int
    public var height: Int
    /// Seconds on the capture clock (`CaptureClock`): wall-clock time, advancing monotonically.
    public var timestamp: Double
    /// Counter of frames produced into the ring (or index among the returned frames of `decodeVideoFrames`).
    public var sequence: UInt64
    /// Presentation time in the source's own time base, in seconds, when the source has one.
    public var pts: Double?

    public init(rgb: [UInt8], width: Int, height: Int, timestamp: Double, sequence: UInt64, pts: Double? = nil) {
        self.rgb = rgb
        self.width = width
        self.height = height
        self.timestamp = timestamp
        self.sequence = sequence
        self.pts = pts
    }

    /// An empty frame to pass to `FrameRingReader.next(into:)`.
    public init() { self.init(rgb: [], width: 0, height: 0, timestamp: 0, sequence: 0) }
}

/// Metadata of one frame, without its pixels.
public struct FrameInfo: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var timestamp: Double
    public var sequence: UInt64
    public var pts: Double?
}

/// A frame seen in place inside a `FrameRing` slot; `rgb` is only valid inside the closure.
public struct FrameView {
    public let info: FrameInfo
    public let rgb: UnsafeBufferPointer<UInt8>
}

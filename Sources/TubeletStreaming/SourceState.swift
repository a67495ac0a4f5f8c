/// Health of one capture source.
public enum SourceState: Sendable, Equatable, CustomStringConvertible {
    /// Opening the source for the first time (or again after a stall).
    case connecting
    /// Frames are arriving.
    case streaming
    /// Connected, but no frame for `stallTimeout`; the source is being torn down and reconnected.
    case stalled(reason: String)
    /// Not connected; retrying with backoff (or given up, when `maxAttempts` ran out or a file ended).
    case offline(reason: String)

    public var description: String {
        switch self {
        case .connecting: return "connecting"
        case .streaming: return "streaming"
        case .stalled(let reason): return "stalled (\(reason))"
        case .offline(let reason): return "offline (\(reason))"
        }
    }

    /// The state's name without its reason, as events publish it.
    public var name: String {
        switch self {
        case .connecting: return "connecting"
        case .streaming: return "streaming"
        case .stalled: return "stalled"
        case .offline: return "offline"
        }
    }
}

/// One state change, as delivered to the source's owner.
public struct SourceStateChange: Sendable, Equatable {
    /// The source's URL with credentials redacted.
    public var source: String
    public var previous: SourceState?
    public var state: SourceState
    /// When it changed, on `CaptureClock`.
    public var timestamp: Double
}

/// Running totals of one source. Decoded >= sampled >= converted.
public struct CaptureCounters: Sendable, Equatable {
    /// Frames that came out of the decoder (or the device).
    public var framesDecoded: UInt64 = 0
    /// Decoded frames kept by the fps / frame-stride sampler.
    public var framesSampled: UInt64 = 0
    /// Sampled frames converted into the ring.
    public var framesConverted: UInt64 = 0
    /// Frames readers of the ring lost because they fell behind (all readers together).
    public var framesDroppedByReaders: UInt64 = 0
    /// Packets the decoder rejected and pictures it flagged corrupt (both skipped).
    public var decodeErrors: UInt64 = 0
    /// Pictures swscale could not convert (skipped).
    public var conversionErrors: UInt64 = 0
    /// Attempts to open the source, successful or not.
    public var connectAttempts: UInt64 = 0
    /// Times streaming resumed after the source had streamed and been lost.
    public var reconnects: UInt64 = 0
    /// Times the source's picture size or pixel format changed mid-stream.
    public var resolutionChanges: UInt64 = 0
    /// Times a live source's clock was re-anchored to wall-clock time (it drifted or jumped by over a second).
    public var clockResyncs: UInt64 = 0
}

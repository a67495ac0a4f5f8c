import Foundation

/// Exponential backoff with jitter: first, 2*first, 4*first, ... capped, each ±jitter (a fraction).
public struct ReconnectBackoff: Sendable {
    public let first: Double
    public let cap: Double
    public let jitter: Double
    public private(set) var failures = 0

    public init(first: Double, cap: Double, jitter: Double) {
        self.first = max(0, first)
        self.cap = max(first, cap)
        self.jitter = min(max(0, jitter), 1)
    }

    /// The delay before the next attempt; grows with each call until `reset()`.
    public mutating func nextDelay<G: RandomNumberGenerator>(using generator: inout G) -> Double {
        let base = min(cap, first * pow(2, Double(min(failures, 62))))
        failures += 1
        let spread = base * jitter
        return max(0, base + Double.random(in: -spread...spread, using: &generator))
    }

    public mutating func nextDelay() -> Double {
        var generator = SystemRandomNumberGenerator()
        return nextDelay(using: &generator)
    }

    public mutating func reset() { failures = 0 }
}

/// Maps a source's presentation times onto `CaptureClock`: anchored at the first frame of each
/// session, monotonic across sessions (reconnects, file loops), and re-anchored when a live
/// source drifts more than `resyncThreshold` from wall-clock time.
public struct TimestampMapper: Sendable {
    public var isLive: Bool
    public var resyncThreshold = 1.0
    private var anchor: (clock: Double, pts: Double)?
    private var last: Double?
    private var lastPTS: Double?
    private var frameInterval = 0.04
    public private(set) var resyncs = 0

    public init(isLive: Bool) { self.isLive = isLive }

    /// A new connection or loop: the next frame starts a new anchor.
    public mutating func beginSession() { anchor = nil; lastPTS = nil }

    /// The capture-clock timestamp of a frame with presentation time `pts` (seconds) arriving at `now`.
    public mutating func map(pts: Double?, now: Double) -> Double {
        var timestamp: Double
        if let pts {
            if let lastPTS, pts > lastPTS, pts - lastPTS < 1 { frameInterval = pts - lastPTS }
            if anchor == nil {
                // Files (not paced) continue one frame after the last timestamp; live sources start now.
                let start = isLive || last == nil ? now : last! + frameInterval
                anchor = (max(start, (last ?? -Double.infinity) + 1e-6), pts)
            }
            timestamp = anchor!.clock + (pts - anchor!.pts)
            if isLive, timestamp > now, timestamp - now <= resyncThreshold {
                // A live frame is never stamped later than it arrived. The first frame of a session
                // often comes late (decoder start, a burst after the key frame), which would put
                // every later timestamp ahead of the wall clock by that delay (and latencies measured
                // from them short); re-anchoring on the earliest arrival relative to its PTS keeps
                // the smallest transport delay as the offset.
                anchor = (now, pts)
                timestamp = now
            } else if isLive, abs(timestamp - now) > resyncThreshold {
                anchor = (now, pts)
                timestamp = now
                resyncs += 1
            }
            lastPTS = pts
        } else {
            timestamp = isLive || last == nil ? now : last! + frameInterval
        }
        if let last, timestamp <= last { timestamp = last + 1e-6 }
        last = timestamp
        return timestamp
    }
}

/// Decides which decoded frames to keep: all, every n-th, or about `fps` per second by timestamp.
struct FrameSampler {
    let sampling: CaptureOptions.Sampling
    private var index: UInt64 = 0
    private var nextDue: Double?

    init(_ sampling: CaptureOptions.Sampling) { self.sampling = sampling }

    mutating func keep(timestamp: Double) -> Bool {
        defer { index += 1 }
        switch sampling {
        case .everyFrame:
            return true
        case .frameStride(let stride):
            return index % UInt64(max(1, stride)) == 0
        case .fps(let fps):
            let interval = 1 / max(fps, 1e-6)
            // A quarter interval of slack keeps e.g. 10 of 25 fps at an even 10 instead of 8.33.
            if let due = nextDue, timestamp < due - interval / 4 { return false }
            let due = nextDue ?? timestamp
            nextDue = timestamp - due > interval ? timestamp + interval : due + interval
            return true
        }
    }
}

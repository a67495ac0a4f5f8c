import Logging

/// Frames decoded from a file for offline inference, and whether the file ran short.
public struct DecodedClip: Sendable {
    public var frames: [Frame]
    /// How many frames at the end repeat the last decoded frame because the file ran short.
    public var paddedFrameCount: Int
    /// Explains the padding, naming the file; nil when nothing was padded.
    public var warning: String?
    /// Frames the decoder rejected or flagged corrupt (skipped).
    public var decodeErrors: Int
}

/// Decodes `path` from the start, keeps every `frameStride`-th frame from `startFrame` on, and
/// stops after `frameCount` frames, each converted to `geometry` (RGB24).
/// Timestamps are media time: seconds since the first decoded frame.
/// When the file has too few frames, the last one is repeated and a warning says so.
public func decodeVideoClip(path: String, geometry: FrameGeometry, frameCount: Int, frameStride: Int,
                            startFrame: Int = 0, decoderThreads: Int = 1) throws -> DecodedClip {
    precondition(frameCount > 0 && frameStride > 0 && startFrame >= 0, "frameCount and frameStride must be positive")
    let decoder = try MediaDecoder(url: path, options: DemuxOptions(decoderThreads: decoderThreads))
    let converter = FrameConverter(geometry: geometry)
    var frames: [Frame] = []
    frames.reserveCapacity(frameCount)
    var index = 0
    var firstPTS: Double?
    while frames.count < frameCount, let decoded = try decoder.nextFrame() {
        defer { index += 1 }
        guard index >= startFrame, (index - startFrame) % frameStride == 0 else { continue }
        let pts = decoder.framePTS
        if firstPTS == nil { firstPTS = pts ?? 0 }
        let mediaTime = pts.map { $0 - firstPTS! } ?? Double(index) / (decoder.nominalFrameRate ?? 25)
        var rgb = [UInt8](repeating: 0, count: geometry.byteCount)
        do {
            try rgb.withUnsafeMutableBufferPointer { try converter.convert(SourcePicture(frame: decoded), into: $0.baseAddress!) }
        } catch {
            throw CaptureError.readFailed(source: decoder.sourceName, reason: "\(error)")
        }
        frames.append(Frame(rgb: rgb, width: geometry.width, height: geometry.height,
                            timestamp: mediaTime, sequence: UInt64(frames.count), pts: pts))
    }
    guard let last = frames.last else {
        if index > 0 {
            throw CaptureError.noFrames(source: "\(decoder.sourceName) (has \(index) frames, clip starts at frame \(startFrame))")
        }
        throw CaptureError.noFrames(source: decoder.sourceName)
    }
    let padded = frameCount - frames.count
    var warning: String?
    if padded > 0 {
        warning = "\(decoder.sourceName): only \(frames.count) of \(frameCount) frames (stride \(frameStride), start \(startFrame)) "
            + "could be decoded from \(index) frames; repeated the last frame \(padded) times"
        let step = frames.count > 1 ? frames[frames.count - 1].timestamp - frames[frames.count - 2].timestamp : 0
        for i in 0..<padded {
            var copy = last
            copy.sequence = UInt64(frames.count)
            copy.timestamp = last.timestamp + step * Double(i + 1)
            frames.append(copy)
        }
    }
    return DecodedClip(frames: frames, paddedFrameCount: max(0, padded), warning: warning, decodeErrors: decoder.decodeErrors)
}

/// `decodeVideoClip` for the CLI: returns just the frames and logs a warning when it had to pad.
public func decodeVideoFrames(path: String, geometry: FrameGeometry, frameCount: Int, frameStride: Int,
                              startFrame: Int = 0) throws -> [Frame] {
    let clip = try decodeVideoClip(path: path, geometry: geometry, frameCount: frameCount,
                                   frameStride: frameStride, startFrame: startFrame)
    if let warning = clip.warning { captureLogger.warning("\(warning)") }
    return clip.frames
}

let captureLogger = Logger(label: "tubelet.capture")

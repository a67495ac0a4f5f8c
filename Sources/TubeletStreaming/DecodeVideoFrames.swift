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

/// Pulls frames from a video file in decode order: every `frameStride`-th frame from `startFrame`
/// on, converted once to `geometry` (RGB24). Timestamps are media time: seconds since the first
/// decoded frame. For offline evaluation, where no frame may be dropped (a live source goes through
/// `CaptureSource` and a `FrameRing` instead).
public final class VideoFileReader {
    public let geometry: FrameGeometry
    public let frameStride: Int
    public let startFrame: Int
    /// Frames decoded so far, kept or not.
    public private(set) var decodedCount = 0
    /// Frames returned so far.
    public private(set) var returnedCount = 0
    public var decodeErrors: Int { decoder.decodeErrors }
    public var nominalFrameRate: Double? { decoder.nominalFrameRate }
    /// Decoded frames the container announces (for progress bars), when it says.
    public var estimatedFrameCount: Int? { decoder.statedFrameCount }
    public var sourceName: String { decoder.sourceName }
    private let decoder: MediaDecoder
    private let converter: FrameConverter
    private var firstPTS: Double?

    public init(path: String, geometry: FrameGeometry, frameStride: Int = 1, startFrame: Int = 0, decoderThreads: Int = 1) throws {
        precondition(frameStride > 0 && startFrame >= 0, "frameStride must be positive and startFrame non-negative")
        decoder = try MediaDecoder(url: path, options: DemuxOptions(decoderThreads: decoderThreads))
        converter = FrameConverter(geometry: geometry)
        self.geometry = geometry
        self.frameStride = frameStride
        self.startFrame = startFrame
    }

    /// The next kept frame, or nil at the end of the file.
    public func next() throws -> Frame? {
        while let decoded = try decoder.nextFrame() {
            let index = decodedCount
            decodedCount += 1
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
            defer { returnedCount += 1 }
            return Frame(rgb: rgb, width: geometry.width, height: geometry.height,
                         timestamp: mediaTime, sequence: UInt64(returnedCount), pts: pts)
        }
        return nil
    }
}

/// Decodes `path` from the start, keeps every `frameStride`-th frame from `startFrame` on, and
/// stops after `frameCount` frames, each converted to `geometry` (RGB24).
/// Timestamps are media time: seconds since the first decoded frame.
/// When the file has too few frames, the last one is repeated and a warning says so.
public func decodeVideoClip(path: String, geometry: FrameGeometry, frameCount: Int, frameStride: Int,
                            startFrame: Int = 0, decoderThreads: Int = 1) throws -> DecodedClip {
    precondition(frameCount > 0 && frameStride > 0 && startFrame >= 0, "frameCount and frameStride must be positive")
    let reader = try VideoFileReader(path: path, geometry: geometry, frameStride: frameStride, startFrame: startFrame,
                                     decoderThreads: decoderThreads)
    var frames: [Frame] = []
    frames.reserveCapacity(frameCount)
    while frames.count < frameCount, let frame = try reader.next() { frames.append(frame) }
    let index = reader.decodedCount
    guard let last = frames.last else {
        if index > 0 {
            throw CaptureError.noFrames(source: "\(reader.sourceName) (has \(index) frames, clip starts at frame \(startFrame))")
        }
        throw CaptureError.noFrames(source: reader.sourceName)
    }
    let padded = frameCount - frames.count
    var warning: String?
    if padded > 0 {
        warning = "\(reader.sourceName): only \(frames.count) of \(frameCount) frames (stride \(frameStride), start \(startFrame)) "
            + "could be decoded from \(index) frames; repeated the last frame \(padded) times"
        let step = frames.count > 1 ? frames[frames.count - 1].timestamp - frames[frames.count - 2].timestamp : 0
        for i in 0..<padded {
            var copy = last
            copy.sequence = UInt64(frames.count)
            copy.timestamp = last.timestamp + step * Double(i + 1)
            frames.append(copy)
        }
    }
    return DecodedClip(frames: frames, paddedFrameCount: max(0, padded), warning: warning, decodeErrors: reader.decodeErrors)
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

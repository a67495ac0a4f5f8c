import CFFmpeg
import CTubeletShim

/// Why a capture source could not be opened or read. Messages name the source (credentials redacted).
public enum CaptureError: Error, CustomStringConvertible, Equatable {
    case openFailed(source: String, reason: String)
    case noVideoStream(source: String)
    case unsupportedCodec(source: String, codec: String)
    case noFrames(source: String)
    case readFailed(source: String, reason: String)
    case timedOut(source: String, operation: String, seconds: Double)
    case stalled(source: String, seconds: Double)
    case stopped
    case device(path: String, reason: String)

    public var description: String {
        switch self {
        case .openFailed(let source, let reason): return "cannot open \(source): \(reason)"
        case .noVideoStream(let source): return "\(source) has no video stream"
        case .unsupportedCodec(let source, let codec): return "\(source): no decoder for codec \(codec)"
        case .noFrames(let source): return "\(source): no decodable video frames"
        case .readFailed(let source, let reason): return "\(source): read failed: \(reason)"
        case .timedOut(let source, let operation, let seconds):
            return "\(source): \(operation) timed out after \(formatSeconds(seconds)) s"
        case .stalled(let source, let seconds): return "\(source): no frame for \(formatSeconds(seconds)) s"
        case .stopped: return "stopped"
        case .device(let path, let reason): return "V4L2 device \(path): \(reason)"
        }
    }
}

func formatSeconds(_ s: Double) -> String {
    let rounded = (s * 10).rounded() / 10
    return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
}

/// FFmpeg's error codes that Swift cannot import (they are macros).
enum AVErrorCode {
    static func tag(_ a: UInt8, _ b: Unicode.Scalar, _ c: Unicode.Scalar, _ d: Unicode.Scalar) -> Int32 {
        let v = UInt32(a) | b.value << 8 | c.value << 16 | d.value << 24
        return -Int32(bitPattern: v)
    }
    static func tag(_ a: Unicode.Scalar, _ b: Unicode.Scalar, _ c: Unicode.Scalar, _ d: Unicode.Scalar) -> Int32 {
        tag(UInt8(a.value), b, c, d)
    }
    static let eof = tag("E", "O", "F", " ")
    static let invalidData = tag("I", "N", "D", "A")
    static let exit = tag("E", "X", "I", "T")
    static let again = tubelet_averror(EAGAIN)
    static let timedOut = tubelet_averror(ETIMEDOUT)
}

/// The text FFmpeg gives for an error code.
func averrorString(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    tubelet_av_strerror(code, &buffer, buffer.count)
    return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

extension CaptureError {
    /// The error without the source's name, for state reasons (the state change names the source).
    public var reason: String {
        switch self {
        case .openFailed(_, let reason): return "cannot open: \(reason)"
        case .noVideoStream: return "no video stream"
        case .unsupportedCodec(_, let codec): return "no decoder for \(codec)"
        case .noFrames: return "no decodable frames"
        case .readFailed(_, let reason): return "read failed: \(reason)"
        case .timedOut(_, let operation, let seconds): return "\(operation) timed out after \(formatSeconds(seconds)) s"
        case .stalled(_, let seconds): return "no frame for \(formatSeconds(seconds)) s"
        case .stopped: return "stopped"
        case .device(_, let reason): return reason
        }
    }
}

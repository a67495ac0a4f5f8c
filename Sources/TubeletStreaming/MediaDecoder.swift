import CFFmpeg
import Logging

/// How to open a file or network stream with libavformat.
struct DemuxOptions {
    enum Transport: String { case tcp, udp }
    var transport: Transport = .tcp
    var connectTimeout: Double = 10
    var readTimeout: Double = 5
    /// No decoded frame for this long while connected ends the stream with `CaptureError.stalled`.
    var stallTimeout: Double? = nil
    var decoderThreads: Int = 1
    /// Network sources end at a read error (and get reconnected); files skip a few bad reads.
    var isNetwork: Bool = false
}

/// One open demuxer + video decoder. Single-threaded: owned by the thread that reads from it.
final class MediaDecoder {
    let sourceName: String
    let interrupt: IOInterrupt
    private let options: DemuxOptions
    private var formatContext: UnsafeMutablePointer<AVFormatContext>?
    private var codecContext: UnsafeMutablePointer<AVCodecContext>?
    private let packet: UnsafeMutablePointer<AVPacket>
    /// The last decoded frame; valid until the next call to `nextFrame()`.
    let frame: UnsafeMutablePointer<AVFrame>
    private let streamIndex: Int32
    private let timeBase: AVRational
    /// Frames per second the container declares, if any.
    let nominalFrameRate: Double?
    /// Frames the container says the video stream has (files), else nil.
    let statedFrameCount: Int?
    let codecName: String
    private var draining = false
    private var lastFrameMonotonic: Double
    private var lastPTS: Double?

    /// Packets the decoder rejected plus frames it flagged corrupt (those are skipped).
    private(set) var decodeErrors = 0
    /// Demuxer read errors that were skipped (files only).
    private(set) var readErrors = 0

    init(url: String, options: DemuxOptions, interrupt: IOInterrupt = IOInterrupt()) throws {
        FFmpegLogging.configureOnce()
        sourceName = redactCredentials(url)
        self.options = options
        self.interrupt = interrupt
        interrupt.arm(seconds: options.connectTimeout)
        defer { interrupt.arm(seconds: nil) }
        let stream = try OpenedStream(url: url, sourceName: sourceName, options: options, interrupt: interrupt)
        guard let packet = av_packet_alloc(), let frame = av_frame_alloc() else { fatalError("FFmpeg: out of memory") }
        self.packet = packet
        self.frame = frame
        formatContext = stream.formatContext
        codecContext = stream.codecContext
        streamIndex = stream.streamIndex
        timeBase = stream.timeBase
        nominalFrameRate = stream.nominalFrameRate
        statedFrameCount = stream.statedFrameCount
        codecName = stream.codecName
        lastFrameMonotonic = CaptureClock.monotonicSeconds()
    }

    deinit { releaseContexts() }

    private func releaseContexts() {
        if codecContext != nil { avcodec_free_context(&codecContext) }
        if formatContext != nil { avformat_close_input(&formatContext) }
        var p: UnsafeMutablePointer<AVPacket>? = packet
        av_packet_free(&p)
        var f: UnsafeMutablePointer<AVFrame>? = frame
        av_frame_free(&f)
    }

    /// Presentation time of `frame` in seconds (synthesised from the frame rate when missing).
    var framePTS: Double? {
        let ts = frame.pointee.best_effort_timestamp != avNoPTS ? frame.pointee.best_effort_timestamp : frame.pointee.pts
        guard ts != avNoPTS else { return nil }
        return Double(ts) * Double(timeBase.num) / Double(timeBase.den)
    }

    /// Decodes the next video frame into `frame`; nil at the end of the stream.
    func nextFrame() throws -> UnsafeMutablePointer<AVFrame>? {
        guard let codec = codecContext, let format = formatContext else { return nil }
        var consecutiveReadErrors = 0
        while true {
            let received = avcodec_receive_frame(codec, frame)
            if received == 0 {
                if frame.pointee.flags & AV_FRAME_FLAG_CORRUPT != 0 || frame.pointee.decode_error_flags != 0 {
                    decodeErrors += 1
                    av_frame_unref(frame)
                    continue
                }
                lastFrameMonotonic = CaptureClock.monotonicSeconds()
                return frame
            }
            if received == AVErrorCode.eof || (received == AVErrorCode.again && draining) { return nil }
            if received != AVErrorCode.again {
                decodeErrors += 1
                if draining { return nil }
            }
            if draining { continue }

            try checkStall()
            interrupt.arm(seconds: readDeadline())
            let read = av_read_frame(format, packet)
            interrupt.arm(seconds: nil)
            if read >= 0 && interrupt.reason != .none {
                // An aborted read can still return a packet: the demuxer flushes its parser. The
                // deadline has passed all the same, so treat it as the timeout or stall it is.
                av_packet_unref(packet)
                try throwIfInterrupted()
            }
            if read == AVErrorCode.eof {
                startDraining()
                continue
            }
            if read == AVErrorCode.again { continue }
            if read < 0 {
                try throwIfInterrupted()
                readErrors += 1
                consecutiveReadErrors += 1
                if options.isNetwork {
                    throw CaptureError.readFailed(source: sourceName, reason: averrorString(read))
                }
                // A damaged file: skip the bad spot, but give up at the end of a truncated file.
                if consecutiveReadErrors >= 16 || format.pointee.pb?.pointee.eof_reached != 0 { startDraining() }
                continue
            }
            consecutiveReadErrors = 0
            defer { av_packet_unref(packet) }
            guard packet.pointee.stream_index == streamIndex else { continue }
            let sent = avcodec_send_packet(codec, packet)
            if sent < 0 && sent != AVErrorCode.again { decodeErrors += 1 }
        }
    }

    private func startDraining() {
        if let codec = codecContext { avcodec_send_packet(codec, nil) }
        draining = true
    }

    /// The read may block until the read timeout, or until the stall timeout runs out, whichever is first.
    private func readDeadline() -> Double {
        guard let stall = options.stallTimeout else { return options.readTimeout }
        let stallLeft = lastFrameMonotonic + stall - CaptureClock.monotonicSeconds()
        return max(0, min(options.readTimeout, stallLeft))
    }

    private func checkStall() throws {
        guard let stall = options.stallTimeout else { return }
        if CaptureClock.monotonicSeconds() - lastFrameMonotonic >= stall {
            throw CaptureError.stalled(source: sourceName, seconds: stall)
        }
    }

    private func throwIfInterrupted() throws {
        switch interrupt.reason {
        case .stopRequested: throw CaptureError.stopped
        case .deadline:
            try checkStall()
            throw CaptureError.timedOut(source: sourceName, operation: "read", seconds: options.readTimeout)
        case .none: return
        }
    }

    fileprivate static func openError(code: Int32, source: String, interrupt: IOInterrupt, options: DemuxOptions) -> CaptureError {
        switch interrupt.reason {
        case .stopRequested: return .stopped
        case .deadline: return .timedOut(source: source, operation: "connect", seconds: options.connectTimeout)
        case .none: return .openFailed(source: source, reason: averrorString(code))
        }
    }

}

let avNoPTS = Int64.min
let AVERROR_STREAM_NOT_FOUND_CODE = AVErrorCode.tag(0xF8, "S", "T", "R")

/// Process-wide FFmpeg set-up. FFmpeg logs to stderr by default; keep it to fatal messages unless
/// TUBELET_FFMPEG_LOG (debug, info, warning, error) asks for more.
enum FFmpegLogging {
    private static let configured: Void = {
        let level: Int32
        switch getenv("TUBELET_FFMPEG_LOG").map({ String(cString: $0) }) {
        case "debug": level = AV_LOG_DEBUG
        case "info": level = AV_LOG_INFO
        case "warning": level = AV_LOG_WARNING
        case "error": level = AV_LOG_ERROR
        default: level = AV_LOG_FATAL
        }
        av_log_set_level(level)
        avformat_network_init()  // TLS (rtsps, https) library set-up
    }()

    static func configureOnce() { _ = configured }
}

/// The demuxer and decoder contexts of a freshly opened source; frees them itself if opening fails.
private struct OpenedStream {
    var formatContext: UnsafeMutablePointer<AVFormatContext>?
    var codecContext: UnsafeMutablePointer<AVCodecContext>?
    var streamIndex: Int32 = -1
    var timeBase = AVRational(num: 1, den: 1)
    var nominalFrameRate: Double?
    /// Frames in the video stream as the container states it (files), else nil.
    var statedFrameCount: Int?
    var codecName = ""

    init(url: String, sourceName: String, options: DemuxOptions, interrupt: IOInterrupt) throws {
        var context = avformat_alloc_context()
        context?.pointee.interrupt_callback = interrupt.callbackRecord
        var dictionary: OpaquePointer? = nil
        defer { av_dict_free(&dictionary) }
        for (key, value) in Self.protocolOptions(url: url, options: options) {
            av_dict_set(&dictionary, key, value, 0)
        }
        let opened = avformat_open_input(&context, url, nil, &dictionary)
        guard opened >= 0, let context else {
            throw MediaDecoder.openError(code: opened, source: sourceName, interrupt: interrupt, options: options)
        }
        formatContext = context
        do {
            try openVideoDecoder(context: context, sourceName: sourceName, options: options, interrupt: interrupt)
        } catch {
            if codecContext != nil { avcodec_free_context(&codecContext) }
            avformat_close_input(&formatContext)
            throw error
        }
    }

    private mutating func openVideoDecoder(context: UnsafeMutablePointer<AVFormatContext>, sourceName: String,
                                           options: DemuxOptions, interrupt: IOInterrupt) throws {
        let info = avformat_find_stream_info(context, nil)
        if info < 0 {
            throw MediaDecoder.openError(code: info, source: sourceName, interrupt: interrupt, options: options)
        }
        var decoder: UnsafePointer<AVCodec>? = nil
        let index = av_find_best_stream(context, AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0)
        if index == AVERROR_STREAM_NOT_FOUND_CODE || index < 0 && decoder == nil && Self.videoStreamCount(context) == 0 {
            throw CaptureError.noVideoStream(source: sourceName)
        }
        guard index >= 0, let decoder else {
            throw CaptureError.unsupportedCodec(source: sourceName, codec: "unknown")
        }
        let stream = context.pointee.streams[Int(index)]!
        codecName = String(cString: avcodec_get_name(stream.pointee.codecpar.pointee.codec_id))
        streamIndex = index
        timeBase = stream.pointee.time_base
        let rate = stream.pointee.avg_frame_rate.num > 0 ? stream.pointee.avg_frame_rate : stream.pointee.r_frame_rate
        nominalFrameRate = rate.num > 0 && rate.den > 0 ? Double(rate.num) / Double(rate.den) : nil
        if stream.pointee.nb_frames > 0 {
            statedFrameCount = Int(stream.pointee.nb_frames)
        } else if context.pointee.duration > 0, let fps = nominalFrameRate {
            statedFrameCount = Int(Double(context.pointee.duration) / Double(AV_TIME_BASE) * fps)
        }

        guard let codec = avcodec_alloc_context3(decoder) else { fatalError("FFmpeg: out of memory") }
        codecContext = codec
        avcodec_parameters_to_context(codec, stream.pointee.codecpar)
        codec.pointee.thread_count = Int32(options.decoderThreads)
        codec.pointee.pkt_timebase = stream.pointee.time_base
        // Fail a damaged picture instead of concealing it, so that it is counted and skipped
        // rather than handed to the model as smeared garbage.
        codec.pointee.err_recognition |= AV_EF_EXPLODE
        let openedCodec = avcodec_open2(codec, decoder, nil)
        if openedCodec < 0 {
            throw CaptureError.openFailed(source: sourceName, reason: "cannot open \(codecName) decoder: \(averrorString(openedCodec))")
        }
        // Let the demuxer drop every other stream (a camera's audio, subtitles).
        for i in 0..<Int(context.pointee.nb_streams) where i != Int(index) {
            context.pointee.streams[i]!.pointee.discard = AVDISCARD_ALL
        }
    }

    private static func videoStreamCount(_ context: UnsafeMutablePointer<AVFormatContext>) -> Int {
        (0..<Int(context.pointee.nb_streams)).filter {
            context.pointee.streams[$0]!.pointee.codecpar.pointee.codec_type == AVMEDIA_TYPE_VIDEO
        }.count
    }

    private static func protocolOptions(url: String, options: DemuxOptions) -> [(String, String)] {
        // Socket-level timeouts are only a backstop: the interrupt deadlines fire first and say
        // precisely what timed out (connect, read, stall).
        let micros = String(Int((max(options.readTimeout, options.connectTimeout) + 1) * 1e6))
        let scheme = url.split(separator: ":", maxSplits: 1).first.map { $0.lowercased() } ?? ""
        switch scheme {
        case "rtsp", "rtsps":
            var result = [("rtsp_transport", options.transport.rawValue), ("timeout", micros)]
            if options.transport == .udp { result.append(("buffer_size", String(4 << 20))) }
            return result
        case "http", "https", "tcp", "rtmp", "srt", "udp":
            return [("rw_timeout", micros)]
        default:
            return []
        }
    }
}

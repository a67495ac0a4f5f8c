import CFFmpeg
import Glibc

/// A V4L2 camera streaming into memory-mapped buffers: opens the device, negotiates pixel
/// format, size and frame rate, maps and queues the buffers, and cycles them (dequeue, hand to
/// the caller, queue again). Errors name the device and say what is wrong: missing, busy, not
/// a capture device, or lacking every requested format (listing what it offers).
public final class V4L2Camera {
    public let devicePath: String
    public private(set) var capability = V4L2Capability(driver: "", card: "", canCapture: false, canStream: false)
    /// The format the driver granted (may differ in size from the request).
    public private(set) var format = V4L2Format(width: 0, height: 0, fourcc: "")
    /// The frame rate the driver granted, if it lets one be set.
    public private(set) var frameRate: Double?
    /// Number of memory-mapped buffers being cycled.
    public var bufferCount: Int { buffers.count }

    private let io: V4L2DeviceIO
    private var buffers: [UnsafeRawBufferPointer] = []
    private var streaming = false
    private var closed = false

    /// FourCCs the capture layer can convert (raw formats through swscale, compressed ones through libavcodec).
    public static let convertibleFormats = ["MJPG", "JPEG", "YUYV", "UYVY", "NV12", "YU12", "RGB3", "BGR3", "GREY", "H264"]

    public init(devicePath: String, options: V4L2Options, io: V4L2DeviceIO) throws {
        self.devicePath = devicePath
        self.io = io
        func fail(_ reason: String) -> CaptureError { .device(path: devicePath, reason: reason) }
        func describe(_ error: Error, doing what: String) -> CaptureError {
            guard let error = error as? V4L2IOError else { return fail("\(what): \(error)") }
            switch error.code {
            case ENOENT, ENODEV, ENXIO: return fail("does not exist (no such device)")
            case EBUSY: return fail("is busy: another process is using it (\(error.operation))")
            case EACCES, EPERM: return fail("permission denied (is the user in the 'video' group?)")
            case ENOTTY: return fail("is not a V4L2 device (\(error.message))")
            default: return fail("\(what) failed: \(error.message)")
            }
        }

        do { try io.open(path: devicePath) } catch { throw describe(error, doing: "open") }
        do {
            capability = try io.queryCapability()
            guard capability.canCapture else {
                throw fail("is not a video capture device (driver \(capability.driver), card \(capability.card))")
            }
            guard capability.canStream else {
                throw fail("does not support streaming I/O (driver \(capability.driver), card \(capability.card))")
            }
            let offered = try io.formats()
            let wanted = options.pixelFormats.map { $0.uppercased() }
            guard let chosen = wanted.first(where: { w in offered.contains { $0.fourcc == w } }) else {
                let list = offered.map { "\($0.fourcc) (\($0.description))" }.joined(separator: ", ")
                throw fail("offers none of \(wanted.joined(separator: ", ")); it offers: \(list.isEmpty ? "nothing" : list)")
            }
            guard Self.convertibleFormats.contains(chosen) else {
                throw fail("format \(chosen) cannot be converted; use one of \(Self.convertibleFormats.joined(separator: ", "))")
            }
            let granted = try io.setFormat(V4L2Format(width: options.width, height: options.height, fourcc: chosen))
            guard granted.fourcc == chosen else {
                throw fail("asked for \(chosen) but the driver chose \(granted.fourcc)")
            }
            format = granted
            frameRate = try io.setFrameRate(options.fps)
            let count = try io.requestBuffers(count: max(2, options.bufferCount))
            guard count >= 2 else { throw fail("granted only \(count) buffer(s); streaming needs at least 2") }
            for index in 0..<count {
                buffers.append(try io.mapBuffer(index: index))
            }
            for index in 0..<count { try io.queueBuffer(index: index) }
            try io.streamOn()
            streaming = true
        } catch let error as CaptureError {
            release()
            throw error
        } catch {
            release()
            throw describe(error, doing: "setup")
        }
    }

    deinit { close() }

    /// Waits up to `timeout` seconds for a filled buffer and calls `body` with its bytes, then
    /// queues the buffer again. Returns nil on timeout.
    public func withNextBuffer<R>(timeout: Double, _ body: (UnsafeRawBufferPointer, V4L2DequeuedBuffer) throws -> R) throws -> R? {
        do {
            guard try io.waitForFrame(timeout: timeout) else { return nil }
            let buffer: V4L2DequeuedBuffer
            do {
                buffer = try io.dequeueBuffer()
            } catch let error as V4L2IOError where error.code == EAGAIN {
                return nil
            }
            defer { try? io.queueBuffer(index: buffer.index) }
            guard buffer.index >= 0 && buffer.index < buffers.count else {
                throw CaptureError.device(path: devicePath, reason: "driver returned unknown buffer \(buffer.index)")
            }
            let used = buffer.bytesUsed > 0 ? min(buffer.bytesUsed, buffers[buffer.index].count) : buffers[buffer.index].count
            return try body(UnsafeRawBufferPointer(rebasing: buffers[buffer.index][0..<used]), buffer)
        } catch let error as V4L2IOError {
            if error.code == ENODEV { throw CaptureError.device(path: devicePath, reason: "was disconnected") }
            throw CaptureError.device(path: devicePath, reason: error.message)
        }
    }

    /// Stops streaming, unmaps and frees the buffers, and closes the device.
    public func close() {
        guard !closed else { return }
        closed = true
        release()
    }

    private func release() {
        if streaming { try? io.streamOff() }
        streaming = false
        for buffer in buffers { io.unmapBuffer(buffer) }
        if !buffers.isEmpty { _ = try? io.requestBuffers(count: 0) }
        buffers = []
        io.close()
    }
}

/// A V4L2 camera as a capture session: raw formats go straight to swscale, MJPEG/H.264 through libavcodec.
final class V4L2Session: CaptureSession {
    private let camera: V4L2Camera
    private let stallTimeout: Double
    private let interrupt: IOInterrupt
    private let compressed: CompressedFrameDecoder?
    private var lastFrame = CaptureClock.monotonicSeconds()
    private(set) var decodeErrors = 0

    init(devicePath: String, options: V4L2Options, io: V4L2DeviceIO, stallTimeout: Double, interrupt: IOInterrupt) throws {
        camera = try V4L2Camera(devicePath: devicePath, options: options, io: io)
        self.stallTimeout = stallTimeout
        self.interrupt = interrupt
        switch camera.format.fourcc {
        case "MJPG", "JPEG": compressed = try CompressedFrameDecoder(codec: AV_CODEC_ID_MJPEG, devicePath: devicePath)
        case "H264": compressed = try CompressedFrameDecoder(codec: AV_CODEC_ID_H264, devicePath: devicePath)
        default: compressed = nil
        }
    }

    func nextPicture(_ body: (SourcePicture, Double?) throws -> Void) throws -> Bool {
        while true {
            if interrupt.isStopRequested { throw CaptureError.stopped }
            let waited = CaptureClock.monotonicSeconds() - lastFrame
            if waited >= stallTimeout { throw CaptureError.stalled(source: camera.devicePath, seconds: stallTimeout) }
            // Short waits so that stop() is noticed within 100 ms.
            let delivered = try camera.withNextBuffer(timeout: min(0.1, stallTimeout - waited)) { bytes, buffer -> Bool in
                if buffer.hasError { decodeErrors += 1; return false }
                return try deliver(bytes, buffer, body)
            }
            if delivered == true {
                lastFrame = CaptureClock.monotonicSeconds()
                return true
            }
        }
    }

    private func deliver(_ bytes: UnsafeRawBufferPointer, _ buffer: V4L2DequeuedBuffer,
                         _ body: (SourcePicture, Double?) throws -> Void) throws -> Bool {
        if let compressed {
            guard let frame = compressed.decode(bytes) else { decodeErrors += 1; return false }
            try body(SourcePicture(frame: frame), buffer.timestamp)
            return true
        }
        guard let picture = RawPicture.picture(bytes, format: camera.format) else { decodeErrors += 1; return false }
        try body(picture, buffer.timestamp)
        return true
    }
}

/// Describes a raw V4L2 buffer as planes for swscale.
enum RawPicture {
    static func pixelFormat(fourcc: String) -> AVPixelFormat? {
        switch fourcc {
        case "YUYV": return AV_PIX_FMT_YUYV422
        case "UYVY": return AV_PIX_FMT_UYVY422
        case "NV12": return AV_PIX_FMT_NV12
        case "YU12": return AV_PIX_FMT_YUV420P
        case "RGB3": return AV_PIX_FMT_RGB24
        case "BGR3": return AV_PIX_FMT_BGR24
        case "GREY": return AV_PIX_FMT_GRAY8
        default: return nil
        }
    }

    /// nil when the buffer is too short for the negotiated format (a damaged frame).
    static func picture(_ bytes: UnsafeRawBufferPointer, format: V4L2Format) -> SourcePicture? {
        guard let pixelFormat = pixelFormat(fourcc: format.fourcc), let base = bytes.baseAddress else { return nil }
        let data = base.assumingMemoryBound(to: UInt8.self)
        let w = format.width, h = format.height
        let packedBytesPerPixel = ["YUYV": 2, "UYVY": 2, "RGB3": 3, "BGR3": 3, "GREY": 1][format.fourcc] ?? 1
        let stride = format.bytesPerLine > 0 ? format.bytesPerLine : w * packedBytesPerPixel
        switch format.fourcc {
        case "NV12":
            guard bytes.count >= stride * h + stride * (h / 2) else { return nil }
            return SourcePicture(format: pixelFormat, width: w, height: h,
                                 planes: (UnsafePointer(data), UnsafePointer(data + stride * h), nil, nil),
                                 strides: (Int32(stride), Int32(stride), 0, 0))
        case "YU12":
            let chromaStride = stride / 2, lumaSize = stride * h, chromaSize = chromaStride * (h / 2)
            guard bytes.count >= lumaSize + 2 * chromaSize else { return nil }
            return SourcePicture(format: pixelFormat, width: w, height: h,
                                 planes: (UnsafePointer(data), UnsafePointer(data + lumaSize), UnsafePointer(data + lumaSize + chromaSize), nil),
                                 strides: (Int32(stride), Int32(chromaStride), Int32(chromaStride), 0))
        default:
            guard bytes.count >= stride * h else { return nil }
            return SourcePicture(format: pixelFormat, width: w, height: h,
                                 planes: (UnsafePointer(data), nil, nil, nil), strides: (Int32(stride), 0, 0, 0))
        }
    }
}

/// Decodes one compressed camera frame (MJPEG, H.264) at a time with libavcodec.
final class CompressedFrameDecoder {
    private var context: UnsafeMutablePointer<AVCodecContext>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private var frame: UnsafeMutablePointer<AVFrame>?
    /// The camera's bytes copied into a buffer with the padding libavcodec requires (reused).
    private var padded: UnsafeMutablePointer<UInt8>
    private var paddedCapacity = 0

    init(codec id: AVCodecID, devicePath: String) throws {
        FFmpegLogging.configureOnce()
        guard let codec = avcodec_find_decoder(id), let context = avcodec_alloc_context3(codec) else {
            throw CaptureError.device(path: devicePath, reason: "no decoder for \(String(cString: avcodec_get_name(id)))")
        }
        self.context = context
        context.pointee.thread_count = 1
        context.pointee.err_recognition |= AV_EF_EXPLODE
        packet = av_packet_alloc()
        frame = av_frame_alloc()
        padded = .allocate(capacity: 1)
        guard avcodec_open2(context, codec, nil) >= 0 else {
            throw CaptureError.device(path: devicePath, reason: "cannot open the \(String(cString: avcodec_get_name(id))) decoder")
        }
    }

    deinit {
        avcodec_free_context(&context)
        av_packet_free(&packet)
        av_frame_free(&frame)
        padded.deallocate()
    }

    /// The decoded picture, valid until the next call; nil if the data did not decode.
    func decode(_ bytes: UnsafeRawBufferPointer) -> UnsafeMutablePointer<AVFrame>? {
        guard let context, let packet, let frame, let source = bytes.baseAddress, bytes.count > 0 else { return nil }
        let needed = bytes.count + Int(AV_INPUT_BUFFER_PADDING_SIZE)
        if needed > paddedCapacity {
            padded.deallocate()
            paddedCapacity = needed * 2
            padded = .allocate(capacity: paddedCapacity)
        }
        padded.update(from: source.assumingMemoryBound(to: UInt8.self), count: bytes.count)
        (padded + bytes.count).update(repeating: 0, count: Int(AV_INPUT_BUFFER_PADDING_SIZE))
        packet.pointee.data = padded
        packet.pointee.size = Int32(bytes.count)
        defer { packet.pointee.data = nil; packet.pointee.size = 0 }
        guard avcodec_send_packet(context, packet) >= 0 else { return nil }
        av_frame_unref(frame)
        return avcodec_receive_frame(context, frame) == 0 ? frame : nil
    }
}

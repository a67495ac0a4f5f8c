import CTubeletShim
import CV4L2
import Glibc

/// What a V4L2 device says about itself (VIDIOC_QUERYCAP).
public struct V4L2Capability: Sendable, Equatable {
    public var driver: String
    public var card: String
    public var canCapture: Bool
    public var canStream: Bool
    public init(driver: String, card: String, canCapture: Bool, canStream: Bool) {
        self.driver = driver; self.card = card; self.canCapture = canCapture; self.canStream = canStream
    }
}

/// One pixel format a device offers (VIDIOC_ENUM_FMT).
public struct V4L2FormatDescription: Sendable, Equatable {
    public var fourcc: String
    public var description: String
    /// Provided by libv4lconvert in software rather than by the device.
    public var emulated: Bool
    public init(fourcc: String, description: String, emulated: Bool = false) {
        self.fourcc = fourcc; self.description = description; self.emulated = emulated
    }
}

/// A capture format (VIDIOC_S_FMT): what was asked for, or what the driver granted.
public struct V4L2Format: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var fourcc: String
    public var bytesPerLine: Int
    public var sizeImage: Int
    public init(width: Int, height: Int, fourcc: String, bytesPerLine: Int = 0, sizeImage: Int = 0) {
        self.width = width; self.height = height; self.fourcc = fourcc
        self.bytesPerLine = bytesPerLine; self.sizeImage = sizeImage
    }
}

/// A filled buffer taken from the device (VIDIOC_DQBUF).
public struct V4L2DequeuedBuffer: Sendable, Equatable {
    public var index: Int
    public var bytesUsed: Int
    /// CLOCK_MONOTONIC seconds at which the driver captured the frame.
    public var timestamp: Double
    public var sequence: UInt32
    /// The driver flagged the data as damaged (V4L2_BUF_FLAG_ERROR).
    public var hasError: Bool
    public init(index: Int, bytesUsed: Int, timestamp: Double, sequence: UInt32, hasError: Bool = false) {
        self.index = index; self.bytesUsed = bytesUsed; self.timestamp = timestamp
        self.sequence = sequence; self.hasError = hasError
    }
}

/// A failed device call with its errno.
public struct V4L2IOError: Error, Sendable, Equatable {
    public var operation: String
    public var code: Int32
    public init(operation: String, code: Int32) { self.operation = operation; self.code = code }
    public var message: String { "\(operation): \(String(cString: strerror(code)))" }
}

/// The device calls `V4L2Camera` needs, one method per ioctl. `LibV4L2DeviceIO` makes them
/// through libv4l2; tests substitute a fake device.
public protocol V4L2DeviceIO: AnyObject {
    func open(path: String) throws
    func close()
    func queryCapability() throws -> V4L2Capability
    func formats() throws -> [V4L2FormatDescription]
    /// Asks for `format`; returns what the driver granted (it may change size or format).
    func setFormat(_ format: V4L2Format) throws -> V4L2Format
    /// Asks for a frame rate; returns the granted rate, or nil when the device cannot set one.
    func setFrameRate(_ fps: Double) throws -> Double?
    /// Requests `count` memory-mapped buffers (0 frees them); returns how many were granted.
    func requestBuffers(count: Int) throws -> Int
    func mapBuffer(index: Int) throws -> UnsafeRawBufferPointer
    func unmapBuffer(_ buffer: UnsafeRawBufferPointer)
    func queueBuffer(index: Int) throws
    func dequeueBuffer() throws -> V4L2DequeuedBuffer
    func streamOn() throws
    func streamOff() throws
    /// Waits until a filled buffer can be dequeued; false on timeout.
    func waitForFrame(timeout: Double) throws -> Bool
}

/// FourCC text ("YUYV") to the V4L2 code, and back.
func fourccCode(_ text: String) -> UInt32 {
    let bytes = Array(text.utf8.prefix(4)) + Array(repeating: UInt8(ascii: " "), count: max(0, 4 - text.utf8.count))
    return tubelet_v4l2_fourcc(CChar(bitPattern: bytes[0]), CChar(bitPattern: bytes[1]),
                               CChar(bitPattern: bytes[2]), CChar(bitPattern: bytes[3]))
}

func fourccText(_ code: UInt32) -> String {
    let bytes = (0..<4).map { UInt8(truncatingIfNeeded: code >> ($0 * 8)) }
    return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: " ")
}

private extension String {
    func trimmingCharacters(in set: Character) -> String {
        var s = self
        while s.last == set { s.removeLast() }
        return s
    }
}

/// Text of a fixed-size C char array (a tuple in Swift).
private func cString<T>(_ tuple: T) -> String {
    withUnsafeBytes(of: tuple) { raw in
        String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
    }
}

/// V4L2 through libv4l2, which adds software-converted formats (libv4lconvert) for cameras
/// whose native formats are unusual.
public final class LibV4L2DeviceIO: V4L2DeviceIO {
    private var fd: Int32 = -1

    public init() {}
    deinit { close() }

    public func open(path: String) throws {
        fd = tubelet_v4l2_open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 { throw V4L2IOError(operation: "open", code: errno) }
    }

    public func close() {
        if fd >= 0 { v4l2_close(fd) }
        fd = -1
    }

    private func ioctl<T>(_ request: UInt, _ name: String, _ argument: inout T) throws {
        while true {
            if tubelet_v4l2_ioctl(fd, request, &argument) == 0 { return }
            if errno != EINTR { throw V4L2IOError(operation: name, code: errno) }
        }
    }

    public func queryCapability() throws -> V4L2Capability {
        var cap = v4l2_capability()
        try ioctl(tubelet_vidioc_querycap(), "VIDIOC_QUERYCAP", &cap)
        let caps = cap.capabilities & UInt32(V4L2_CAP_DEVICE_CAPS) != 0 ? cap.device_caps : cap.capabilities
        return V4L2Capability(driver: cString(cap.driver), card: cString(cap.card),
                              canCapture: caps & UInt32(V4L2_CAP_VIDEO_CAPTURE) != 0,
                              canStream: caps & UInt32(V4L2_CAP_STREAMING) != 0)
    }

    public func formats() throws -> [V4L2FormatDescription] {
        var result: [V4L2FormatDescription] = []
        for index in 0..<64 {
            var desc = v4l2_fmtdesc()
            desc.index = UInt32(index)
            desc.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
            do { try ioctl(tubelet_vidioc_enum_fmt(), "VIDIOC_ENUM_FMT", &desc) } catch { break }
            result.append(V4L2FormatDescription(fourcc: fourccText(desc.pixelformat), description: cString(desc.description),
                                                emulated: desc.flags & UInt32(V4L2_FMT_FLAG_EMULATED) != 0))
        }
        return result
    }

    public func setFormat(_ format: V4L2Format) throws -> V4L2Format {
        var fmt = v4l2_format()
        fmt.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        fmt.fmt.pix.width = UInt32(format.width)
        fmt.fmt.pix.height = UInt32(format.height)
        fmt.fmt.pix.pixelformat = fourccCode(format.fourcc)
        fmt.fmt.pix.field = V4L2_FIELD_ANY.rawValue
        try ioctl(tubelet_vidioc_s_fmt(), "VIDIOC_S_FMT", &fmt)
        return V4L2Format(width: Int(fmt.fmt.pix.width), height: Int(fmt.fmt.pix.height),
                          fourcc: fourccText(fmt.fmt.pix.pixelformat),
                          bytesPerLine: Int(fmt.fmt.pix.bytesperline), sizeImage: Int(fmt.fmt.pix.sizeimage))
    }

    public func setFrameRate(_ fps: Double) throws -> Double? {
        var parm = v4l2_streamparm()
        parm.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        parm.parm.capture.timeperframe = v4l2_fract(numerator: 1000, denominator: UInt32((fps * 1000).rounded()))
        do { try ioctl(tubelet_vidioc_s_parm(), "VIDIOC_S_PARM", &parm) } catch let error as V4L2IOError where error.code == ENOTTY || error.code == EINVAL {
            return nil
        }
        guard parm.parm.capture.capability & UInt32(V4L2_CAP_TIMEPERFRAME) != 0 else { return nil }
        let tpf = parm.parm.capture.timeperframe
        return tpf.numerator > 0 ? Double(tpf.denominator) / Double(tpf.numerator) : nil
    }

    public func requestBuffers(count: Int) throws -> Int {
        var req = v4l2_requestbuffers()
        req.count = UInt32(count)
        req.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        req.memory = V4L2_MEMORY_MMAP.rawValue
        try ioctl(tubelet_vidioc_reqbufs(), "VIDIOC_REQBUFS", &req)
        return Int(req.count)
    }

    public func mapBuffer(index: Int) throws -> UnsafeRawBufferPointer {
        var buf = v4l2_buffer()
        buf.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        buf.memory = V4L2_MEMORY_MMAP.rawValue
        buf.index = UInt32(index)
        try ioctl(tubelet_vidioc_querybuf(), "VIDIOC_QUERYBUF", &buf)
        let address = v4l2_mmap(nil, Int(buf.length), PROT_READ | PROT_WRITE, MAP_SHARED, fd, Int64(buf.m.offset))
        guard let address, address != MAP_FAILED else { throw V4L2IOError(operation: "mmap", code: errno) }
        return UnsafeRawBufferPointer(start: address, count: Int(buf.length))
    }

    public func unmapBuffer(_ buffer: UnsafeRawBufferPointer) {
        if let base = buffer.baseAddress { v4l2_munmap(UnsafeMutableRawPointer(mutating: base), buffer.count) }
    }

    public func queueBuffer(index: Int) throws {
        var buf = v4l2_buffer()
        buf.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        buf.memory = V4L2_MEMORY_MMAP.rawValue
        buf.index = UInt32(index)
        try ioctl(tubelet_vidioc_qbuf(), "VIDIOC_QBUF", &buf)
    }

    public func dequeueBuffer() throws -> V4L2DequeuedBuffer {
        var buf = v4l2_buffer()
        buf.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        buf.memory = V4L2_MEMORY_MMAP.rawValue
        try ioctl(tubelet_vidioc_dqbuf(), "VIDIOC_DQBUF", &buf)
        return V4L2DequeuedBuffer(index: Int(buf.index), bytesUsed: Int(buf.bytesused),
                                  timestamp: Double(buf.timestamp.tv_sec) + Double(buf.timestamp.tv_usec) / 1e6,
                                  sequence: buf.sequence, hasError: buf.flags & UInt32(V4L2_BUF_FLAG_ERROR) != 0)
    }

    public func streamOn() throws {
        var type = Int32(V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue)
        try ioctl(tubelet_vidioc_streamon(), "VIDIOC_STREAMON", &type)
    }

    public func streamOff() throws {
        var type = Int32(V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue)
        try ioctl(tubelet_vidioc_streamoff(), "VIDIOC_STREAMOFF", &type)
    }

    public func waitForFrame(timeout: Double) throws -> Bool {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let result = poll(&descriptor, 1, Int32(max(0, timeout) * 1000))
        if result < 0 {
            if errno == EINTR { return false }
            throw V4L2IOError(operation: "poll", code: errno)
        }
        if result > 0 && descriptor.revents & Int16(POLLERR) != 0 {
            throw V4L2IOError(operation: "poll", code: EIO)
        }
        return result > 0
    }
}

import Foundation
import Glibc
import TubeletStreaming

/// A V4L2 device in memory: offers formats, clamps sizes like a driver, hands out buffers in the
/// order they were queued, and records every call. It can be missing, busy, or stop delivering.
final class FakeV4L2Device: V4L2DeviceIO, @unchecked Sendable {
    struct Config {
        var exists = true
        var busyOperation: String? = nil
        var canCapture = true
        var formats = [V4L2FormatDescription(fourcc: "YUYV", description: "YUYV 4:2:2"),
                       V4L2FormatDescription(fourcc: "NV12", description: "Y/CbCr 4:2:0")]
        var maxWidth = 640
        var maxHeight = 480
        var maxFPS = 30.0
        /// Frames are delivered only while this is true.
        var delivering = true
        var frameInterval = 0.01
        /// YUYV / NV12 fill value (Y, U, V), or the JPEG to deliver for MJPG.
        var yuv: (UInt8, UInt8, UInt8) = (81, 90, 240)
        var jpeg: [UInt8] = []
    }

    private let lock = NSLock()
    private var config: Config
    private(set) var calls: [String] = []
    private var isOpen = false
    private var format = V4L2Format(width: 0, height: 0, fourcc: "")
    private var buffers: [UnsafeMutableRawBufferPointer] = []
    private var queued: [Int] = []
    private var mapped = Set<Int>()
    private var streaming = false
    private var sequence: UInt32 = 0
    private(set) var dequeuedIndices: [Int] = []

    init(_ config: Config = Config()) { self.config = config }

    deinit { buffers.forEach { $0.deallocate() } }

    func update(_ change: (inout Config) -> Void) { lock.lock(); change(&config); lock.unlock() }

    var callLog: [String] { lock.lock(); defer { lock.unlock() }; return calls }
    var dequeued: [Int] { lock.lock(); defer { lock.unlock() }; return dequeuedIndices }
    var queuedCount: Int { lock.lock(); defer { lock.unlock() }; return queued.count }
    var mappedCount: Int { lock.lock(); defer { lock.unlock() }; return mapped.count }
    var opened: Bool { lock.lock(); defer { lock.unlock() }; return isOpen }

    private func call(_ name: String) throws {
        lock.lock(); defer { lock.unlock() }
        calls.append(name)
        if config.busyOperation == name { throw V4L2IOError(operation: name, code: EBUSY) }
    }

    func open(path: String) throws {
        try call("open")
        lock.lock(); defer { lock.unlock() }
        guard config.exists else { throw V4L2IOError(operation: "open", code: ENOENT) }
        isOpen = true
    }

    func close() {
        lock.lock(); defer { lock.unlock() }
        calls.append("close")
        isOpen = false
    }

    func queryCapability() throws -> V4L2Capability {
        try call("VIDIOC_QUERYCAP")
        return V4L2Capability(driver: "fake", card: "Fake Camera", canCapture: config.canCapture, canStream: true)
    }

    func formats() throws -> [V4L2FormatDescription] {
        try call("VIDIOC_ENUM_FMT")
        return config.formats
    }

    func setFormat(_ requested: V4L2Format) throws -> V4L2Format {
        try call("VIDIOC_S_FMT \(requested.fourcc) \(requested.width)x\(requested.height)")
        try call("VIDIOC_S_FMT")
        lock.lock(); defer { lock.unlock() }
        var granted = requested
        if !config.formats.contains(where: { $0.fourcc == requested.fourcc }) { granted.fourcc = config.formats[0].fourcc }
        granted.width = min(requested.width, config.maxWidth) & ~1
        granted.height = min(requested.height, config.maxHeight) & ~1
        switch granted.fourcc {
        case "YUYV": granted.bytesPerLine = granted.width * 2; granted.sizeImage = granted.bytesPerLine * granted.height
        case "NV12": granted.bytesPerLine = granted.width; granted.sizeImage = granted.width * granted.height * 3 / 2
        default: granted.bytesPerLine = 0; granted.sizeImage = max(granted.width * granted.height, config.jpeg.count)
        }
        format = granted
        return granted
    }

    func setFrameRate(_ fps: Double) throws -> Double? {
        try call("VIDIOC_S_PARM")
        return min(fps, config.maxFPS)
    }

    func requestBuffers(count: Int) throws -> Int {
        try call("VIDIOC_REQBUFS \(count)")
        try call("VIDIOC_REQBUFS")
        lock.lock(); defer { lock.unlock() }
        buffers.forEach { $0.deallocate() }
        buffers = (0..<count).map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: format.sizeImage, alignment: 64) }
        queued = []
        return count
    }

    func mapBuffer(index: Int) throws -> UnsafeRawBufferPointer {
        try call("mmap \(index)")
        lock.lock(); defer { lock.unlock() }
        guard index < buffers.count else { throw V4L2IOError(operation: "mmap", code: EINVAL) }
        mapped.insert(index)
        return UnsafeRawBufferPointer(buffers[index])
    }

    func unmapBuffer(_ buffer: UnsafeRawBufferPointer) {
        lock.lock(); defer { lock.unlock() }
        if let index = buffers.firstIndex(where: { UnsafeRawPointer($0.baseAddress) == buffer.baseAddress }) {
            calls.append("munmap \(index)")
            mapped.remove(index)
        }
    }

    func queueBuffer(index: Int) throws {
        lock.lock(); defer { lock.unlock() }
        calls.append("VIDIOC_QBUF \(index)")
        guard index < buffers.count, !queued.contains(index) else { throw V4L2IOError(operation: "VIDIOC_QBUF", code: EINVAL) }
        queued.append(index)
    }

    func dequeueBuffer() throws -> V4L2DequeuedBuffer {
        lock.lock(); defer { lock.unlock() }
        guard streaming, config.delivering, !queued.isEmpty else { throw V4L2IOError(operation: "VIDIOC_DQBUF", code: EAGAIN) }
        let index = queued.removeFirst()
        let used = fill(buffers[index])
        dequeuedIndices.append(index)
        sequence += 1
        return V4L2DequeuedBuffer(index: index, bytesUsed: used, timestamp: CaptureClock.monotonicSeconds(), sequence: sequence)
    }

    func streamOn() throws {
        try call("VIDIOC_STREAMON")
        lock.lock(); streaming = true; lock.unlock()
    }

    func streamOff() throws {
        try call("VIDIOC_STREAMOFF")
        lock.lock(); streaming = false; lock.unlock()
    }

    func waitForFrame(timeout: Double) throws -> Bool {
        lock.lock()
        let ready = streaming && config.delivering && !queued.isEmpty
        let interval = config.frameInterval
        lock.unlock()
        Thread.sleep(forTimeInterval: ready ? min(interval, timeout) : timeout)
        return ready
    }

    /// Writes one frame into `buffer`; returns the bytes used.
    private func fill(_ buffer: UnsafeMutableRawBufferPointer) -> Int {
        let (y, u, v) = config.yuv
        switch format.fourcc {
        case "YUYV":
            for i in stride(from: 0, to: format.sizeImage, by: 4) {
                buffer[i] = y; buffer[i + 1] = u; buffer[i + 2] = y; buffer[i + 3] = v
            }
            return format.sizeImage
        case "NV12":
            let luma = format.width * format.height
            for i in 0..<luma { buffer[i] = y }
            for i in stride(from: luma, to: format.sizeImage, by: 2) { buffer[i] = u; buffer[i + 1] = v }
            return format.sizeImage
        default:
            for (i, byte) in config.jpeg.enumerated() { buffer[i] = byte }
            return config.jpeg.count
        }
    }
}

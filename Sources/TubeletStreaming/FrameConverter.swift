import CFFmpeg

/// A decoded picture in any FFmpeg pixel format: up to 4 planes with their strides.
struct SourcePicture {
    var format: AVPixelFormat
    var width: Int
    var height: Int
    var planes: (UnsafePointer<UInt8>?, UnsafePointer<UInt8>?, UnsafePointer<UInt8>?, UnsafePointer<UInt8>?)
    var strides: (Int32, Int32, Int32, Int32)
    var fullRange: Bool = false
    var colorspace: AVColorSpace = AVCOL_SPC_UNSPECIFIED

    init(frame: UnsafePointer<AVFrame>) {
        let f = frame.pointee
        format = AVPixelFormat(rawValue: f.format)
        width = Int(f.width)
        height = Int(f.height)
        planes = (UnsafePointer(f.data.0), UnsafePointer(f.data.1), UnsafePointer(f.data.2), UnsafePointer(f.data.3))
        strides = (f.linesize.0, f.linesize.1, f.linesize.2, f.linesize.3)
        fullRange = f.color_range == AVCOL_RANGE_JPEG
        colorspace = f.colorspace
    }

    init(format: AVPixelFormat, width: Int, height: Int,
         planes: (UnsafePointer<UInt8>?, UnsafePointer<UInt8>?, UnsafePointer<UInt8>?, UnsafePointer<UInt8>?),
         strides: (Int32, Int32, Int32, Int32)) {
        self.format = format
        self.width = width
        self.height = height
        self.planes = planes
        self.strides = strides
    }
}

/// Converts pictures of any size and pixel format to the output geometry as RGB24, in one
/// swscale pass straight into the caller's buffer (a ring slot). Re-creates the scaler when the
/// source size or format changes mid-stream, and counts those changes.
final class FrameConverter {
    let geometry: FrameGeometry
    private var context: OpaquePointer?
    private var currentKey: Key?
    private let sourcePlanes = UnsafeMutablePointer<UnsafePointer<UInt8>?>.allocate(capacity: 4)
    private let sourceStrides = UnsafeMutablePointer<Int32>.allocate(capacity: 4)
    private let destinationPlanes = UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>.allocate(capacity: 4)
    private let destinationStrides = UnsafeMutablePointer<Int32>.allocate(capacity: 4)
    /// How many times the source size or pixel format changed after the first picture.
    private(set) var sourceChanges = 0

    private struct Key: Equatable {
        var format: AVPixelFormat
        var width: Int, height: Int
        var rect: SourceRect
        /// Where the scaled picture goes in the output (all of it, or a letterboxed part).
        var target: SourceRect
        var fullRange: Bool
        var colorspace: AVColorSpace
    }

    init(geometry: FrameGeometry) {
        self.geometry = geometry
        sourcePlanes.initialize(repeating: nil, count: 4)
        sourceStrides.initialize(repeating: 0, count: 4)
        destinationPlanes.initialize(repeating: nil, count: 4)
        destinationStrides.initialize(repeating: 0, count: 4)
    }

    deinit {
        sws_freeContext(context)
        sourcePlanes.deallocate()
        sourceStrides.deallocate()
        destinationPlanes.deallocate()
        destinationStrides.deallocate()
    }

    /// Writes geometry.byteCount bytes of RGB24 into `destination`.
    func convert(_ picture: SourcePicture, into destination: UnsafeMutablePointer<UInt8>) throws {
        guard picture.width > 0, picture.height > 0,
              let descriptor = av_pix_fmt_desc_get(picture.format) else {
            throw ConversionError("unsupported picture \(picture.width)x\(picture.height) format \(picture.format.rawValue)")
        }
        let (format, impliedFullRange) = Self.withoutDeprecatedJPEGFormat(picture.format)
        var rect = geometry.sourceRect(sourceWidth: picture.width, sourceHeight: picture.height)
        guard rect.width > 0, rect.height > 0,
              let target = geometry.destinationRect(sourceWidth: picture.width, sourceHeight: picture.height) else {
            throw RegionOutsidePicture(geometry: geometry, width: picture.width, height: picture.height)
        }
        rect.x &= ~((1 << Int(descriptor.pointee.log2_chroma_w)) - 1)
        rect.y &= ~((1 << Int(descriptor.pointee.log2_chroma_h)) - 1)
        let key = Key(format: format, width: picture.width, height: picture.height, rect: rect, target: target,
                      fullRange: picture.fullRange || impliedFullRange, colorspace: picture.colorspace)
        if key != currentKey { try reconfigure(for: key) }

        fillCroppedPlanes(picture, rect: rect, descriptor: descriptor)
        let stride = geometry.width * 3
        if target.width != geometry.width || target.height != geometry.height {
            // Letterbox: black bars, the picture scaled into the middle.
            destination.update(repeating: 0, count: geometry.byteCount)
        }
        destinationPlanes[0] = destination + target.y * stride + target.x * 3
        destinationStrides[0] = Int32(stride)
        let rows = sws_scale(context, sourcePlanes, sourceStrides, 0, Int32(rect.height), destinationPlanes, destinationStrides)
        guard rows == Int32(target.height) else {
            throw ConversionError("swscale produced \(rows) rows instead of \(target.height)")
        }
    }

    private func reconfigure(for key: Key) throws {
        if currentKey != nil, currentKey!.width != key.width || currentKey!.height != key.height || currentKey!.format != key.format {
            sourceChanges += 1
        }
        context = sws_getCachedContext(context, Int32(key.rect.width), Int32(key.rect.height), key.format,
                                       Int32(key.target.width), Int32(key.target.height), AV_PIX_FMT_RGB24,
                                       SWS_BILINEAR, nil, nil, nil)
        guard context != nil else {
            currentKey = nil
            throw ConversionError("swscale cannot convert \(key.width)x\(key.height) format \(key.format.rawValue) to RGB24")
        }
        // HD sources are BT.709; swscale assumes BT.601 unless told.
        let matrix = key.colorspace == AVCOL_SPC_BT709 || (key.colorspace == AVCOL_SPC_UNSPECIFIED && key.height >= 720)
            ? SWS_CS_ITU709 : SWS_CS_DEFAULT
        let coefficients = sws_getCoefficients(matrix)
        sws_setColorspaceDetails(context, coefficients, key.fullRange ? 1 : 0, coefficients, 1, 0, 1 << 16, 1 << 16)
        currentKey = key
    }

    /// Points the source planes at the top-left corner of the crop rectangle.
    private func fillCroppedPlanes(_ picture: SourcePicture, rect: SourceRect, descriptor: UnsafePointer<AVPixFmtDescriptor>) {
        var pixelSteps: (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
        withUnsafeMutablePointer(to: &pixelSteps) {
            $0.withMemoryRebound(to: Int32.self, capacity: 4) { av_image_fill_max_pixsteps($0, nil, descriptor) }
        }
        let isRGB = descriptor.pointee.flags & UInt64(AV_PIX_FMT_FLAG_RGB) != 0
        for plane in 0..<4 {
            let isChroma = (plane == 1 || plane == 2) && !isRGB
            let x = isChroma ? rect.x >> Int(descriptor.pointee.log2_chroma_w) : rect.x
            let y = isChroma ? rect.y >> Int(descriptor.pointee.log2_chroma_h) : rect.y
            let stride = element(picture.strides, plane)
            let step = element(pixelSteps, plane)
            sourcePlanes[plane] = element(picture.planes, plane).map { $0 + y * Int(stride) + x * Int(step) }
            sourceStrides[plane] = stride
        }
    }

    /// MJPEG decoders emit yuvj* formats, which swscale deprecates in favour of a range flag.
    private static func withoutDeprecatedJPEGFormat(_ format: AVPixelFormat) -> (AVPixelFormat, Bool) {
        switch format {
        case AV_PIX_FMT_YUVJ420P: return (AV_PIX_FMT_YUV420P, true)
        case AV_PIX_FMT_YUVJ422P: return (AV_PIX_FMT_YUV422P, true)
        case AV_PIX_FMT_YUVJ444P: return (AV_PIX_FMT_YUV444P, true)
        case AV_PIX_FMT_YUVJ440P: return (AV_PIX_FMT_YUV440P, true)
        default: return (format, false)
        }
    }
}

/// A region (in pixels) that reaches outside the stream's real picture: that output gets no frames.
public struct RegionOutsidePicture: Error, CustomStringConvertible {
    public let geometry: FrameGeometry
    public let width: Int, height: Int
    public var description: String { "\(geometry) does not fit the \(width)x\(height) picture" }
}

struct ConversionError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Element `index` of a homogeneous 4-tuple, without building an array (no allocation per frame).
func element<T>(_ tuple: (T, T, T, T), _ index: Int) -> T {
    withUnsafeBytes(of: tuple) { $0.load(fromByteOffset: index * MemoryLayout<T>.stride, as: T.self) }
}

/// The geometry every captured frame is converted to (RGB24, converted once, in libswscale).
public struct FrameGeometry: Sendable, Equatable, CustomStringConvertible {
    public enum ResizePolicy: Sendable, Equatable {
        /// Scale to exactly width x height, ignoring the aspect ratio.
        case stretch(width: Int, height: Int)
        /// torchvision's eval recipe: resize the short side to `shortSide`, then centre-crop `crop` x `crop`.
        case shortSideCenterCrop(shortSide: Int, crop: Int)
    }

    public var policy: ResizePolicy

    public init(_ policy: ResizePolicy) { self.policy = policy }

    public static func stretch(width: Int, height: Int) -> FrameGeometry {
        FrameGeometry(.stretch(width: width, height: height))
    }

    public static func shortSideCenterCrop(shortSide: Int, crop: Int) -> FrameGeometry {
        FrameGeometry(.shortSideCenterCrop(shortSide: shortSide, crop: crop))
    }

    /// torchvision's Kinetics eval transform: short side 256, centre crop 224.
    public static let kinetics = FrameGeometry.shortSideCenterCrop(shortSide: 256, crop: 224)

    public var width: Int {
        switch policy {
        case .stretch(let width, _): return width
        case .shortSideCenterCrop(_, let crop): return crop
        }
    }

    public var height: Int {
        switch policy {
        case .stretch(_, let height): return height
        case .shortSideCenterCrop(_, let crop): return crop
        }
    }

    /// Bytes of one converted RGB24 frame.
    public var byteCount: Int { width * height * 3 }

    public var description: String {
        switch policy {
        case .stretch(let w, let h): return "stretch \(w)x\(h)"
        case .shortSideCenterCrop(let s, let c): return "short side \(s), centre crop \(c)x\(c)"
        }
    }

    /// The rectangle of a `sourceWidth` x `sourceHeight` picture that maps onto the output.
    /// Cropping in source space (instead of resizing the whole picture, then cropping) makes
    /// swscale touch only the pixels that survive. Offsets are rounded to even numbers so that
    /// chroma-subsampled planes (4:2:0, 4:2:2) can be cropped by pointer arithmetic.
    public func sourceRect(sourceWidth: Int, sourceHeight: Int) -> SourceRect {
        switch policy {
        case .stretch:
            return SourceRect(x: 0, y: 0, width: sourceWidth, height: sourceHeight)
        case .shortSideCenterCrop(let shortSide, let crop):
            let scale = Double(shortSide) / Double(min(sourceWidth, sourceHeight))
            // Size of the resized picture, as torchvision computes it (long side truncated).
            let resizedWidth = sourceWidth <= sourceHeight ? shortSide : Int(Double(sourceWidth) * scale)
            let resizedHeight = sourceHeight < sourceWidth ? shortSide : Int(Double(sourceHeight) * scale)
            let left = Int((Double(resizedWidth - crop) / 2).rounded())
            let top = Int((Double(resizedHeight - crop) / 2).rounded())
            func even(_ v: Int) -> Int { v & ~1 }
            var x = even(max(0, Int((Double(left) / scale).rounded())))
            var y = even(max(0, Int((Double(top) / scale).rounded())))
            var w = min(sourceWidth - x, max(1, Int((Double(crop) / scale).rounded())))
            var h = min(sourceHeight - y, max(1, Int((Double(crop) / scale).rounded())))
            if w <= 0 || h <= 0 { x = 0; y = 0; w = sourceWidth; h = sourceHeight }
            return SourceRect(x: x, y: y, width: w, height: h)
        }
    }
}

/// A rectangle in source pixels.
public struct SourceRect: Sendable, Equatable {
    public var x: Int, y: Int, width: Int, height: Int
    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x; self.y = y; self.width = width; self.height = height
    }
}

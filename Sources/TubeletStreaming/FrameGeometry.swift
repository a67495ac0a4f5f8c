/// The geometry every captured frame is converted to (RGB24, converted once, in libswscale).
public struct FrameGeometry: Sendable, Equatable, CustomStringConvertible {
    public enum ResizePolicy: Sendable, Equatable {
        /// Scale to exactly width x height, ignoring the aspect ratio.
        case stretch(width: Int, height: Int)
        /// torchvision's eval recipe: resize the short side to `shortSide`, then centre-crop `crop` x `crop`.
        case shortSideCenterCrop(shortSide: Int, crop: Int)
        /// A rectangle of the picture brought to width x height: `crop` takes the largest centred box of the
        /// output's aspect inside it, `pad` letterboxes all of it (black bars), `stretch` ignores the aspect.
        case region(RegionRect, fit: RegionFit, width: Int, height: Int)
    }

    public var policy: ResizePolicy

    public init(_ policy: ResizePolicy) { self.policy = policy }

    public static func stretch(width: Int, height: Int) -> FrameGeometry {
        FrameGeometry(.stretch(width: width, height: height))
    }

    public static func shortSideCenterCrop(shortSide: Int, crop: Int) -> FrameGeometry {
        FrameGeometry(.shortSideCenterCrop(shortSide: shortSide, crop: crop))
    }

    public static func region(_ rect: RegionRect, fit: RegionFit, width: Int, height: Int) -> FrameGeometry {
        FrameGeometry(.region(rect, fit: fit, width: width, height: height))
    }

    /// torchvision's Kinetics eval transform: short side 256, centre crop 224.
    public static let kinetics = FrameGeometry.shortSideCenterCrop(shortSide: 256, crop: 224)

    public var width: Int {
        switch policy {
        case .stretch(let width, _): return width
        case .shortSideCenterCrop(_, let crop): return crop
        case .region(_, _, let width, _): return width
        }
    }

    public var height: Int {
        switch policy {
        case .stretch(_, let height): return height
        case .shortSideCenterCrop(_, let crop): return crop
        case .region(_, _, _, let height): return height
        }
    }

    /// Bytes of one converted RGB24 frame.
    public var byteCount: Int { width * height * 3 }

    public var description: String {
        switch policy {
        case .stretch(let w, let h): return "stretch \(w)x\(h)"
        case .shortSideCenterCrop(let s, let c): return "short side \(s), centre crop \(c)x\(c)"
        case .region(let rect, let fit, let w, let h): return "\(fit.rawValue) \(rect) to \(w)x\(h)"
        }
    }

    /// Where in the output the picture goes: all of it, except for `pad`, which letterboxes the region
    /// (its aspect kept, centred, the rest black). Nil when the region does not fit the picture.
    public func destinationRect(sourceWidth: Int, sourceHeight: Int) -> SourceRect? {
        guard case .region(let rect, let fit, let width, let height) = policy, fit == .pad else {
            return SourceRect(x: 0, y: 0, width: width, height: height)
        }
        guard let area = rect.pixels(sourceWidth: sourceWidth, sourceHeight: sourceHeight) else { return nil }
        let scale = min(Double(width) / Double(area.width), Double(height) / Double(area.height))
        let w = min(width, max(1, Int((Double(area.width) * scale).rounded())))
        let h = min(height, max(1, Int((Double(area.height) * scale).rounded())))
        return SourceRect(x: (width - w) / 2, y: (height - h) / 2, width: w, height: h)
    }

    /// The rectangle of a `sourceWidth` x `sourceHeight` picture that maps onto the output.
    /// Cropping in source space (instead of resizing the whole picture, then cropping) makes
    /// swscale touch only the pixels that survive. Offsets are rounded to even numbers so that
    /// chroma-subsampled planes (4:2:0, 4:2:2) can be cropped by pointer arithmetic.
    public func sourceRect(sourceWidth: Int, sourceHeight: Int) -> SourceRect {
        switch policy {
        case .stretch:
            return SourceRect(x: 0, y: 0, width: sourceWidth, height: sourceHeight)
        case .region(let rect, let fit, let width, let height):
            // A region that does not fit the picture converts nothing (FrameConverter reports it).
            guard let area = rect.pixels(sourceWidth: sourceWidth, sourceHeight: sourceHeight) else {
                return SourceRect(x: 0, y: 0, width: 0, height: 0)
            }
            guard fit == .crop else { return area }
            // The largest box of the output's aspect inside the region, centred; offsets even (chroma planes).
            let aspect = Double(width) / Double(height)
            var w = area.width, h = area.height
            if Double(w) / Double(h) > aspect { w = max(1, min(w, Int((Double(h) * aspect).rounded()))) }
            else { h = max(1, min(h, Int((Double(w) / aspect).rounded()))) }
            let x = (area.x + (area.width - w) / 2) & ~1, y = (area.y + (area.height - h) / 2) & ~1
            return SourceRect(x: x, y: y, width: min(w, sourceWidth - x), height: min(h, sourceHeight - y))
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

/// How a region is brought to the model's size.
public enum RegionFit: String, Sendable, Equatable, CaseIterable {
    /// The largest centred box of the model's aspect inside the region (the rest of the region is not seen).
    case crop
    /// All of the region, scaled to fit and letterboxed with black bars.
    case pad
    /// All of the region, scaled to the model's size regardless of its aspect.
    case stretch
}

/// A rectangle of the picture: in fractions of its width and height (0...1), or in pixels.
public struct RegionRect: Sendable, Equatable, CustomStringConvertible {
    public enum Units: String, Sendable, Equatable { case fraction, pixels }
    public var x: Double, y: Double, width: Double, height: Double
    public var units: Units

    public init(x: Double, y: Double, width: Double, height: Double, units: Units = .fraction) {
        self.x = x; self.y = y; self.width = width; self.height = height; self.units = units
    }

    /// The whole picture.
    public static let full = RegionRect(x: 0, y: 0, width: 1, height: 1)

    /// In pixels of a `sourceWidth` x `sourceHeight` picture, offsets rounded down to even numbers (4:2:0
    /// chroma); nil when it reaches outside the picture or has no area.
    public func pixels(sourceWidth: Int, sourceHeight: Int) -> SourceRect? {
        let (sx, sy) = units == .fraction ? (Double(sourceWidth), Double(sourceHeight)) : (1, 1)
        let left = Int((x * sx).rounded()) & ~1, top = Int((y * sy).rounded()) & ~1
        let right = Int(((x + width) * sx).rounded()), bottom = Int(((y + height) * sy).rounded())
        guard left >= 0, top >= 0, right <= sourceWidth, bottom <= sourceHeight, right - left >= 2, bottom - top >= 2 else { return nil }
        return SourceRect(x: left, y: top, width: right - left, height: bottom - top)
    }

    public var description: String {
        units == .fraction ? "[\(x), \(y), \(width), \(height)]" : "[\(Int(x)), \(Int(y)), \(Int(width)), \(Int(height))] px"
    }
}

/// A rectangle in source pixels.
public struct SourceRect: Sendable, Equatable {
    public var x: Int, y: Int, width: Int, height: Int
    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x; self.y = y; self.width = width; self.height = height
    }
}

import Foundation
import TubeletStreaming
import XCTest

/// Collects a source's state changes for assertions.
final class StateRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var changes: [SourceStateChange] = []

    func record(_ change: SourceStateChange) {
        lock.lock(); changes.append(change); lock.unlock()
    }

    var all: [SourceStateChange] {
        lock.lock(); defer { lock.unlock() }
        return changes
    }

    var names: [String] { all.map(\.state.name) }

    /// Waits until a change to a state named `name` has been recorded after the first `after` changes.
    @discardableResult
    func waitFor(_ name: String, after: Int = 0, timeout: Double) -> SourceStateChange? {
        var found: SourceStateChange?
        _ = waitUntil(timeout: timeout) {
            found = all.dropFirst(after).first { $0.state.name == name }
            return found != nil
        }
        return found
    }
}

/// Resources of this process, to check that sources leave no threads or descriptors behind.
enum ProcessResources {
    static var threadCount: Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? -1
    }

    static var openDescriptorCount: Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }

    /// Resident memory in bytes.
    static var residentBytes: Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return -1 }
        let fields = text.split(separator: " ")
        return (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

func makeOptions(_ url: String, geometry: FrameGeometry = .stretch(width: 64, height: 48)) -> CaptureOptions {
    var options = CaptureOptions(url: url, geometry: geometry)
    options.backoffFirst = 0.1
    options.backoffCap = 0.4
    options.connectTimeout = 3
    options.readTimeout = 2
    options.stallTimeout = 2
    options.ringCapacity = 256
    return options
}

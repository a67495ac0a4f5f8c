import Foundation
import Logging

/// One converted output of a capture: a geometry and the ring its frames go to.
public struct CaptureOutput: Sendable {
    public let geometry: FrameGeometry
    public let ring: FrameRing
    public init(geometry: FrameGeometry, ring: FrameRing) {
        self.geometry = geometry
        self.ring = ring
    }
    public init(geometry: FrameGeometry, capacity: Int) {
        self.init(geometry: geometry, ring: FrameRing(capacity: capacity, geometry: geometry))
    }
}

/// One open connection to a source, read by the capture thread.
protocol CaptureSession: AnyObject {
    /// Hands the next picture and its presentation time (seconds) to `body`; false at the end of the stream.
    func nextPicture(_ body: (SourcePicture, Double?) throws -> Void) throws -> Bool
    /// Decode errors so far in this session.
    var decodeErrors: Int { get }
}

/// A camera, stream or file captured on its own thread into a `FrameRing`: decoded, sampled to
/// the configured rate, converted once to the model geometry, timestamped on `CaptureClock`.
/// Watches its own health (connecting / streaming / stalled / offline), reports each change
/// through `onStateChange`, and reconnects with exponential backoff for as long as it runs.
///
/// A source runs once: `start()`, then `stop()`; make a new one to capture again.
public final class CaptureSource: @unchecked Sendable {
    public let options: CaptureOptions
    /// The first output's ring (`options.geometry`).
    public var ring: FrameRing { outputs[0].ring }
    /// Each picture is decoded once and converted once per output (a camera's regions), into its own ring.
    public let outputs: [CaptureOutput]
    /// The URL with credentials redacted: safe to log and publish.
    public let name: String

    private let onStateChange: @Sendable (SourceStateChange) -> Void
    private let onOutputProblem: @Sendable (_ output: Int, _ problem: String) -> Void
    /// Outputs whose last conversion failed (reported once until one succeeds again). Capture thread only.
    private var failingOutputs = Set<Int>()
    private let deviceIOFactory: @Sendable () -> V4L2DeviceIO
    private let interrupt = IOInterrupt()
    private let logger: Logger
    // Guarded by `condition`, which also serves interruptible sleeps:
    private let condition = NSCondition()
    private var currentState: SourceState = .connecting
    private var totals = CaptureCounters()
    private var started = false
    private var finished = false
    private var stopRequested = false
    private var captureThread: Thread?

    /// - Parameters:
    ///   - ring: where frames go; by default a ring of `options.ringCapacity` frames of `options.geometry`.
    ///   - extraOutputs: more geometries converted from the same decoded pictures, each into its own ring.
    ///   - onStateChange: called on the capture thread for each state change; keep it short.
    ///   - onOutputProblem: called on the capture thread when an output cannot be converted (a region
    ///     outside the picture), once until it converts again; the other outputs go on.
    ///   - deviceIO: makes the V4L2 device layer (libv4l2 by default; tests pass a fake).
    public init(options: CaptureOptions, ring: FrameRing? = nil, extraOutputs: [CaptureOutput] = [],
                onStateChange: @escaping @Sendable (SourceStateChange) -> Void = { _ in },
                onOutputProblem: @escaping @Sendable (_ output: Int, _ problem: String) -> Void = { _, _ in },
                deviceIO: (@Sendable () -> V4L2DeviceIO)? = nil) {
        let ring = ring ?? FrameRing(capacity: options.ringCapacity, geometry: options.geometry)
        let outputs = [CaptureOutput(geometry: options.geometry, ring: ring)] + extraOutputs
        for output in outputs {
            precondition(output.ring.width == output.geometry.width && output.ring.height == output.geometry.height,
                         "a ring's frame size must match its geometry")
        }
        self.options = options
        self.outputs = outputs
        self.onOutputProblem = onOutputProblem
        self.name = redactCredentials(options.url)
        self.onStateChange = onStateChange
        self.deviceIOFactory = deviceIO ?? { LibV4L2DeviceIO() }
        var logger = Logger(label: "tubelet.capture")
        logger[metadataKey: "source"] = "\(redactCredentials(options.url))"
        self.logger = logger
    }

    deinit { stop() }

    public var state: SourceState {
        condition.lock(); defer { condition.unlock() }
        return currentState
    }

    public var counters: CaptureCounters {
        condition.lock()
        var snapshot = totals
        condition.unlock()
        snapshot.framesDroppedByReaders = outputs.map(\.ring.droppedCount).max() ?? 0
        return snapshot
    }

    /// True from `start()` until the capture thread has ended.
    public var isRunning: Bool {
        condition.lock(); defer { condition.unlock() }
        return started && !finished
    }

    /// Starts the capture thread (once) and reports `connecting`.
    public func start() {
        condition.lock()
        guard !started else { condition.unlock(); return }
        started = true
        condition.unlock()
        logger.info("capture starting")
        emit(.connecting, previous: nil)
        let thread = Thread { [self] in
            run()
            condition.lock()
            finished = true
            condition.broadcast()
            condition.unlock()
        }
        thread.name = "capture"
        condition.lock()
        captureThread = thread
        condition.unlock()
        thread.start()
    }

    /// Ends the capture thread: aborts blocking reads and waits, and returns whether it ended within
    /// `timeout`. From `onStateChange` it only requests the stop (and returns false).
    @discardableResult
    public func stop(timeout: Double = 5) -> Bool {
        condition.lock()
        stopRequested = true
        condition.broadcast()
        condition.unlock()
        interrupt.requestStop()
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        // Called from onStateChange, on the capture thread: it ends once the callback returns.
        if let captureThread, Thread.current === captureThread { return false }
        while started && !finished {
            if !condition.wait(until: deadline) { return finished }
        }
        return true
    }

    private var isStopRequested: Bool {
        condition.lock(); defer { condition.unlock() }
        return stopRequested
    }

    // MARK: The capture thread

    private var isLive: Bool { options.kind != .file }

    private func run() {
        var backoff = ReconnectBackoff(first: options.backoffFirst, cap: options.backoffCap, jitter: options.backoffJitter)
        var attemptsSinceStreaming = 0
        var stream = StreamingState(options: options, outputs: outputs)
        while !isStopRequested {
            if case .stalled = state { setState(.connecting) }
            update { $0.connectAttempts += 1 }
            attemptsSinceStreaming += 1
            var failure: Error?
            stream.sessionStreamed = false
            do {
                let session = try openSession()
                stream.mapper.beginSession()
                try runSession(session, &stream)
            } catch {
                failure = error
            }
            if isStopRequested || (failure as? CaptureError) == .stopped { break }
            if stream.sessionStreamed {
                backoff.reset()
                attemptsSinceStreaming = 0
            }
            switch (failure, options.kind) {
            case (nil, .file) where options.loop && stream.sessionStreamed:
                continue  // start the file again at once (not a reconnect)
            case (nil, .file):
                setState(.offline(reason: "end of file"))
                return
            case (nil, _):
                setState(.offline(reason: "stream ended"))
            case (let error as CaptureError, _):
                if case .stalled = error { setState(.stalled(reason: error.reason)) } else { setState(.offline(reason: error.reason)) }
            case (let error?, _):
                setState(.offline(reason: "\(error)"))
            }
            stream.nextStreamIsReconnect = stream.everStreamed
            if let maxAttempts = options.maxAttempts, attemptsSinceStreaming >= maxAttempts {
                setState(.offline(reason: "gave up after \(maxAttempts) attempts: \(reasonOf(state))"))
                return
            }
            let delay = backoff.nextDelay()
            logger.debug("reconnecting in \(formatSeconds(delay)) s")
            sleep(seconds: delay)
        }
    }

    /// What the capture thread carries from one session to the next.
    private struct StreamingState {
        var mapper: TimestampMapper
        var sampler: FrameSampler
        /// One per output.
        let converters: [FrameConverter]
        var sessionStreamed = false
        var everStreamed = false
        /// The stream was lost after it had streamed: streaming again counts as a reconnect.
        var nextStreamIsReconnect = false

        init(options: CaptureOptions, outputs: [CaptureOutput]) {
            mapper = TimestampMapper(isLive: options.kind != .file)
            sampler = FrameSampler(options.sampling)
            converters = outputs.map { FrameConverter(geometry: $0.geometry) }
        }
    }

    private func openSession() throws -> CaptureSession {
        switch options.kind {
        case .v4l2(let devicePath):
            return try V4L2Session(devicePath: devicePath, options: options.v4l2, io: deviceIOFactory(),
                                   stallTimeout: options.stallTimeout, interrupt: interrupt)
        case .file, .network:
            var demux = DemuxOptions()
            demux.transport = options.transport == .udp ? .udp : .tcp
            demux.connectTimeout = options.connectTimeout
            demux.readTimeout = options.readTimeout
            demux.stallTimeout = isLive || options.realtime ? options.stallTimeout : nil
            demux.decoderThreads = options.decoderThreads
            demux.isNetwork = isLive
            return FFmpegSession(decoder: try MediaDecoder(url: options.url, options: demux, interrupt: interrupt))
        }
    }

    private func runSession(_ session: CaptureSession, _ stream: inout StreamingState) throws {
        var reportedDecodeErrors = 0
        defer { let errors = session.decodeErrors; update { $0.decodeErrors += UInt64(errors - reportedDecodeErrors) } }
        while !isStopRequested {
            let more = try session.nextPicture { picture, pts in
                try handle(picture, pts: pts, &stream)
            }
            let errors = session.decodeErrors
            if errors != reportedDecodeErrors {
                update { $0.decodeErrors += UInt64(errors - reportedDecodeErrors) }
                reportedDecodeErrors = errors
            }
            if !more { return }
        }
        throw CaptureError.stopped
    }

    private func handle(_ picture: SourcePicture, pts: Double?, _ stream: inout StreamingState) throws {
        if !stream.sessionStreamed {
            stream.sessionStreamed = true
            if stream.nextStreamIsReconnect { update { $0.reconnects += 1 } }
            stream.nextStreamIsReconnect = false
            stream.everStreamed = true
            setState(.streaming)
        }
        let timestamp = stream.mapper.map(pts: pts, now: CaptureClock.now())
        let keep = stream.sampler.keep(timestamp: timestamp)
        update {
            $0.framesDecoded += 1
            if keep { $0.framesSampled += 1 }
        }
        guard keep else { return }
        if options.realtime && options.kind == .file {
            sleep(seconds: timestamp - CaptureClock.now())
            if isStopRequested { throw CaptureError.stopped }
        }
        for (index, (output, converter)) in zip(outputs, stream.converters).enumerated() {
            do {
                try output.ring.write(timestamp: timestamp, pts: pts) { slot in
                    try converter.convert(picture, into: slot.baseAddress!)
                }
                failingOutputs.remove(index)
                guard index == 0 else { continue }
                let changes = converter.sourceChanges, resyncs = stream.mapper.resyncs
                update {
                    $0.framesConverted += 1
                    $0.resolutionChanges = UInt64(changes)
                    $0.clockResyncs = UInt64(resyncs)
                }
            } catch {
                update { $0.conversionErrors += 1 }
                if failingOutputs.insert(index).inserted {
                    logger.warning("frame conversion failed for output \(index): \(error)")
                    onOutputProblem(index, "\(error)")
                }
            }
        }
    }

    // MARK: State and counters

    private func update(_ change: (inout CaptureCounters) -> Void) {
        condition.lock()
        change(&totals)
        condition.unlock()
    }

    private func setState(_ new: SourceState) {
        condition.lock()
        let previous = currentState
        guard previous != new else { condition.unlock(); return }
        currentState = new
        condition.unlock()
        emit(new, previous: previous)
    }

    private func emit(_ state: SourceState, previous: SourceState?) {
        switch state {
        case .connecting, .streaming: logger.info("capture \(state)")
        case .stalled, .offline: logger.warning("capture \(state)")
        }
        onStateChange(SourceStateChange(source: name, previous: previous, state: state, timestamp: CaptureClock.now()))
    }

    private func reasonOf(_ state: SourceState) -> String {
        switch state {
        case .stalled(let reason), .offline(let reason): return reason
        default: return state.name
        }
    }

    /// Sleeps up to `seconds`, waking early when the source is stopped.
    private func sleep(seconds: Double) {
        guard seconds > 0 else { return }
        let deadline = Date(timeIntervalSinceNow: seconds)
        condition.lock()
        defer { condition.unlock() }
        while !stopRequested && condition.wait(until: deadline) {}
    }
}

/// A file or network stream opened with libavformat.
final class FFmpegSession: CaptureSession {
    private let decoder: MediaDecoder

    init(decoder: MediaDecoder) { self.decoder = decoder }

    var decodeErrors: Int { decoder.decodeErrors }

    func nextPicture(_ body: (SourcePicture, Double?) throws -> Void) throws -> Bool {
        guard let frame = try decoder.nextFrame() else { return false }
        try body(SourcePicture(frame: frame), decoder.framePTS)
        return true
    }
}

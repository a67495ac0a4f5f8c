import Foundation
import TubeletStreaming

/// The network passes of one model for every camera that runs it, on one thread: clips of several
/// cameras that are due together go through one forward pass (`ClipScheduler.evaluate` batches
/// clip-trained Video Swin clips of the same token geometry; the other families, and clips of other
/// geometries, run one after another in the same turn).
///
/// Each camera hands over at most one clip at a time and waits for its result, so no queue builds
/// up behind a slow pass: the clips that fall due while a pass runs gather and go through the next
/// pass together (a camera that is still behind then skips stale clips itself, see CameraPipeline).
/// Once the first clip of a turn is in, the worker waits at most `batchWait` seconds for the other
/// cameras, less when every registered camera has handed one over.
public final class InferenceWorker: @unchecked Sendable {
    public let name: String
    // Guarded by `condition`:
    private let condition = NSCondition()
    private var wait: Double
    private var cameras = 0
    private var pending: [Submission] = []
    private var stopped = false
    private var started = false
    private var stats = BatchStats()

    private final class Submission {
        let clip: DueClip
        var result: ClipResult?
        var done = false
        init(_ clip: DueClip) { self.clip = clip }
    }

    /// name: for the thread and the metrics (the model id).
    public init(name: String, batchWait: Double) {
        self.name = name
        wait = batchWait
    }

    public var batchWait: Double {
        get { condition.withLock { wait } }
        set { condition.withLock { wait = newValue } }
    }

    /// A camera that will hand over clips (the gathering wait ends once all registered ones have).
    public func register() {
        condition.lock()
        cameras += 1
        if !started && !stopped {
            started = true
            let thread = Thread { [self] in run() }
            thread.name = "inference-\(name)"
            thread.start()
        }
        condition.unlock()
    }

    public func unregister() {
        condition.lock()
        cameras = max(0, cameras - 1)
        condition.broadcast()
        condition.unlock()
    }

    /// Ends the thread; clips handed over from now on, or still waiting, come back as nil.
    public func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    public var batchStats: BatchStats { condition.withLock { stats } }

    /// Runs `clip` in the next pass and returns its result; nil once the worker is stopped.
    /// The clip's scheduler must not be pushed to until this returns.
    public func evaluate(_ clip: DueClip) -> ClipResult? {
        condition.lock(); defer { condition.unlock() }
        guard !stopped else { return nil }
        let submission = Submission(clip)
        pending.append(submission)
        condition.broadcast()
        while !submission.done { condition.wait() }
        return submission.result
    }

    private func run() {
        condition.lock()
        while true {
            while pending.isEmpty && !stopped { condition.wait() }
            if stopped { break }
            let deadline = Date(timeIntervalSinceNow: wait)
            while pending.count < cameras && !stopped && condition.wait(until: deadline) {}
            if stopped { break }
            let batch = pending
            pending.removeAll()
            condition.unlock()
            var passSizes: [Int] = []
            let results = ClipScheduler.evaluate(batch.map(\.clip), passSizes: &passSizes)
            condition.lock()
            for size in passSizes { stats.passSize.observe(Double(size)) }
            stats.turns += 1
            for (submission, result) in zip(batch, results) {
                submission.result = result
                submission.done = true
            }
            condition.broadcast()
        }
        for submission in pending { submission.done = true }
        pending.removeAll()
        condition.broadcast()
        condition.unlock()
    }
}

/// What an inference worker counts.
public struct BatchStats: Sendable {
    /// Clips per network pass (a pass of one clip when the family or geometry does not batch).
    public var passSize = Histogram(bounds: [1, 2, 3, 4, 6, 8, 12, 16])
    /// Gathering turns (one or more passes each).
    public var turns: UInt64 = 0

    public init() {}

    public mutating func merge(_ other: BatchStats) {
        passSize.merge(other.passSize)
        turns += other.turns
    }
}

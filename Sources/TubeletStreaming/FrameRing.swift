import Foundation
import Glibc

/// A fixed-capacity ring of converted frames: one producer, any number of readers, each with
/// its own cursor. All pixel memory is allocated (and touched) up front; when a reader falls
/// behind, the producer overwrites the oldest frames and the reader counts them as dropped on
/// its next read. Memory and latency never grow with a slow consumer.
///
/// The producer converts straight into a slot (`write`); a reader either copies a frame out
/// (`next(into:)`, no allocation once its `Frame` has the right size) or looks at the slot in
/// place (`withNext`), which holds the slot's read lock for the duration of the closure.
public final class FrameRing: @unchecked Sendable {
    public let capacity: Int
    public let width: Int
    public let height: Int
    public var slotByteCount: Int { width * height * 3 }

    private let pixels: UnsafeMutablePointer<UInt8>
    /// One read-write lock per slot: the producer holds it for writing while it fills the slot.
    private let slotLocks: UnsafeMutablePointer<pthread_rwlock_t>
    // Guarded by `condition`:
    private let condition = NSCondition()
    private var slotSequence: [UInt64]
    private var slotInfo: [FrameInfo]
    private var nextSequence: UInt64 = 0
    private var totalDrops: UInt64 = 0
    private var closed = false

    /// Marks a slot whose old frame is gone and whose new frame is not written yet.
    private static let invalid = UInt64.max

    public init(capacity: Int, width: Int, height: Int) {
        precondition(capacity > 0 && width > 0 && height > 0, "FrameRing needs a positive capacity and size")
        self.capacity = capacity
        self.width = width
        self.height = height
        let bytes = capacity * width * height * 3
        pixels = .allocate(capacity: bytes)
        pixels.initialize(repeating: 0, count: bytes)  // commits the pages now, not on first use
        slotLocks = .allocate(capacity: capacity)
        for i in 0..<capacity { pthread_rwlock_init(slotLocks + i, nil) }
        slotSequence = Array(repeating: Self.invalid, count: capacity)
        slotInfo = Array(repeating: FrameInfo(width: width, height: height, timestamp: 0, sequence: 0, pts: nil), count: capacity)
    }

    public convenience init(capacity: Int, geometry: FrameGeometry) {
        self.init(capacity: capacity, width: geometry.width, height: geometry.height)
    }

    deinit {
        for i in 0..<capacity { pthread_rwlock_destroy(slotLocks + i) }
        slotLocks.deallocate()
        pixels.deallocate()
    }

    /// Bytes of pixel memory the ring holds (allocated once).
    public var pixelMemoryBytes: Int { capacity * slotByteCount }

    // MARK: Producer

    /// Fills the next slot through `fill` (which gets exactly `slotByteCount` bytes) and publishes
    /// it. Returns the frame's sequence number. If `fill` throws, nothing is published.
    /// Only one thread may write.
    @discardableResult
    public func write(timestamp: Double, pts: Double? = nil,
                      _ fill: (UnsafeMutableBufferPointer<UInt8>) throws -> Void) throws -> UInt64 {
        condition.lock()
        let sequence = nextSequence
        let slot = Int(sequence % UInt64(capacity))
        slotSequence[slot] = Self.invalid
        condition.unlock()

        pthread_rwlock_wrlock(slotLocks + slot)
        defer { pthread_rwlock_unlock(slotLocks + slot) }
        try fill(UnsafeMutableBufferPointer(start: pixels + slot * slotByteCount, count: slotByteCount))

        condition.lock()
        slotSequence[slot] = sequence
        slotInfo[slot] = FrameInfo(width: width, height: height, timestamp: timestamp, sequence: sequence, pts: pts)
        nextSequence = sequence + 1
        condition.broadcast()
        condition.unlock()
        return sequence
    }

    /// Copies `frame.rgb` (which must be `slotByteCount` bytes) into the ring.
    @discardableResult
    public func push(_ frame: Frame) -> UInt64 {
        precondition(frame.rgb.count == slotByteCount, "frame size does not match the ring")
        return try! write(timestamp: frame.timestamp, pts: frame.pts) { slot in
            frame.rgb.withUnsafeBufferPointer { slot.baseAddress!.update(from: $0.baseAddress!, count: $0.count) }
        }
    }

    /// Wakes every waiting reader; reads return nil once they have caught up.
    public func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    // MARK: Readers

    public enum ReaderStart: Sendable { case oldest, next }

    /// A new reader whose first frame is the oldest frame still held, or the next one produced.
    public func makeReader(startingAt start: ReaderStart = .next) -> FrameRingReader {
        condition.lock()
        defer { condition.unlock() }
        let cursor = start == .next ? nextSequence : oldestSequenceLocked()
        return FrameRingReader(ring: self, cursor: cursor)
    }

    /// Frames produced so far (the next frame's sequence number).
    public var producedCount: UInt64 {
        condition.lock(); defer { condition.unlock() }
        return nextSequence
    }

    /// Frames dropped for all readers together (a frame skipped by two readers counts twice).
    public var droppedCount: UInt64 {
        condition.lock(); defer { condition.unlock() }
        return totalDrops
    }

    private func oldestSequenceLocked() -> UInt64 {
        nextSequence > UInt64(capacity) ? nextSequence - UInt64(capacity) : 0
    }

    /// Finds the first readable frame at or after `cursor`, waiting until `deadline`. Called with
    /// `condition` locked. Frames overwritten meanwhile are added to `drops`.
    fileprivate func locateLocked(cursor: inout UInt64, drops: inout UInt64, deadline: Date) -> Int? {
        while true {
            if cursor >= nextSequence {
                if closed { return nil }
                if !condition.wait(until: deadline) && cursor >= nextSequence { return nil }
                continue
            }
            let oldest = oldestSequenceLocked()
            if cursor < oldest {
                countDropLocked(oldest - cursor, drops: &drops)
                cursor = oldest
            }
            let slot = Int(cursor % UInt64(capacity))
            if slotSequence[slot] == cursor { return slot }
            countDropLocked(1, drops: &drops)  // being overwritten right now
            cursor += 1
        }
    }

    fileprivate func countDropLocked(_ count: UInt64, drops: inout UInt64) {
        drops += count
        totalDrops += count
    }

    /// Runs `body` on frame `cursor` in slot `slot` under the slot's read lock, if the frame is
    /// still there once the lock is held.
    fileprivate func read<R>(slot: Int, cursor: UInt64, _ body: (FrameView) throws -> R) rethrows -> R? {
        pthread_rwlock_rdlock(slotLocks + slot)
        defer { pthread_rwlock_unlock(slotLocks + slot) }
        condition.lock()
        let stillThere = slotSequence[slot] == cursor
        let info = slotInfo[slot]
        condition.unlock()
        guard stillThere else { return nil }
        return try body(FrameView(info: info, rgb: UnsafeBufferPointer(start: pixels + slot * slotByteCount, count: slotByteCount)))
    }

    fileprivate func lock() { condition.lock() }
    fileprivate func unlock() { condition.unlock() }
    fileprivate var newestSequenceLocked: UInt64? { nextSequence == 0 ? nil : nextSequence - 1 }
}

/// One consumer's position in a `FrameRing`. Use each reader from one thread at a time.
public final class FrameRingReader: @unchecked Sendable {
    private let ring: FrameRing
    private var cursor: UInt64
    private var drops: UInt64 = 0  // guarded by the ring's lock

    fileprivate init(ring: FrameRing, cursor: UInt64) {
        self.ring = ring
        self.cursor = cursor
    }

    /// Frames this reader missed because the producer overwrote them first.
    public var droppedCount: UInt64 {
        ring.lock(); defer { ring.unlock() }
        return drops
    }

    /// Calls `body` with the next frame in place, waiting up to `timeout` seconds for one.
    /// Returns nil on timeout, or when the ring is closed and this reader has caught up.
    public func withNext<R>(timeout: Double, _ body: (FrameView) throws -> R) rethrows -> R? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while true {
            ring.lock()
            let slot = ring.locateLocked(cursor: &cursor, drops: &drops, deadline: deadline)
            ring.unlock()
            guard let slot else { return nil }
            if let result = try ring.read(slot: slot, cursor: cursor, body) {
                cursor += 1
                return result
            }
            // Overwritten between finding it and locking it: count it and look again.
            ring.lock()
            ring.countDropLocked(1, drops: &drops)
            ring.unlock()
            cursor += 1
        }
    }

    /// Copies the next frame into `frame`, reusing its pixel storage. False on timeout or close.
    public func next(into frame: inout Frame, timeout: Double) -> Bool {
        if frame.rgb.count != ring.slotByteCount {
            frame.rgb = [UInt8](repeating: 0, count: ring.slotByteCount)
        }
        return withNext(timeout: timeout) { view in
            frame.rgb.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: view.rgb.baseAddress!, count: view.rgb.count) }
            frame.width = view.info.width
            frame.height = view.info.height
            frame.timestamp = view.info.timestamp
            frame.sequence = view.info.sequence
            frame.pts = view.info.pts
            return true
        } ?? false
    }

    /// The next frame as a new `Frame` (allocates; for tests and occasional use).
    public func next(timeout: Double) -> Frame? {
        var frame = Frame()
        return next(into: &frame, timeout: timeout) ? frame : nil
    }

    /// Moves the cursor to the newest frame, so that the next read returns it (or the one after,
    /// if none is held yet). Frames skipped this way are not counted as drops: the reader chose it.
    public func skipToNewest() {
        ring.lock(); defer { ring.unlock() }
        if let newest = ring.newestSequenceLocked, newest > cursor { cursor = newest }
    }

    /// Sequence number of the next frame this reader will read: every frame before it has been
    /// read or dropped. Read it from the reader's own thread.
    public var position: UInt64 { cursor }

    /// Frames produced but not yet read by this reader (including any that will count as dropped).
    public var backlog: UInt64 {
        let produced = ring.producedCount
        return produced > cursor ? produced - cursor : 0
    }
}

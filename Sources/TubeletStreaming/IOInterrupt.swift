import CFFmpeg
import Synchronization

/// Lets another thread, or a deadline, end a blocking libavformat call: libavformat polls
/// `callback` during every blocking operation (connect, read, probe).
final class IOInterrupt: Sendable {
    enum Reason: Int { case none = 0, stopRequested, deadline }

    private let stopFlag = Atomic<Bool>(false)
    /// CLOCK_MONOTONIC nanoseconds after which blocking calls are aborted; 0 = no deadline.
    private let deadlineNanos = Atomic<UInt64>(0)
    private let firedReason = Atomic<Int>(0)

    func requestStop() { stopFlag.store(true, ordering: .sequentiallyConsistent) }
    var isStopRequested: Bool { stopFlag.load(ordering: .sequentiallyConsistent) }

    /// Arms the deadline `seconds` from now and clears the last reason; nil disarms it and keeps
    /// the reason, so that the caller can still ask why the call it just made was aborted.
    func arm(seconds: Double?) {
        guard let seconds else { deadlineNanos.store(0, ordering: .relaxed); return }
        firedReason.store(Reason.none.rawValue, ordering: .relaxed)
        deadlineNanos.store(Self.nowNanos() + UInt64(max(0, seconds) * 1e9), ordering: .relaxed)
    }

    /// Why the last blocking call was aborted, if it was.
    var reason: Reason { Reason(rawValue: firedReason.load(ordering: .relaxed)) ?? .none }

    fileprivate func shouldAbort() -> Bool {
        if isStopRequested {
            firedReason.store(Reason.stopRequested.rawValue, ordering: .relaxed)
            return true
        }
        let deadline = deadlineNanos.load(ordering: .relaxed)
        if deadline != 0, Self.nowNanos() > deadline {
            firedReason.store(Reason.deadline.rawValue, ordering: .relaxed)
            return true
        }
        return false
    }

    /// The C callback record to install on an AVFormatContext. The context must not outlive `self`.
    var callbackRecord: AVIOInterruptCB {
        AVIOInterruptCB(
            callback: { opaque in
                guard let opaque else { return 0 }
                return Unmanaged<IOInterrupt>.fromOpaque(opaque).takeUnretainedValue().shouldAbort() ? 1 : 0
            },
            opaque: Unmanaged.passUnretained(self).toOpaque())
    }

    static func nowNanos() -> UInt64 {
        UInt64(CaptureClock.monotonicSeconds() * 1e9)
    }
}

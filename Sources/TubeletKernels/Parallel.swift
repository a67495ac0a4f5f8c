import Dispatch
import Foundation
import Synchronization
#if TUBELET_BLAS_BLIS
import CBLIS
#else
import CBLAS
#endif

/// The one threading policy of Tubelet: BLAS calls are always single-threaded, and we split work
/// (rows of a linear layer, windows x heads of attention) across `Parallel.threadCount` workers.
/// One pool, never nested: a body passed to `Parallel.forEach` must not call `Parallel.forEach`.
public enum Parallel {
    /// Worker count: `TUBELET_THREADS` if set, else the number of active cores.
    public static let threadCount: Int = {
        if let text = ProcessInfo.processInfo.environment["TUBELET_THREADS"], let n = Int(text), n > 0 {
            return n
        }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Makes the BLAS library single-threaded once, before the first GEMM.
    public static let blasConfigured: Bool = {
        #if TUBELET_BLAS_BLIS
        bli_thread_set_num_threads(1)
        #else
        openblas_set_num_threads(1)
        #endif
        return true
    }()

    /// Runs `body(chunk)` for chunk in 0..<chunks on up to `threadCount` threads and waits.
    @inline(__always)
    public static func forEach(_ chunks: Int, _ body: (Int) -> Void) {
        if chunks <= 0 { return }
        if chunks == 1 || threadCount == 1 {
            for i in 0..<chunks { body(i) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: chunks, execute: body)
    }

    /// Splits 0..<count into at most `threadCount` contiguous ranges (each at least `minimum` long)
    /// and runs them in parallel.
    @inline(__always)
    public static func forRanges(_ count: Int, minimum: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let parts = max(1, min(threadCount, count / max(minimum, 1)))
        if parts == 1 { body(0..<count); return }
        forEach(parts) { part in
            let start = count * part / parts
            let end = count * (part + 1) / parts
            if start < end { body(start..<end) }
        }
    }

    /// Runs `worker` on up to `threadCount` threads and waits; each worker calls `next()` for the
    /// next unclaimed item of 0..<count until it returns nil, so a worker that falls behind (a
    /// core taken by another VM, a page fault) takes fewer items instead of leaving the others
    /// idle at the end, as an even split would. Each worker can set up its own scratch before its
    /// first `next()`.
    public static func claimItems(_ count: Int, _ worker: (_ next: () -> Int?) -> Void) {
        claim(count, item: { $0 }, worker)
    }

    /// Runs `worker` as `claimItems` does, over 0..<rows in blocks of `rowBlock(rows:)` rows:
    /// `next()` gives the next unclaimed block's rows until none is left.
    public static func claimRowBlocks(_ rows: Int, _ worker: (_ next: () -> Range<Int>?) -> Void) {
        let blockRows = rowBlock(rows: rows)
        claim((rows + blockRows - 1) / blockRows, item: { $0 * blockRows..<min(($0 + 1) * blockRows, rows) }, worker)
    }

    /// `claimItems` with item i handed out as `item(i)`.
    private static func claim<Item>(_ count: Int, item: @escaping (Int) -> Item, _ worker: (_ next: () -> Item?) -> Void) {
        if count <= 0 { return }
        let counter = Atomic<Int>(0)
        forEach(min(threadCount, count)) { _ in
            worker {
                let index = counter.wrappingAdd(1, ordering: .relaxed).oldValue
                return index < count ? item(index) : nil
            }
        }
    }

    /// Rows per block for work over independent rows that the workers claim (`claimRowBlocks`):
    /// all of them below 48 (8 register tiles: a split costs more than it saves); else a multiple
    /// of the GEMM's 6-row tile, at most 252 (a block's activations stay in L2; the GEMM's own row
    /// blocks are 126-682 rows), and at least four blocks per worker where that leaves blocks of
    /// 168 rows or more, so that claiming evens out the workers. Otherwise as few blocks as the cap
    /// allows, a whole number per worker: each block streams the weights once (9.4 MB per matrix at
    /// Swin-T's stage 4), and small blocks would stream them more often.
    public static func rowBlock(rows: Int) -> Int {
        if rows < 48 { return max(rows, 1) }
        let threads = threadCount
        func roundUp(_ value: Int) -> Int { max(6, (value + 5) / 6 * 6) }
        let claimed = roundUp((rows + 4 * threads - 1) / (4 * threads))
        if claimed >= 168 { return min(252, claimed) }
        let blocks = threads * ((rows + threads * 252 - 1) / (threads * 252))
        return min(252, roundUp((rows + blocks - 1) / blocks))
    }
}

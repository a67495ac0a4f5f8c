import XCTest
import Synchronization
import TubeletKernels

final class ParallelTests: XCTestCase {
    /// Every item is claimed exactly once, whatever the item count against the worker count, and
    /// each worker's set-up runs once per worker, not per item.
    func testClaimItemsRunsEachItemOnce() {
        for count in [0, 1, 2, 3, 97, 1000] {
            let seen = UnsafeMutablePointer<Int>.allocate(capacity: max(count, 1))
            seen.initialize(repeating: 0, count: max(count, 1))
            defer { seen.deallocate() }
            let setUps = Atomic<Int>(0)
            Parallel.claimItems(count) { next in
                setUps.wrappingAdd(1, ordering: .relaxed)
                while let item = next() { seen[item] += 1 }
            }
            XCTAssertEqual((0..<count).filter { seen[$0] != 1 }, [], "count \(count)")
            XCTAssertEqual(setUps.load(ordering: .relaxed), min(count, Parallel.threadCount), "count \(count)")
        }
    }
}

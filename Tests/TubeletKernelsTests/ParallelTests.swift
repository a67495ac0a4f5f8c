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

    /// Row blocks cover every row exactly once, none longer than `rowBlock`, and small row counts
    /// stay one block.
    func testClaimRowBlocksCoverEveryRowOnce() {
        for rows in [0, 1, 47, 48, 392, 1568, 25088] {
            let seen = UnsafeMutablePointer<Int>.allocate(capacity: max(rows, 1))
            seen.initialize(repeating: 0, count: max(rows, 1))
            defer { seen.deallocate() }
            let blocks = Atomic<Int>(0), longest = Atomic<Int>(0)
            Parallel.claimRowBlocks(rows) { next in
                while let block = next() {
                    blocks.wrappingAdd(1, ordering: .relaxed)
                    longest.max(block.count, ordering: .relaxed)
                    for row in block { seen[row] += 1 }
                }
            }
            XCTAssertEqual((0..<rows).filter { seen[$0] != 1 }, [], "rows \(rows)")
            XCTAssertLessThanOrEqual(longest.load(ordering: .relaxed), Parallel.rowBlock(rows: rows), "rows \(rows)")
            if rows > 0 && rows < 48 { XCTAssertEqual(blocks.load(ordering: .relaxed), 1, "rows \(rows)") }
        }
    }
}

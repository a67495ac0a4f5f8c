import Foundation
import TubeletStreaming
import XCTest

final class FrameRingTests: XCTestCase {
    private func frame(_ value: UInt8, width: Int = 4, height: Int = 2, timestamp: Double = 0) -> Frame {
        Frame(rgb: [UInt8](repeating: value, count: width * height * 3), width: width, height: height,
              timestamp: timestamp, sequence: 0)
    }

    func testReaderThatKeepsUpSeesEveryFrameInOrder() {
        let ring = FrameRing(capacity: 4, width: 4, height: 2)
        let reader = ring.makeReader()
        var received = Frame()
        for i in 0..<20 {
            ring.push(frame(UInt8(i), timestamp: Double(i)))
            XCTAssertTrue(reader.next(into: &received, timeout: 1))
            XCTAssertEqual(received.sequence, UInt64(i))
            XCTAssertEqual(received.timestamp, Double(i))
            XCTAssertEqual(received.rgb, [UInt8](repeating: UInt8(i), count: 24))
        }
        XCTAssertEqual(reader.droppedCount, 0)
        XCTAssertEqual(ring.producedCount, 20)
    }

    func testSlowReaderLosesTheOldestFramesAndCountsThem() {
        let ring = FrameRing(capacity: 4, width: 4, height: 2)
        let reader = ring.makeReader()
        for i in 0..<10 { ring.push(frame(UInt8(i))) }
        var sequences: [UInt64] = []
        while let f = reader.next(timeout: 0.01) { sequences.append(f.sequence) }
        XCTAssertEqual(sequences, [6, 7, 8, 9])
        XCTAssertEqual(reader.droppedCount, 6)
        XCTAssertEqual(ring.droppedCount, 6)
    }

    func testReadersHaveIndependentCursorsAndDropCounters() {
        let ring = FrameRing(capacity: 3, width: 4, height: 2)
        let fast = ring.makeReader()
        let slow = ring.makeReader()
        for i in 0..<7 {
            ring.push(frame(UInt8(i)))
            XCTAssertEqual(fast.next(timeout: 1)?.sequence, UInt64(i))
        }
        XCTAssertEqual(slow.next(timeout: 1)?.sequence, 4)
        XCTAssertEqual(fast.droppedCount, 0)
        XCTAssertEqual(slow.droppedCount, 4)
        XCTAssertEqual(ring.droppedCount, 4)
        let late = ring.makeReader(startingAt: .oldest)
        XCTAssertEqual(late.next(timeout: 1)?.sequence, 4)
        let next = ring.makeReader(startingAt: .next)
        XCTAssertNil(next.next(timeout: 0.01))
    }

    func testSkipToNewestIsNotADrop() {
        let ring = FrameRing(capacity: 8, width: 4, height: 2)
        let reader = ring.makeReader()
        for i in 0..<5 { ring.push(frame(UInt8(i))) }
        XCTAssertEqual(reader.backlog, 5)
        reader.skipToNewest()
        XCTAssertEqual(reader.next(timeout: 1)?.sequence, 4)
        XCTAssertEqual(reader.droppedCount, 0)
    }

    func testReadTimesOutWithoutAProducer() {
        let ring = FrameRing(capacity: 2, width: 4, height: 2)
        let start = Date()
        XCTAssertNil(ring.makeReader().next(timeout: 0.1))
        let waited = Date().timeIntervalSince(start)
        XCTAssertGreaterThanOrEqual(waited, 0.09)
        XCTAssertLessThan(waited, 1)
    }

    func testCloseWakesAWaitingReader() {
        let ring = FrameRing(capacity: 2, width: 4, height: 2)
        let reader = ring.makeReader()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.1) { ring.close() }
        let start = Date()
        XCTAssertNil(reader.next(timeout: 10))
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }

    func testFailedWriteIsNotPublished() {
        struct Failure: Error {}
        let ring = FrameRing(capacity: 2, width: 4, height: 2)
        let reader = ring.makeReader()
        XCTAssertThrowsError(try ring.write(timestamp: 1) { _ in throw Failure() })
        XCTAssertEqual(ring.producedCount, 0)
        ring.push(frame(9))
        XCTAssertEqual(reader.next(timeout: 1)?.rgb.first, 9)
    }

    func testMemoryIsAllocatedUpFront() {
        let ring = FrameRing(capacity: 16, geometry: .kinetics)
        XCTAssertEqual(ring.pixelMemoryBytes, 16 * 224 * 224 * 3)
        XCTAssertEqual(ring.slotByteCount, 224 * 224 * 3)
    }

    /// One producer and three readers at full speed: no torn frames (every byte of a frame
    /// matches its sequence), each reader sees increasing sequences, and read + dropped = produced.
    func testConcurrentReadersNeverSeeTornFrames() {
        let ring = FrameRing(capacity: 8, width: 32, height: 32)
        let produced = 3000
        let readers = (0..<3).map { _ in ring.makeReader(startingAt: .oldest) }
        let group = DispatchGroup()
        let results = ResultBox(count: readers.count)
        for (index, reader) in readers.enumerated() {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                var frame = Frame()
                var last: Int64 = -1
                var count = 0
                var torn = 0
                var outOfOrder = 0
                while reader.next(into: &frame, timeout: 5) {
                    let expected = UInt8(truncatingIfNeeded: frame.sequence % 251)
                    if !frame.rgb.allSatisfy({ $0 == expected }) { torn += 1 }
                    if Int64(frame.sequence) <= last { outOfOrder += 1 }
                    last = Int64(frame.sequence)
                    count += 1
                    if index == 2 && count % 100 == 0 { Thread.sleep(forTimeInterval: 0.005) }  // a slow one
                }
                results.set(index, (count, torn, outOfOrder))
            }
        }
        Thread.sleep(forTimeInterval: 0.05)
        for i in 0..<produced {
            try! ring.write(timestamp: Double(i)) { slot in
                slot.update(repeating: UInt8(truncatingIfNeeded: UInt64(i) % 251))
            }
        }
        ring.close()
        XCTAssertEqual(group.wait(timeout: .now() + 30), .success)
        for (index, reader) in readers.enumerated() {
            let (count, torn, outOfOrder) = results.get(index)
            XCTAssertEqual(torn, 0, "reader \(index)")
            XCTAssertEqual(outOfOrder, 0, "reader \(index)")
            XCTAssertEqual(UInt64(count) + reader.droppedCount, UInt64(produced), "reader \(index)")
        }
    }
}

private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [(Int, Int, Int)]
    init(count: Int) { values = Array(repeating: (0, 0, 0), count: count) }
    func set(_ i: Int, _ v: (Int, Int, Int)) { lock.lock(); values[i] = v; lock.unlock() }
    func get(_ i: Int) -> (Int, Int, Int) { lock.lock(); defer { lock.unlock() }; return values[i] }
}

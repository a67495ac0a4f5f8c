import XCTest
import TubeletKernels
import TubeletStreaming

/// Live timestamps: never later than a frame's arrival, so latencies measured from them are not short.
final class TimestampMapperTests: XCTestCase {
    func testLateFirstFrameDoesNotPushLaterTimestampsAhead() {
        var mapper = TimestampMapper(isLive: true)
        // 25 fps, 0.05 s after their PTS; but frame 0 arrives 0.7 s late (decoder start) and the
        // frames queued behind it follow in a burst, 1 ms apart, until they are back on schedule.
        let start = 1000.0
        var stamps: [(timestamp: Double, arrival: Double)] = []
        var previousArrival = -Double.infinity
        for index in 0..<100 {
            let pts = Double(index) * 0.04
            let arrival = index == 0 ? start + 0.7 : max(previousArrival + 0.001, start + pts + 0.05)
            previousArrival = arrival
            stamps.append((mapper.map(pts: pts, now: arrival), arrival))
        }
        for (index, stamp) in stamps.enumerated() {
            XCTAssertLessThanOrEqual(stamp.timestamp, stamp.arrival, "frame \(index) stamped after it arrived")
        }
        // Once on schedule, timestamps follow the PTS at the smallest delay seen (0.05 s here).
        for index in 20..<100 {
            XCTAssertEqual(stamps[index].timestamp, stamps[index].arrival, accuracy: 1e-9)
            XCTAssertEqual(stamps[index].timestamp - stamps[index - 1].timestamp, 0.04, accuracy: 1e-9)
        }
        XCTAssertEqual(mapper.resyncs, 0)
    }

    func testJitterKeepsTheEarliestOffsetAndTimestampsIncrease() {
        var mapper = TimestampMapper(isLive: true)
        var generator = SplitMix64(seed: 3)
        var last = -Double.infinity
        var previousArrival = -Double.infinity
        for index in 0..<500 {
            let pts = Double(index) * 0.04
            let arrival = max(previousArrival + 0.001, 50 + pts + 0.02 + Double.random(in: 0..<0.3, using: &generator))
            previousArrival = arrival
            let timestamp = mapper.map(pts: pts, now: arrival)
            XCTAssertLessThanOrEqual(timestamp, arrival)
            XCTAssertGreaterThan(timestamp, last)
            last = timestamp
        }
    }
}

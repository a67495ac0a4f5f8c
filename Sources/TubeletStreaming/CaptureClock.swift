import Glibc

/// The one clock every frame timestamp lives on: wall-clock seconds (Unix epoch), read once at
/// start-up and advanced with CLOCK_MONOTONIC, so NTP steps never make timestamps jump back.
public enum CaptureClock {
    private static let origin: (wall: Double, monotonic: Double) = {
        var wall = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        return (seconds(wall), monotonicSeconds())
    }()

    /// Seconds since the Unix epoch, monotonic within this process.
    public static func now() -> Double {
        origin.wall + (monotonicSeconds() - origin.monotonic)
    }

    /// CLOCK_MONOTONIC in seconds (what V4L2 buffer timestamps use).
    public static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return seconds(ts)
    }

    /// Converts a CLOCK_MONOTONIC reading to the capture clock.
    public static func fromMonotonic(_ monotonic: Double) -> Double {
        origin.wall + (monotonic - origin.monotonic)
    }

    private static func seconds(_ ts: timespec) -> Double {
        Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

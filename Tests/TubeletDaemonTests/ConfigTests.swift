import Foundation
import TubeletDaemon
import XCTest

/// Strict config validation: every problem names file, line and column.
final class ConfigTests: XCTestCase {
    let base = """
    models:
      m:
        file: /models/m.safetensors
    cameras:
      front:
        source: rtsp://cam/stream
    """

    func parse(_ text: String) throws -> DaemonConfig { try DaemonConfig.parse(yaml: text, path: "/etc/tubelet/t.yaml") }

    func assertError(_ text: String, line: Int, column: Int, _ contains: String, file: StaticString = #filePath, sourceLine: UInt = #line) {
        XCTAssertThrowsError(try parse(text), file: file, line: sourceLine) { error in
            guard let error = error as? ConfigError else { return XCTFail("not a ConfigError: \(error)", file: file, line: sourceLine) }
            XCTAssertEqual(error.file, "/etc/tubelet/t.yaml", file: file, line: sourceLine)
            XCTAssertEqual(error.line, line, "\(error)", file: file, line: sourceLine)
            XCTAssertEqual(error.column, column, "\(error)", file: file, line: sourceLine)
            XCTAssertTrue(error.message.contains(contains), "\(error)", file: file, line: sourceLine)
            XCTAssertTrue("\(error)".hasPrefix("/etc/tubelet/t.yaml:\(line):\(column): "), file: file, line: sourceLine)
        }
    }

    func testTheExampleFilesAreValid() throws {
        let documented = try DaemonConfig.load(path: Repo.path("Config/tubelet.yaml"))
        XCTAssertEqual(documented.cameras.map(\.id), ["front_door", "yard"])
        XCTAssertEqual(documented.cameras[0].decisions.minScore, 0.7, "per-camera override")
        XCTAssertEqual(documented.cameras[1].decisions.minScore, 0.6, "global default")
        XCTAssertEqual(documented.cameras[1].window.hop, 8)
        XCTAssertEqual(documented.cameras[0].window.hop, 4)
        XCTAssertEqual(documented.cameras[1].capture.width, 640)
        XCTAssertEqual(documented.cameras[1].capture.stallTimeout, 20, "untouched keys keep the global value")
        XCTAssertEqual(documented.cameras[0].decisions.minScore(for: "falling off"), 0.3)
        XCTAssertEqual(documented.cameras[0].decisions.smoothing, .mean(clips: 3))
        XCTAssertEqual(documented.events.endpoint, "tcp://127.0.0.1:5556")
        XCTAssertEqual(documented.metrics.listen, "127.0.0.1:9464")
        let demo = try DaemonConfig.load(path: Repo.path("Config/demo.yaml"))
        XCTAssertEqual(demo.cameras.map(\.id), ["demo"])
        XCTAssertEqual(demo.models[0].file, Repo.path("models/demo/demo.safetensors"), "relative to the config file")
        XCTAssertEqual(demo.cameras[0].source, Repo.path("models/demo/sample.mp4"), "a file source too")
        XCTAssertTrue(FileManager.default.fileExists(atPath: demo.models[0].file) && FileManager.default.fileExists(atPath: demo.cameras[0].source),
                      "Config/demo.yaml names the bundled model and sample video")
        XCTAssertEqual(demo.cameras[0].window.reuse, "kv")
        XCTAssertEqual(demo.cameras[0].decisions.ignoreLabels, ["idle"])
    }

    func testRelativeFileSourcesAreRelativeToTheConfigFile() throws {
        let config = try parse("models:\n  m: {file: m.st}\ncameras:\n  a: {source: clips/a.mp4}\n  b: {source: /dev/video0}\n  c: {source: rtsp://cam/s}")
        XCTAssertEqual(config.cameras.map(\.source), ["/etc/tubelet/clips/a.mp4", "/dev/video0", "rtsp://cam/s"])
    }

    func testDefaultsAndModelResolution() throws {
        let config = try parse(base)
        XCTAssertEqual(config.cameras[0].model, "m")
        XCTAssertEqual(config.cameras[0].window, WindowConfig())
        XCTAssertEqual(config.events.endpoint, "tcp://127.0.0.1:5556", "loopback by default")
        XCTAssertEqual(config.metrics.listen, "127.0.0.1:9464", "loopback by default")
        let two = try parse("""
        models:
          a: {file: a.st, cameras: [x]}
          b: {file: b.st}
        cameras:
          x: {source: /dev/video0}
          y: {source: /dev/video1, model: b}
        """)
        XCTAssertEqual(two.cameras.map(\.model), ["a", "b"])
        XCTAssertEqual(two.models[0].file, "/etc/tubelet/a.st")
    }

    func testUnknownKeys() {
        assertError(base + "\n    windw:\n      hop: 2", line: 7, column: 5, "cameras.front.windw: unknown key")
        assertError("loging: {}\n" + base, line: 1, column: 1, "loging: unknown key")
        assertError(base + "\ndecisions:\n  smoothing: {method: ema, alpha: 0.5, clips: 3}", line: 8, column: 40, "decisions.smoothing.clips: unknown key")
    }

    func testWrongTypes() {
        assertError(base + "\nwindow:\n  hop: four", line: 8, column: 8, "window.hop: expected an integer, found 'four'")
        assertError(base + "\nwindow:\n  hop: \"4\"", line: 8, column: 8, "expected an integer")
        assertError(base + "\ncapture:\n  realtime: yes", line: 8, column: 13, "expected true or false")
        assertError(base + "\ndecisions:\n  ignore_labels: walking", line: 8, column: 18, "expected a list")
        assertError(base + "\nevents: tcp://x", line: 7, column: 9, "events: expected a mapping")
        assertError(base + "\ncapture:\n  transport: quic", line: 8, column: 14, "expected one of tcp, udp")
    }

    func testImpossibleValues() {
        assertError(base + "\ndecisions:\n  min_score: 1.5", line: 8, column: 14, "must be at most 1")
        assertError(base + "\ndecisions:\n  min_score: 0.3\n  end_score: 0.5", line: 9, column: 14, "end_score (0.5) must not exceed min_score (0.3)")
        assertError(base + "\nwindow:\n  hop: 0", line: 8, column: 8, "must be at least 1")
        assertError(base + "\nwindow:\n  clip_frames: 8\n  hop: 9", line: 9, column: 8, "must not exceed clip_frames")
        assertError(base + "\nwindow:\n  refresh: 4", line: 8, column: 12, "goes with approximate: true")
        assertError(base + "\nwindow:\n  approximate: true", line: 8, column: 16, "is a kv mode")
        assertError(base + "\ncapture:\n  stall_timeout: -1", line: 8, column: 18, "greater than 0")
        assertError(base + "\nmetrics:\n  listen: localhost", line: 8, column: 11, "expected HOST:PORT")
        assertError(base + "\nevents:\n  endpoint: 127.0.0.1:5556", line: 8, column: 13, "not a ZeroMQ endpoint")
        assertError(base + "\nevents:\n  endpoint: null", line: 8, column: 3, "give an endpoint to bind or a connect list")
        assertError(base + "\nevents:\n  curve: {allowed_clients: [short]}", line: 8, column: 10, "secret_key_file: missing")
    }

    func testStructuralErrors() {
        assertError("models:\n  m: {file: a}\ncameras:\n  front:\n    source: a\n  front:\n    source: b", line: 6, column: 3, "duplicate key")
        assertError("models:\n  m: {file: a}\ncameras:\n  front door:\n    source: a", line: 4, column: 3, "camera id")
        assertError("models:\n  m: {file: a}\ncameras:\n  front:\n    model: x\n    source: a", line: 5, column: 12, "no model 'x'")
        assertError("models:\n  m: {file: a, cameras: [back]}\ncameras:\n  front:\n    source: a", line: 4, column: 3, "no model runs on this camera")
        assertError("models:\n  m: {file: a}\n  n: {file: b}\ncameras:\n  front:\n    source: a", line: 5, column: 3, "no model runs on this camera")
        assertError("models:\n  m: {file: a}\ncameras:\n  front:\n    capture: {}", line: 5, column: 5, "source: missing")
        assertError("models:\n  m: {file: a}\ncameras:\n  front: {source: a\n", line: 5, column: 1, "YAML:")
        assertError("models:\n  m: {file: a}\n", line: 1, column: 1, "cameras: missing")
        XCTAssertThrowsError(try parse("")) { XCTAssertTrue("\($0)".contains("empty"), "\($0)") }
    }

    /// `id:` with nothing after it, where a mapping must follow, used to crash (force unwrap); found by Fuzz/FuzzConfig.
    func testEmptyEntriesAreErrors() {
        assertError("models:\n  m:\ncameras:\n  front:\n    source: a", line: 2, column: 3, "models.m: expected a mapping of keys to values, found nothing")
        assertError("models:\n  m: {file: a}\ncameras:\n  front:\n", line: 4, column: 3, "cameras.front: expected a mapping")
        assertError(base + "\ndecisions:\n  labels:\n    waving: null", line: 9, column: 5, "decisions.labels.waving: expected a mapping")
    }

    /// Every input a fuzzer crashed on (Fuzz/regressions/FuzzConfig/) now parses to a ConfigError.
    func testFuzzerFindingsAreErrors() throws {
        let directory = Repo.path("Fuzz/regressions/FuzzConfig")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        XCTAssertFalse(names.isEmpty)
        for name in names {
            let data = try XCTUnwrap(FileManager.default.contents(atPath: directory + "/" + name))
            // As the fuzzer passes it: bytes decoded as UTF-8 with replacement characters.
            XCTAssertThrowsError(try parse(String(decoding: data, as: UTF8.self)), name) { XCTAssertTrue($0 is ConfigError, "\(name): \($0)") }
        }
    }

    func testMissingFileIsAnError() {
        XCTAssertThrowsError(try DaemonConfig.load(path: "/nonexistent/t.yaml")) { XCTAssertTrue("\($0)".contains("cannot read"), "\($0)") }
    }
}

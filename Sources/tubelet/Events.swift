import ArgumentParser
import Foundation
import TubeletDaemon

/// `tubelet events --connect ENDPOINT [--topic PREFIX] [--jsonl]`: subscribe and print events as they arrive.
struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Subscribe to a tubeletd (or a tubelet proxy) and print its events.")

    @Option(help: "ZeroMQ endpoint of the daemon's or the proxy's publisher, e.g. tcp://127.0.0.1:5556.") var connect: String
    @Option(help: "Topic prefix to subscribe to (repeatable), e.g. tubelet.front. Default: everything.") var topic: [String] = []
    @Flag(help: "One JSON object per line: {\"topic\": ..., \"message\": {...}}.") var jsonl = false
    @Flag(help: "One short line per message for people: time, camera, start/update/end, label, score (statuses: the state).") var brief = false
    @Option(help: "Stop after this many messages.") var count: Int?
    @Option(help: "Stop after this many seconds.") var timeout: Double?
    @Option(help: "CURVE: the server's public key (Z85, 40 characters) or a file holding it.") var serverKey: String?
    @Option(help: "CURVE: a file with this client's secret key (Z85); its public key must be allowed by the server.") var clientSecretKeyFile: String?

    func validate() throws {
        if jsonl && brief { throw ValidationError("--jsonl and --brief are two formats; give one") }
        if (serverKey == nil) != (clientSecretKeyFile == nil) {
            throw ValidationError("CURVE needs both --server-key and --client-secret-key-file")
        }
    }

    func run() throws {
        let context = ZMQContext()
        let socket: ZMQSocket
        do {
            socket = try ZMQSocket(context, .sub)
            try socket.setLinger(milliseconds: 0)
            if let serverKey, let clientSecretKeyFile {
                let server = serverKey.count == 40 ? serverKey : try CurveKeyPair.readKey(file: serverKey)
                let secret = try CurveKeyPair.readKey(file: clientSecretKeyFile)
                try socket.useCurveClient(serverPublicKey: server, clientSecretKey: secret)
            }
            for prefix in topic.isEmpty ? [""] : topic { try socket.subscribe(prefix) }
            try socket.connect(connect)
        } catch {
            fail("\(error)")
        }
        let deadline = timeout.map { Date(timeIntervalSinceNow: $0) }
        var received = 0
        while count.map({ received < $0 }) ?? true {
            if let deadline, Date() >= deadline { break }
            let wait = deadline.map { Int32(max(1, min(200, $0.timeIntervalSinceNow * 1000))) } ?? 200
            guard let parts = try? socket.receive(timeoutMilliseconds: wait), parts.count == 2 else { continue }
            received += 1
            let topicName = String(decoding: parts[0], as: UTF8.self)
            let body = String(decoding: parts[1], as: UTF8.self)
            if jsonl {
                print("{\"topic\":\(jsonString(topicName)),\"message\":\(body)}")
            } else if brief {
                print(briefLine(topic: topicName, body: body))
            } else {
                print("\(topicName) \(body)")
            }
            fflush(nil)
        }
        socket.close(lingerMilliseconds: 0)
        context.terminate()
    }

    /// `12:03:04.25  demo  start   move_left  0.91`; ends add the reason and duration; statuses and
    /// daemon messages their state or type. A message that is not a JSON object is printed as it came.
    private func briefLine(topic: String, body: String) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else { return "\(topic) \(body)" }
        let seconds = object["timestamp"] as? Double ?? object["ended_at"] as? Double
        let time = seconds.map { seconds -> String in
            var whole = time_t(seconds.rounded(.down)), parts = tm()
            localtime_r(&whole, &parts)
            return String(format: "%02d:%02d:%05.2f", parts.tm_hour, parts.tm_min, Double(parts.tm_sec) + seconds - seconds.rounded(.down))
        } ?? "--:--:--.--"
        let camera = object["camera"] as? String ?? topic
        let type = object["type"] as? String ?? ""
        if topic.hasSuffix(".action"), let label = object["label"] as? String {
            var line = "\(time)  \(camera)  \(type.padding(toLength: 6, withPad: " ", startingAt: 0))  \(label.padding(toLength: 12, withPad: " ", startingAt: 0))"
            if let score = object["score"] as? Double { line += String(format: " %.2f", score) }
            if type == "end" {
                let reason = object["reason"] as? String ?? "?"
                line += (object["duration"] as? Double).map { String(format: "  (%@, lasted %.2f s)", reason, $0) } ?? "  (\(reason))"
            }
            return line
        }
        if let state = object["state"] as? String {
            return "\(time)  \(camera)  \(state)" + ((object["reason"] as? String).map { " (\($0))" } ?? "")
        }
        return "\(time)  \(topic)  \(type)"
    }

    private func jsonString(_ text: String) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes]), as: UTF8.self)
            .dropFirst().dropLast().description
    }
}

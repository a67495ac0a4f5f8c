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
    @Option(help: "Stop after this many messages.") var count: Int?
    @Option(help: "Stop after this many seconds.") var timeout: Double?
    @Option(help: "CURVE: the server's public key (Z85, 40 characters) or a file holding it.") var serverKey: String?
    @Option(help: "CURVE: a file with this client's secret key (Z85); its public key must be allowed by the server.") var clientSecretKeyFile: String?

    func validate() throws {
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
            } else {
                print("\(topicName) \(body)")
            }
            fflush(nil)
        }
        socket.close(lingerMilliseconds: 0)
        context.terminate()
    }

    private func jsonString(_ text: String) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes]), as: UTF8.self)
            .dropFirst().dropLast().description
    }
}

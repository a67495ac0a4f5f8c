import ArgumentParser
import Foundation
import TubeletDaemon

@main
struct Tubelet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tubelet",
        abstract: "Action recognition in live video on the CPU.",
        version: tubeletVersion,
        subcommands: [Import.self, Infer.self, Stream.self, EvalStream.self, Bench.self, BenchCapture.self, Events.self, Proxy.self])
}

/// Prints one error line and exits with status 2: the convention for bad input files and arguments.
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("tubelet: \(message)\n".utf8))
    exit(2)
}

/// Prints a JSON object on stdout with sorted keys.
func printJSON(_ object: Any) {
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

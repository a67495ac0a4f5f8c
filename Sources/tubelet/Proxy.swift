import ArgumentParser
import Foundation
import TubeletDaemon

/// `tubelet proxy --xsub ENDPOINT --xpub ENDPOINT`: ZeroMQ's own forwarder (zmq_proxy) between daemons
/// (their PUB sockets connect to --xsub) and subscribers (they connect to --xpub).
struct Proxy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Forward events from several tubeletd instances to one address (zmq_proxy with XSUB/XPUB).",
        discussion: "Daemons set events.connect: [XSUB endpoint]; subscribers connect to the XPUB endpoint. Stops on SIGTERM or SIGINT.")

    @Option(help: "Where daemons connect, e.g. tcp://0.0.0.0:5559.") var xsub: String
    @Option(help: "Where subscribers connect, e.g. tcp://0.0.0.0:5560.") var xpub: String

    func run() throws {
        let context = ZMQContext()
        // zmq_proxy returns when the context is shut down: do that from a signal source.
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let sources = [SIGTERM, SIGINT].map { DispatchSource.makeSignalSource(signal: $0, queue: .global()) }
        for source in sources {
            source.setEventHandler { context.shutdown() }
            source.resume()
        }
        do {
            try runForwarder(context: context, xsubEndpoint: xsub, xpubEndpoint: xpub) {
                print("READY xsub \(xsub) xpub \(xpub)")
                fflush(nil)
            }
        } catch {
            fail("\(error)")
        }
        context.terminate()
    }
}

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
        let forwarder: Forwarder
        do {
            forwarder = try Forwarder(context: context, xsubEndpoint: xsub, xpubEndpoint: xpub)
        } catch {
            fail("\(error)")
        }
        // SIGTERM / SIGINT: the handler writes to a pipe (all it may safely do); a thread reading the pipe
        // ends the forwarder through its control socket.
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { fail("pipe: \(String(cString: strerror(errno)))") }
        proxySignalPipe = fds[1]
        let readEnd = fds[0]
        for sig in [SIGTERM, SIGINT] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { _ in
                var byte: UInt8 = 1
                _ = write(proxySignalPipe, &byte, 1)
            }
            sigaction(sig, &action, nil)
        }
        let waiter = Thread {
            var byte: UInt8 = 0
            while read(readEnd, &byte, 1) < 0 && errno == EINTR {}
            forwarder.stop()
        }
        waiter.start()
        print("READY xsub \(xsub) xpub \(xpub)")
        fflush(nil)
        do {
            try forwarder.run()
        } catch {
            fail("\(error)")
        }
        context.terminate()
    }
}

nonisolated(unsafe) private var proxySignalPipe: Int32 = -1

#!/usr/bin/env python3
"""Subscribe to tubeletd events with pyzmq and print them, one JSON line each.

    pip install pyzmq            # or: apt install python3-zmq
    python3 examples/subscriber.py --connect tcp://127.0.0.1:5556 [--topic tubelet.front.] [--count N]

Every message is two frames: the topic (tubelet.<camera>.action, tubelet.<camera>.status,
tubelet.daemon) and a JSON object (schemas: Config/schemas/*.schema.json). Subscriptions are topic
prefixes. A gap in a topic's `sequence` means messages were lost (for example while this subscriber
was slow: the daemon never waits for subscribers).

CURVE (when the daemon sets events.curve): pass --server-key (the server's Z85 public key) and
--client-secret-key-file (this client's Z85 secret key; its public key must be in allowed_clients).
"""
import argparse
import json
import sys

import zmq


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connect", default="tcp://127.0.0.1:5556")
    parser.add_argument("--topic", action="append", default=[], help="topic prefix (repeatable); default: all")
    parser.add_argument("--count", type=int, help="exit after this many messages")
    parser.add_argument("--timeout", type=float, help="exit (status 1) if no message arrives for this many seconds")
    parser.add_argument("--server-key")
    parser.add_argument("--client-secret-key-file")
    args = parser.parse_args()

    context = zmq.Context()
    socket = context.socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    if args.server_key:
        secret = open(args.client_secret_key_file).read().split()[0].encode()
        socket.curve_serverkey = args.server_key.encode()
        socket.curve_secretkey = secret
        socket.curve_publickey = zmq.curve_public(secret)
    for prefix in args.topic or [""]:
        socket.setsockopt_string(zmq.SUBSCRIBE, prefix)
    socket.connect(args.connect)

    last_sequence = {}
    received = 0
    try:
        while args.count is None or received < args.count:
            if args.timeout is not None and not socket.poll(int(args.timeout * 1000)):
                print(f"no message for {args.timeout} s", file=sys.stderr)
                return 1
            topic, body = socket.recv_multipart()
            message = json.loads(body)
            topic = topic.decode()
            sequence = message.get("sequence")
            previous = last_sequence.get(topic)
            if previous is not None and sequence is not None and sequence > previous + 1:
                print(f"{topic}: lost {sequence - previous - 1} message(s)", file=sys.stderr)
            last_sequence[topic] = sequence
            print(json.dumps({"topic": topic, "message": message}), flush=True)
            received += 1
    except KeyboardInterrupt:
        pass
    finally:
        socket.close()
        context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Serves one H.264 MP4 file over RTSP on 127.0.0.1, for the capture tests.

Uses GStreamer's RTSP server (Debian: gir1.2-gst-rtsp-server-1.0, python3-gst-1.0,
gstreamer1.0-plugins-good, gstreamer1.0-plugins-bad). Run it with the system Python:

    /usr/bin/python3 tools/rtsp_server.py --file clip.mp4 --port 8554 [--path /stream]

Each client gets its own pipeline, played from the start of the file at its native rate.
Prints "READY rtsp://127.0.0.1:PORT/PATH" once it listens.
"""
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", required=True, help="H.264 MP4 file to serve")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--path", default="/stream")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    location = args.file.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(
        f'( filesrc location="{location}" ! qtdemux ! h264parse config-interval=-1 '
        f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(False)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1

    loop = GLib.MainLoop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

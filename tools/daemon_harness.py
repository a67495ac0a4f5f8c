"""Shared pieces of tools/fault_inject.py and tools/soak.py: run the real tubeletd on loopback with RTSP
cameras (tools/rtsp_server.py) and file cameras, subscribe with `tubelet events --jsonl`, sample resident
memory from /proc and read /metrics. Not used by CI; standard library only (plus Debian's GStreamer for
the RTSP server, run with /usr/bin/python3).
"""
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parent.parent
BIN = REPO / ".build" / "release"


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, **kwargs):
    return subprocess.run([str(a) for a in args], check=True, **kwargs)


def ffmpeg(*args):
    run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args])


def test_video(path, seconds, size="160x120", rate=25, container_args=()):
    """testsrc2 H.264, a keyframe every second, no B-frames (what a camera sends)."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}", "-c:v", "libx264",
           "-preset", "ultrafast", "-g", str(rate), "-bf", "0", "-pix_fmt", "yuv420p", *container_args, path)
    return path


def import_model(work, source=None):
    """The bundled demo model (streaming-native Swin, 16x16, 1.4 MB): cheap enough for a shared CPU."""
    source = source or REPO / "models" / "demo" / "demo.pth"
    out = pathlib.Path(work) / "model.safetensors"
    run([BIN / "tubelet", "import", source, "-o", out, "--labels", REPO / "models" / "demo" / "labels.txt"],
        stdout=subprocess.DEVNULL)
    return out


class RTSPServer:
    """tools/rtsp_server.py on 127.0.0.1:port; every client gets the file from its start."""

    def __init__(self, video, port, log_path):
        self.video, self.port, self.log_path = video, port, log_path
        self.process = None
        self.url = f"rtsp://viewer:secret-password@127.0.0.1:{port}/stream"

    def start(self):
        logf = open(self.log_path, "ab")
        self.process = subprocess.Popen(["/usr/bin/python3", str(REPO / "tools" / "rtsp_server.py"), "--file", str(self.video),
                                         "--port", str(self.port)], stdout=subprocess.PIPE, stderr=logf)
        line = self.process.stdout.readline().decode()
        if not line.startswith("READY"):
            raise RuntimeError(f"rtsp_server.py did not start: {line!r}")

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Subscriber:
    """`tubelet events --jsonl` writing to a file (read = True), or to a pipe nobody reads (read = False):
    once the pipe is full the process blocks in write() and stops reading its ZeroMQ socket."""

    def __init__(self, endpoint, path, read=True):
        self.path = path
        args = [str(BIN / "tubelet"), "events", "--connect", endpoint, "--jsonl"]
        if read:
            self.out = open(path, "wb")
            self.process = subprocess.Popen(args, stdout=self.out, stderr=subprocess.DEVNULL)
        else:
            self.out = None
            self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.out:
            self.out.close()

    def messages(self):
        out = []
        with open(self.path, "rb") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass  # a line cut by the final SIGTERM
        return out


class Daemon:
    def __init__(self, config_path, log_path):
        self.config_path, self.log_path = config_path, log_path
        self.process = None

    def start(self):
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("JOURNAL_STREAM", None)
        self.logf = open(self.log_path, "ab")
        self.process = subprocess.Popen([str(BIN / "tubeletd"), "--config", str(self.config_path)], stdout=self.logf,
                                        stderr=self.logf, env=env)

    def alive(self):
        return self.process.poll() is None

    def rss_kib(self):
        try:
            for line in open(f"/proc/{self.process.pid}/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except FileNotFoundError:
            return None
        return None

    def threads(self):
        try:
            return len(os.listdir(f"/proc/{self.process.pid}/task"))
        except FileNotFoundError:
            return None

    def fds(self):
        try:
            return len(os.listdir(f"/proc/{self.process.pid}/fd"))
        except FileNotFoundError:
            return None

    def signal(self, sig):
        self.process.send_signal(sig)

    def stop(self, timeout=10):
        if not self.alive():
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return "killed after %d s" % timeout


class Sampler(threading.Thread):
    """Samples the daemon's RSS, threads and descriptors once a second."""

    def __init__(self, daemon):
        super().__init__(daemon=True)
        self.d = daemon
        self.samples = []  # (t, rss_kib, threads, fds)
        self.halt = threading.Event()

    def run(self):
        start = time.monotonic()
        while not self.halt.is_set():
            rss = self.d.rss_kib()
            if rss is not None:
                self.samples.append((time.monotonic() - start, rss, self.d.threads(), self.d.fds()))
            self.halt.wait(1)

    def window(self, t0, t1):
        return [s for s in self.samples if t0 <= s[0] < t1]


def median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else None


def metrics(port):
    """Parses /metrics into {(name, labels-string): value}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out


def camera_metric(m, name, camera):
    return m.get(f'{name}{{camera="{camera}"}}', 0.0)


def latency_quantile(m, camera, q, name="tubelet_clip_latency_seconds"):
    """Upper bound of the bucket holding quantile q of the histogram."""
    buckets = []
    for key, value in m.items():
        prefix = f'{name}_bucket{{camera="{camera}",le="'
        if key.startswith(prefix):
            le = key[len(prefix):-2]
            buckets.append((float("inf") if le == "+Inf" else float(le), value))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    for le, count in buckets:
        if count >= q * total:
            return le
    return None


def healthz(port):
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).status
    except Exception as error:  # noqa: BLE001 - reported, not raised
        return str(error)


def sequence_report(messages, topic):
    """Sequence numbers of one topic as received: lost (gaps) and duplicated numbers."""
    bodies = [m["message"] for m in messages if m["topic"] == topic]
    if not bodies:
        return {"topic": topic, "received": 0, "lost": None, "duplicates": None, "replayed": None, "first": None, "last": None}
    # Status topics: whenever anyone subscribes, XPUB's last-value cache sends each camera's latest status
    # again, byte for byte with its old sequence number (documented), and PUB delivers it to every
    # subscriber. Such identical repeats are counted as replayed; a repeated number with other content
    # would be a real duplicate.
    seen, duplicates, replayed, out_of_order = {}, 0, 0, 0
    previous = None
    for body in bodies:
        s = body["sequence"]
        if s in seen:
            if seen[s] == body:
                replayed += 1
            else:
                duplicates += 1
        else:
            if previous is not None and s < previous:
                out_of_order += 1
            previous = s
        seen.setdefault(s, body)
    expected = set(range(min(seen), max(seen) + 1))
    return {"topic": topic, "received": len(bodies), "first": min(seen), "last": max(seen),
            "lost": len(expected - set(seen)), "duplicates": duplicates, "replayed": replayed, "out_of_order": out_of_order}


def write_config(path, text):
    """Atomically, so a reload never reads half a file."""
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def config_yaml(model, cameras, events_port, metrics_port, camera_a_top_k=5, send_hwm=1000, extra=""):
    """cameras: {id: (source, capture-yaml-lines)}. Decisions open every label at once and update it every
    clip (min_score 0, update_interval 0), so every camera publishes a steady stream of numbered events."""
    lines = [f"models:\n  demo:\n    file: {model}\n",
             "capture:\n  connect_timeout: 3\n  read_timeout: 3\n  stall_timeout: 4\n  backoff_first: 0.2\n  backoff_cap: 1\n",
             "window:\n  hop: 4\n",
             "decisions:\n  min_score: 0\n  end_score: 0\n  min_duration: 0\n  update_interval: 0\n  top_k: 3\n",
             f"events:\n  endpoint: tcp://127.0.0.1:{events_port}\n  send_hwm: {send_hwm}\n  startup_grace: 5\n",
             f"metrics:\n  listen: 127.0.0.1:{metrics_port}\n",
             "logging:\n  level: info\n  format: plain\n",
             "cameras:\n"]
    for camera, (source, capture) in cameras.items():
        lines.append(f"  {camera}:\n    source: {source}\n")
        if capture:
            lines.append("    capture:\n" + "".join(f"      {c}\n" for c in capture))
        if camera == "a":
            lines.append(f"    decisions:\n      top_k: {camera_a_top_k}\n")
    return "".join(lines) + extra


def wait_for(predicate, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def require_binaries():
    for name in ["tubelet", "tubeletd"]:
        if not (BIN / name).exists():
            sys.exit(f"no {BIN / name}: run `swift build -c release` first")

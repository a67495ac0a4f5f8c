#!/usr/bin/env python3
"""Fault injection against the real tubeletd on loopback (not CI).

Four cameras on one daemon (the bundled demo model):
  a  RTSP (tools/rtsp_server.py), the server is SIGKILLed and restarted --restarts times (default 20)
  b  RTSP from a second server that is never touched: the control camera
  c  an MPEG-TS file with corrupted packets, played in real time in a loop
  d  an MPEG-TS file whose resolution changes mid-stream (160x120 -> 320x240 -> 160x120), in a loop
plus a ZeroMQ subscriber that stops reading (a `tubelet events` whose stdout pipe is never read), and
--sighups SIGHUPs (default 50) in --sighup-seconds (default 10), alternating a valid configuration (camera
a's decisions change) and an invalid one (unknown key, broken YAML, an empty camera entry, a bad value).

Checks: the daemon stays up (and /healthz answers), resident memory stays flat (median of the last 20 s
against the median of 20 s after warm-up, limit --rss-limit percent), threads and descriptors return to
where they were, every event topic of camera b has contiguous sequence numbers with no loss and no
duplicate, the reading subscriber lost nothing on any topic, credentials never appear in the log or the
events, and SIGTERM still stops the daemon with status 0. Prints a report; exit 0 when every check passes.

    swift build -c release && tools/fault_inject.py [--restarts 20] [--sighups 50] [--json report.json]
"""
import argparse
import json
import pathlib
import random
import signal
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import daemon_harness as h  # noqa: E402


def corrupt(path, out, fraction, seed=7):
    """Overwrites random bytes of TS packet payloads (keeping the 0x47 sync bytes, so the demuxer carries on)."""
    data = bytearray(open(path, "rb").read())
    rng = random.Random(seed)
    for _ in range(int(len(data) * fraction)):
        i = rng.randrange(len(data))
        if i % 188 > 4:
            data[i] = rng.randrange(256)
    open(out, "wb").write(data)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=20)
    parser.add_argument("--down-seconds", type=float, default=1.0, help="how long the RTSP server stays dead")
    parser.add_argument("--sighups", type=int, default=50)
    parser.add_argument("--sighup-seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=60)
    parser.add_argument("--settle", type=float, default=30, help="seconds of quiet after the faults")
    parser.add_argument("--rss-limit", type=float, default=5, help="percent")
    parser.add_argument("--json", help="write the report here too")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    h.require_binaries()

    work = pathlib.Path(tempfile.mkdtemp(prefix="tubelet-faults-"))
    h.log(f"work directory {work}")
    total = args.warmup + args.restarts * (args.down_seconds + 3) + args.sighup_seconds + args.settle + 120
    model = h.import_model(work)
    long_video = h.test_video(work / "long.mp4", int(total) + 60)
    clean_ts = h.test_video(work / "clean.ts", 30, container_args=("-f", "mpegts"))
    corrupt_ts = corrupt(clean_ts, work / "corrupt.ts", 0.002)
    h.test_video(work / "small.ts", 4, size="160x120", container_args=("-f", "mpegts"))
    h.test_video(work / "large.ts", 4, size="320x240", container_args=("-f", "mpegts"))
    res_ts = work / "reschange.ts"
    with open(res_ts, "wb") as out:  # MPEG-TS segments concatenate: the stream changes size at each join
        for name in ["small.ts", "large.ts", "small.ts"]:
            out.write((work / name).read_bytes())

    server_a = h.RTSPServer(long_video, h.free_port(), work / "rtsp-a.log")
    server_b = h.RTSPServer(long_video, h.free_port(), work / "rtsp-b.log")
    server_a.start()
    server_b.start()
    events_port, metrics_port = h.free_port(), h.free_port()
    cameras = {
        "a": (server_a.url, []),
        "b": (server_b.url, []),
        "c": (str(corrupt_ts), ["realtime: true", "loop: true"]),
        "d": (str(res_ts), ["realtime: true", "loop: true"]),
    }
    config = work / "tubelet.yaml"
    # send_hwm bounds what ZeroMQ queues for the stuck subscriber (~2 MB of events): it fills during the
    # warm-up, so the memory baseline already includes it.
    valid = [h.config_yaml(model, cameras, events_port, metrics_port, camera_a_top_k=k, send_hwm=5000) for k in (5, 4)]
    # Invalid in different ways: an unknown key, broken YAML, a camera with nothing under it, a bad value.
    invalid = [valid[0] + "bogus_key: 1\n", valid[0] + "  e: {source: [\n", valid[0] + "  e:\n",
               valid[0].replace("hop: 4", "hop: 0")]
    h.write_config(config, valid[0])
    endpoint = f"tcp://127.0.0.1:{events_port}"

    daemon = h.Daemon(config, work / "tubeletd.log")
    reader = h.Subscriber(endpoint, work / "events.jsonl")
    daemon.start()
    stuck = None
    sampler = h.Sampler(daemon)
    sampler.start()
    checks = []

    def check(name, ok, detail=""):
        checks.append({"check": name, "ok": bool(ok), "detail": detail})
        h.log(f"{'PASS' if ok else 'FAIL'} {name} {detail}")

    try:
        if not h.wait_for(lambda: h.healthz(metrics_port) == 200, 60):
            check("daemon started", False, f"/healthz: {h.healthz(metrics_port)}")
            raise SystemExit(1)
        # The stuck subscriber joins once the reader has its first message (the `started` event held for the
        # first subscriber), so that the reader sees every topic from sequence 1.
        h.wait_for(lambda: (work / "events.jsonl").stat().st_size > 0, 30)
        stuck = h.Subscriber(endpoint, None, read=False)
        h.log(f"daemon up (pid {daemon.process.pid}); warming up {args.warmup:.0f} s")
        time.sleep(args.warmup)
        warm = sampler.samples[-1][0]
        base_threads, base_fds = sampler.samples[-1][2], sampler.samples[-1][3]
        time.sleep(20)
        baseline_rss = h.median([s[1] for s in sampler.window(warm, warm + 20)])
        m0 = h.metrics(metrics_port)

        h.log(f"fault 1: RTSP server of camera a killed and restarted {args.restarts} times")
        for i in range(args.restarts):
            server_a.kill()
            time.sleep(args.down_seconds)
            server_a.start()
            time.sleep(3)
            if not daemon.alive():
                break
        check("daemon up after RTSP restarts", daemon.alive())
        recovered = h.wait_for(lambda: h.camera_metric(h.metrics(metrics_port), "tubelet_camera_up", "a") == 1, 15)
        check("camera a streaming again after the last restart", recovered)

        h.log(f"fault 2: {args.sighups} SIGHUPs in {args.sighup_seconds:.0f} s, alternating valid and invalid configurations")
        for i in range(args.sighups):
            h.write_config(config, invalid[(i // 2) % len(invalid)] if i % 2 else valid[(i // 2) % 2])
            daemon.signal(signal.SIGHUP)
            time.sleep(args.sighup_seconds / args.sighups)
        h.write_config(config, valid[0])
        daemon.signal(signal.SIGHUP)
        check("daemon up after SIGHUPs", daemon.alive())

        h.log(f"settling {args.settle:.0f} s (camera c: corrupted packets, d: resolution changes, a stuck subscriber: all along)")
        time.sleep(args.settle)
        end = sampler.samples[-1][0]
        final_rss = h.median([s[1] for s in sampler.window(end - 20, end + 1)])
        growth = 100.0 * (final_rss - baseline_rss) / baseline_rss
        check("resident memory flat", growth < args.rss_limit,
              f"{baseline_rss / 1024:.1f} MiB after warm-up -> {final_rss / 1024:.1f} MiB at the end ({growth:+.1f}%, limit {args.rss_limit}%)")
        threads, fds = sampler.samples[-1][2], sampler.samples[-1][3]
        check("threads and descriptors back", threads <= base_threads + 2 and fds <= base_fds + 4,
              f"threads {base_threads} -> {threads}, descriptors {base_fds} -> {fds}")
        m1 = h.metrics(metrics_port)
        check("/healthz answers", h.healthz(metrics_port) == 200)
        check("camera b never reconnected", h.camera_metric(m1, "tubelet_reconnects_total", "b") == h.camera_metric(m0, "tubelet_reconnects_total", "b"),
              f"reconnects {h.camera_metric(m1, 'tubelet_reconnects_total', 'b'):.0f}")
        check("camera a reconnected after each restart", h.camera_metric(m1, "tubelet_reconnects_total", "a") >= args.restarts,
              f"reconnects {h.camera_metric(m1, 'tubelet_reconnects_total', 'a'):.0f}")
        check("camera c counted decode errors and kept classifying",
              h.camera_metric(m1, "tubelet_decode_errors_total", "c") > 0 and h.camera_metric(m1, "tubelet_clips_total", "c") > h.camera_metric(m0, "tubelet_clips_total", "c"),
              f"decode errors {h.camera_metric(m1, 'tubelet_decode_errors_total', 'c'):.0f}, clips {h.camera_metric(m1, 'tubelet_clips_total', 'c'):.0f}")
        check("camera d kept classifying across resolution changes",
              h.camera_metric(m1, "tubelet_clips_total", "d") > h.camera_metric(m0, "tubelet_clips_total", "d"),
              f"clips {h.camera_metric(m1, 'tubelet_clips_total', 'd'):.0f}")
        check("no event dropped inside the daemon", m1.get("tubelet_events_dropped_total", 0) == 0,
              f"tubelet_events_dropped_total {m1.get('tubelet_events_dropped_total', 0):.0f}")
        reloads = {k: v for k, v in m1.items() if k.startswith("tubelet_reloads_total")}
        h.log(f"reloads: {reloads}")
        summary_metrics = {cam: {name: h.camera_metric(m1, f"tubelet_{name}", cam)
                                 for name in ["frames_captured_total", "frames_dropped_total", "decode_errors_total", "reconnects_total", "clips_total"]}
                           for cam in cameras}
    finally:
        sampler.halt.set()
        alive = daemon.alive()
        status = daemon.stop()
        if stuck:
            stuck.stop()
        time.sleep(0.5)
        reader.stop()
        server_a.kill()
        server_b.kill()
    check("daemon alive until the end", alive)
    check("SIGTERM stops the daemon with status 0", status == 0, f"status {status}")

    messages = reader.messages()
    topics = sorted({m["topic"] for m in messages})
    reports = {t: h.sequence_report(messages, t) for t in topics}
    for topic in ["tubelet.b.action", "tubelet.b.status"]:
        r = reports.get(topic, h.sequence_report([], topic))
        check(f"{topic}: none lost, none duplicated", r["received"] > 0 and r["lost"] == 0 and r["duplicates"] == 0 and r["first"] == 1,
              f"received {r['received']}, sequence {r['first']}..{r['last']}, lost {r['lost']}, duplicated {r['duplicates']}, "
              f"last status replayed to new subscribers {r['replayed']}")
    others = [r for t, r in reports.items() if not t.startswith("tubelet.b.")]
    check("other topics: the reading subscriber lost nothing either", all(r["lost"] == 0 and r["duplicates"] == 0 and r["first"] == 1 for r in others),
          "; ".join(f"{r['topic']} {r['first']}..{r['last']} (lost {r['lost']}, dup {r['duplicates']}, replayed {r['replayed']})" for r in others))
    daemon_events = [m["message"] for m in messages if m["topic"] == "tubelet.daemon"]
    kinds = {}
    for e in daemon_events:
        kinds[e.get("type")] = kinds.get(e.get("type"), 0) + 1
    h.log(f"tubelet.daemon events: {kinds}")
    secret_in_log = "secret-password" in (work / "tubeletd.log").read_text(errors="replace")
    secret_in_events = "secret-password" in (work / "events.jsonl").read_text(errors="replace")
    check("credentials redacted (log and events)", not secret_in_log and not secret_in_events)

    report = {"checks": checks, "sequences": reports, "daemon_events": kinds, "cameras": summary_metrics,
              "rss_samples_kib": [(round(t, 1), r) for t, r, _, _ in sampler.samples[::10]]}
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=1))
    failed = [c for c in checks if not c["ok"]]
    print(f"\n{len(checks) - len(failed)}/{len(checks)} checks passed" + (f"; FAILED: {', '.join(c['check'] for c in failed)}" if failed else ""))
    if not args.keep and not failed:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

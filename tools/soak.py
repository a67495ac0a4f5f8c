#!/usr/bin/env python3
"""Soak test of the real tubeletd on loopback (not CI): two RTSP cameras (tools/rtsp_server.py, the bundled
demo model) for --minutes (default 30). Reports crashes (the daemon exiting), resident memory growth after
the warm-up (median of the last minute against the median of the minute after warm-up; limit 5%), threads
and descriptors, frames captured / dropped and clip latency (p50 / p95 / p99 bucket bounds and mean) from
/metrics, and sequence gaps seen by a subscriber. Exit 0 when there was no crash, growth is under the limit
and no event was lost.

    swift build -c release && tools/soak.py [--minutes 30] [--warmup 120] [--json soak.json]
"""
import argparse
import json
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import daemon_harness as h  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=120, help="seconds before the memory baseline")
    parser.add_argument("--rss-limit", type=float, default=5, help="percent")
    parser.add_argument("--json", help="write the report here too")
    parser.add_argument("--size", default="320x240", help="camera picture size")
    args = parser.parse_args()
    h.require_binaries()
    duration = args.minutes * 60
    if duration < args.warmup + 120:
        sys.exit("--minutes must leave at least two minutes after --warmup")

    work = pathlib.Path(tempfile.mkdtemp(prefix="tubelet-soak-"))
    h.log(f"work directory {work}")
    model = h.import_model(work)
    # Longer than the run, so the servers never reach the end of the file.
    video = h.test_video(work / "camera.mp4", int(duration) + 120, size=args.size)
    servers = {cam: h.RTSPServer(video, h.free_port(), work / f"rtsp-{cam}.log") for cam in ["a", "b"]}
    for server in servers.values():
        server.start()
    events_port, metrics_port = h.free_port(), h.free_port()
    config = work / "tubelet.yaml"
    h.write_config(config, h.config_yaml(model, {cam: (s.url, []) for cam, s in servers.items()}, events_port, metrics_port))
    daemon = h.Daemon(config, work / "tubeletd.log")
    reader = h.Subscriber(f"tcp://127.0.0.1:{events_port}", work / "events.jsonl")
    daemon.start()
    sampler = h.Sampler(daemon)
    sampler.start()
    start = time.monotonic()
    crashed = None
    scrapes = []
    try:
        if not h.wait_for(lambda: h.healthz(metrics_port) == 200, 60):
            crashed = f"did not start: {h.healthz(metrics_port)}"
        while crashed is None and time.monotonic() - start < duration:
            time.sleep(min(60, duration - (time.monotonic() - start)))
            if not daemon.alive():
                crashed = f"exited with {daemon.process.returncode} after {time.monotonic() - start:.0f} s"
                break
            m = h.metrics(metrics_port)
            scrapes.append((time.monotonic() - start, m))
            rss = sampler.samples[-1][1] if sampler.samples else 0
            h.log(f"{(time.monotonic() - start) / 60:5.1f} min  rss {rss / 1024:.1f} MiB  "
                  + "  ".join(f"{cam}: clips {h.camera_metric(m, 'tubelet_clips_total', cam):.0f} dropped {h.camera_metric(m, 'tubelet_frames_dropped_total', cam):.0f}"
                              for cam in servers))
    finally:
        sampler.halt.set()
        status = daemon.stop()
        time.sleep(0.5)
        reader.stop()
        for server in servers.values():
            server.kill()

    report = {"minutes_run": round((time.monotonic() - start) / 60, 2), "crash": crashed, "stop_status": status}
    samples = sampler.samples
    base = h.median([s[1] for s in sampler.window(args.warmup, args.warmup + 60)])
    end = samples[-1][0] if samples else 0
    final = h.median([s[1] for s in sampler.window(end - 60, end + 1)])
    if base and final:
        report["rss_mib_after_warmup"] = round(base / 1024, 1)
        report["rss_mib_at_end"] = round(final / 1024, 1)
        report["rss_growth_percent"] = round(100 * (final - base) / base, 2)
        report["rss_mib_max"] = round(max(s[1] for s in samples) / 1024, 1)
        warm = sampler.window(args.warmup, args.warmup + 60)
        report["threads"] = (warm[0][2] if warm else None, samples[-1][2])
        report["descriptors"] = (warm[0][3] if warm else None, samples[-1][3])
    if scrapes:
        m = scrapes[-1][1]
        cams = {}
        for cam in servers:
            count = h.camera_metric(m, "tubelet_clip_latency_seconds_count", cam)
            total = h.camera_metric(m, "tubelet_clip_latency_seconds_sum", cam)
            cams[cam] = {
                "frames_captured": h.camera_metric(m, "tubelet_frames_captured_total", cam),
                "frames_sampled": h.camera_metric(m, "tubelet_frames_sampled_total", cam),
                "frames_dropped": h.camera_metric(m, "tubelet_frames_dropped_total", cam),
                "decode_errors": h.camera_metric(m, "tubelet_decode_errors_total", cam),
                "reconnects": h.camera_metric(m, "tubelet_reconnects_total", cam),
                "clips": h.camera_metric(m, "tubelet_clips_total", cam),
                "latency_mean_s": round(total / count, 4) if count else None,
                "latency_p50_le_s": h.latency_quantile(m, cam, 0.5),
                "latency_p95_le_s": h.latency_quantile(m, cam, 0.95),
                "latency_p99_le_s": h.latency_quantile(m, cam, 0.99),
                "inference_mean_s": round(h.camera_metric(m, "tubelet_inference_seconds_sum", cam) /
                                          max(1, h.camera_metric(m, "tubelet_inference_seconds_count", cam)), 4),
            }
        report["cameras"] = cams
        report["events_dropped_in_daemon"] = m.get("tubelet_events_dropped_total")
    messages = reader.messages()
    report["sequences"] = [h.sequence_report(messages, t) for t in sorted({x["topic"] for x in messages})]
    lost = sum(r["lost"] or 0 for r in report["sequences"]) + sum(r["duplicates"] or 0 for r in report["sequences"])
    growth = report.get("rss_growth_percent")
    ok = crashed is None and status == 0 and growth is not None and growth < args.rss_limit and lost == 0
    report["ok"] = ok
    print(json.dumps(report, indent=1))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

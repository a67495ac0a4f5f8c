#!/usr/bin/env bash
# Real-time check: one 25 fps 1080p H.264 RTSP camera on loopback, classified by tubeletd with a
# random-weight streaming-native Swin-T (32 frames at stride 2, a label every 8 sampled frames,
# kv reuse) for DURATION seconds. Prints frames dropped after the warm-up, end-to-end latency
# (a clip's last frame -> its event published, the events' latency_ms) p50/p99/max, and the
# daemon's peak resident memory (VmHWM).
#
# Usage: tools/realtime_rtsp.sh [--duration 600] [--warmup 60] [--frames 32] [--stride 2] [--hop 8]
#                               [--reuse kv] [--size 224] [--keep DIR]
# Env:   TUBELET_BIN_DIR  directory with release `tubelet` and `tubeletd` (default: build them)
#        TUBELET_THREADS  worker threads of the daemon's model (default: all cores)
# Needs: ffmpeg, /usr/bin/python3 with GStreamer's RTSP server (tools/rtsp_server.py), python3.
#
# The model has one class, so that every label opens or updates one action and publishes an event
# (decisions: min_score 0.5, min_duration 0, update_interval 0): each label's latency is measured.
# The head is 0.004% of the model's FLOPs, so this costs the same as 400 classes.
set -euo pipefail

duration=600 warmup=60 frames=32 stride=2 hop=8 reuse=kv size=224 keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --frames) frames=$2; shift 2 ;;
    --stride) stride=$2; shift 2 ;;
    --hop) hop=$2; shift 2 ;;
    --reuse) reuse=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "realtime_rtsp.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
if [ -n "$keep" ]; then work=$keep; mkdir -p "$work"; else work=$(mktemp -d "${TMPDIR:-/tmp}/tubelet-realtime.XXXXXX"); fi
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${TUBELET_BIN_DIR:-}" ]; then
  bin=$TUBELET_BIN_DIR
else
  echo "realtime: building tubelet and tubeletd (release)" >&2
  (cd "$root" && swift build -c release --product tubelet >&2 && swift build -c release --product tubeletd >&2)
  bin=$(cd "$root" && swift build -c release --show-bin-path)
fi

# A free TCP port on loopback.
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

model=$work/swin3d_t_streaming.safetensors
[ -f "$model" ] || "$bin/tubelet" bench --topology swin3d_t --streaming --frames "$frames" --size "$size" --classes 1 \
  --write-model "$model" >&2

# 20 s of 1080p25 H.264 (testsrc2, 2 s GOPs), repeated without re-encoding to cover the run.
video=$work/1080p25.mp4
if [ ! -f "$video" ]; then
  echo "realtime: encoding 1080p25 H.264" >&2
  ffmpeg -loglevel error -y -f lavfi -i testsrc2=size=1920x1080:rate=25:duration=20 -c:v libx264 -preset veryfast \
    -pix_fmt yuv420p -g 50 "$work/short.mp4"
  loops=$(( (duration + warmup + 120) / 20 ))
  ffmpeg -loglevel error -y -stream_loop "$loops" -i "$work/short.mp4" -c copy "$video"
  rm -f "$work/short.mp4"
fi

rtsp_port=$(port)
/usr/bin/python3 "$here/rtsp_server.py" --file "$video" --port "$rtsp_port" > "$work/rtsp.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q READY "$work/rtsp.log" 2>/dev/null && break; sleep 0.1; done
grep -q READY "$work/rtsp.log" || { echo "realtime: RTSP server did not start:" >&2; cat "$work/rtsp.log" >&2; exit 1; }

events_port=$(port) metrics_port=$(port)
cat > "$work/tubelet.yaml" <<EOF
models:
  swin:
    file: $model
window:
  clip_frames: $frames
  frame_stride: $stride
  hop: $hop
  reuse: $reuse
decisions:
  min_score: 0.5
  end_score: 0.3
  min_duration: 0
  smoothing:
    method: mean
    clips: 1
  update_interval: 0
events:
  endpoint: tcp://127.0.0.1:$events_port
metrics:
  listen: 127.0.0.1:$metrics_port
logging:
  format: plain
cameras:
  cam:
    source: rtsp://127.0.0.1:$rtsp_port/stream
EOF

"$bin/tubelet" events --connect "tcp://127.0.0.1:$events_port" --jsonl --timeout $((duration + warmup + 60)) \
  > "$work/events.jsonl" 2> "$work/events.log" &
pids+=($!)
"$bin/tubeletd" --config "$work/tubelet.yaml" > "$work/tubeletd.log" 2>&1 &
daemon=$!
pids+=("$daemon")

metrics() { python3 -c 'import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
for line in text.splitlines():
    if line.startswith("tubelet_") and "{" in line and not line.startswith("tubelet_clip_latency") and not line.startswith("tubelet_inference"):
        name, value = line.rsplit(" ", 1)
        print(name.split("{")[0], value)' "http://127.0.0.1:$metrics_port/metrics"; }

echo "realtime: warming up for ${warmup} s, then measuring for ${duration} s ($(uptime | sed 's/.*load/load/'))" >&2
sleep "$warmup"
kill -0 "$daemon" 2>/dev/null || { echo "realtime: tubeletd exited:" >&2; tail -20 "$work/tubeletd.log" >&2; exit 1; }
metrics > "$work/metrics.start"
start=$(python3 -c 'import time; print(time.time())')
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
rss_samples=$work/rss.txt
: > "$rss_samples"
for ((t = 0; t < duration; t += 5)); do
  sleep 5
  kill -0 "$daemon" 2>/dev/null || { echo "realtime: tubeletd exited:" >&2; tail -20 "$work/tubeletd.log" >&2; exit 1; }
  awk '/VmRSS/ {print $2}' "/proc/$daemon/status" >> "$rss_samples"
done
metrics > "$work/metrics.end"
end=$(python3 -c 'import time; print(time.time())')
peak_kb=$(awk '/VmHWM/ {print $2}' "/proc/$daemon/status")
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$work" "$start" "$end" "$peak_kb" "$load_start" "$load_end" "$frames" "$stride" "$hop" "$reuse" <<'EOF'
import json, sys
work, start, end, peak_kb = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
load_start, load_end, frames, stride, hop, reuse = sys.argv[5:11]
def read(path):
    return {name: float(value) for name, value in (line.split() for line in open(path))}
m0, m1 = read(f"{work}/metrics.start"), read(f"{work}/metrics.end")
delta = {k: m1[k] - m0.get(k, 0) for k in m1}
latencies = []
for line in open(f"{work}/events.jsonl"):
    event = json.loads(line)
    message = event.get("message", {})
    if event.get("topic", "").endswith(".action") and "latency_ms" in message and start <= message.get("timestamp", 0) <= end:
        latencies.append(message["latency_ms"] / 1000)
latencies.sort()
def pct(p):
    return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] if latencies else float("nan")
rss = [int(x) for x in open(f"{work}/rss.txt").read().split()]
seconds = end - start
sampled, processed = delta.get("tubelet_frames_sampled_total", 0), delta.get("tubelet_frames_processed_total", 0)
print(f"Swin-T streaming-native, {frames} frames at stride {stride}, hop {hop}, reuse {reuse}; 1080p25 H.264 over RTSP (loopback)")
print(f"measured {seconds:.0f} s after warm-up; load average {load_start} at start, {load_end} at end")
captured = delta.get("tubelet_frames_captured_total", 0)
print(f"frames captured {captured:.0f} ({captured / seconds:.1f}/s of the camera's 25/s: "
      f"{max(0, int(25 * seconds) - captured):.0f} never decoded), sampled {sampled:.0f}, given to the model {processed:.0f}")
print(f"frames dropped after warm-up: {delta.get('tubelet_frames_dropped_total', 0):.0f} (ring overwritten before inference read them), "
      f"decode errors {delta.get('tubelet_decode_errors_total', 0):.0f}, reconnects {delta.get('tubelet_reconnects_total', 0):.0f}")
print(f"labels: {delta.get('tubelet_clips_total', 0):.0f} ({delta.get('tubelet_clips_total', 0) / seconds:.2f}/s; "
      f"real time needs {25 / int(stride) / int(hop):.2f}/s), clips skipped as stale (inference behind): "
      f"{delta.get('tubelet_clips_skipped_total', 0):.0f}")
print(f"end-to-end latency (last frame of the clip -> event published), {len(latencies)} events: "
      f"p50 {pct(50):.3f} s, p99 {pct(99):.3f} s, max {latencies[-1] if latencies else float('nan'):.3f} s")
print(f"tubeletd resident memory: peak {peak_kb / 1024:.0f} MiB (VmHWM), last {rss[-1] / 1024 if rss else float('nan'):.0f} MiB")
EOF

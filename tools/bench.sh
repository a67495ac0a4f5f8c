#!/usr/bin/env bash
# Tubelet vs peers on one topology (Video Swin-T by default), timed in the same run on the same machine.
#
# Each round runs our engine first (`tubelet bench --topology X --frames F --size S --json`, whose JSON is
# {"seconds_best":..., "gflop":..., "gflops":...}), then the peers
# (`python3 tools/bench_peers.py ... --json`: PyTorch eager, ONNX Runtime, OpenVINO).
# With --rounds N the two alternate N times (interleaved, so drift on a shared VM hits both);
# the best time of each engine over all rounds is reported, with the ratio peer/ours
# (> 1 means Tubelet is faster). Our GFLOP count is checked against bench_peers' analytic one.
#
# Topologies: swin3d_t (torchvision), timesformer_b (transformers, divided space-time; paper clip 8x224),
# vivit_b_fe (ViViT-B factorised encoder, scenic's Kinetics config; paper clip 32x224), videomae_b
# (transformers VideoMAE ViT-B; paper clip 16x224: the peers' random model is saved as a Hugging Face
# directory, imported with `tubelet import` and timed with `tubelet bench --model`, so every engine runs
# the same weights).
#
# Usage: tools/bench.sh [--topology swin3d_t] [--frames 16] [--size 224] [--threads 2] [--repeat 3]
#                       [--rounds 1] [--engines torch,onnxruntime,openvino] [--peers-only] [--json]
# Env:   TUBELET_BENCH_ARGS  extra arguments for `tubelet bench` (e.g. "--threads 2")
#        TUBELET_BIN         use this tubelet binary instead of building one
#        PYTHON              python interpreter (default python3)
set -euo pipefail

topology=swin3d_t frames=16 size=224 threads=2 repeat=3 rounds=1 engines=torch,onnxruntime,openvino
peers_only=0 json=0
while [ $# -gt 0 ]; do
  case "$1" in
    --topology) topology=$2; shift 2 ;;
    --frames) frames=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --engines) engines=$2; shift 2 ;;
    --peers-only) peers_only=1; shift ;;
    --json) json=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
py=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/tubelet-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Build once, outside the timed loop, and run the binary directly so that build output
# never mixes with the JSON (equivalent to `swift run -c release tubelet bench ...`).
ours_bin=""
if [ "$peers_only" = 0 ] && [ -n "${TUBELET_BIN:-}" ]; then
  ours_bin=$TUBELET_BIN
elif [ "$peers_only" = 0 ]; then
  if ! command -v swift >/dev/null 2>&1; then
    echo "bench.sh: swift not found; running the peers only" >&2; peers_only=1
  else
    echo "bench.sh: building tubelet (release)" >&2
    (cd "$root" && swift build -c release --product tubelet >&2)
    ours_bin="$(cd "$root" && swift build -c release --show-bin-path)/tubelet"
  fi
fi

# Families Tubelet reads from a Hugging Face directory: the peers' model, imported.
ours_model=(--topology "$topology")
if [ "$peers_only" = 0 ] && [ "$topology" = videomae_b ]; then
  echo "bench.sh: importing the peers' $topology into a Tubelet model file" >&2
  "$py" "$here/bench_peers.py" --topology "$topology" --frames "$frames" --size "$size" --write-hf "$work/hf"
  "$ours_bin" import "$work/hf" -o "$work/model.safetensors" >&2
  ours_model=(--model "$work/model.safetensors")
fi

for ((r = 1; r <= rounds; r++)); do
  if [ "$peers_only" = 0 ]; then
    echo "bench.sh: round $r/$rounds: tubelet" >&2
    # shellcheck disable=SC2086
    "$ours_bin" bench "${ours_model[@]}" --frames "$frames" --repeat "$repeat" --size "$size" --json ${TUBELET_BENCH_ARGS:-} \
      > "$work/ours.$r.out" || echo "bench.sh: tubelet bench exited with $?" >&2
    # keep the last stdout line that is a JSON object with seconds_best
    "$py" - "$work/ours.$r.out" > "$work/ours.$r.json" <<'PYEOF' || rm -f "$work/ours.$r.json"
import json, sys
for line in reversed(open(sys.argv[1]).read().splitlines()):
    try:
        obj = json.loads(line)
    except ValueError:
        continue
    if isinstance(obj, dict) and "seconds_best" in obj:
        print(json.dumps(obj)); sys.exit(0)
sys.stderr.write("bench.sh: no JSON with seconds_best from `tubelet bench`; output was:\n"
                 + "".join(open(sys.argv[1]).readlines()[-5:]))
sys.exit(1)
PYEOF
  fi
  echo "bench.sh: round $r/$rounds: peers ($engines)" >&2
  "$py" "$here/bench_peers.py" --topology "$topology" --frames "$frames" --size "$size" --threads "$threads" \
    --repeat "$repeat" --engines "$engines" --json > "$work/peers.$r.json"
done

"$py" - "$work" "$rounds" "$json" <<'EOF'
import glob, json, os, sys

work, rounds, as_json = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
peers = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(work, "peers.*.json")))]
ours = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(work, "ours.*.json")))]
ref = peers[0]
gflop = ref["gflop"]

notes = []
rows = {}  # engine -> list of best seconds per round
if not ours and os.path.exists(os.path.join(work, "ours.1.out")):
    notes.append("tubelet: no result (see messages above)")
if ours:
    rows["tubelet"] = [o["seconds_best"] for o in ours]
for p in peers:
    for name, e in p["engines"].items():
        if "best_s" in e:
            rows.setdefault(name, []).append(e["best_s"])
best = {k: min(v) for k, v in rows.items()}

if ours:
    our_gflop = ours[0].get("gflop")
    if our_gflop is not None and abs(our_gflop - gflop) > 0.005 * gflop:
        notes.append(f"WARNING: tubelet counts {our_gflop:.3f} GFLOP, bench_peers counts {gflop:.3f}")
for p in peers:
    for name, e in p["engines"].items():
        if "skipped" in e:
            notes.append(f"{name} skipped: {e['skipped']}")
notes = sorted(set(notes))

out = {"topology": ref["topology"], "frames": ref["frames"], "size": ref["size"], "threads": ref["threads"], "rounds": rounds,
       "gflop": gflop, "engines": {k: {"best_s": best[k], "per_round": rows[k],
                                      "gflops": round(gflop / best[k], 1),
                                      **({"ratio_vs_tubelet": round(best[k] / best["tubelet"], 3)}
                                         if "tubelet" in best else {})} for k in best},
       "notes": notes}
print(f"{ref['topology']} {ref['frames']}x{ref['size']}x{ref['size']}, {ref['threads']} threads, "
      f"{rounds} round(s), {gflop:.1f} GFLOP/clip", file=sys.stderr if as_json else sys.stdout)
hdr = f"{'engine':12s} {'best s':>8s} {'GFLOP/s':>8s} {'peer/ours':>10s}  per round"
lines = [hdr]
for k in best:
    ratio = f"{best[k] / best['tubelet']:10.2f}" if "tubelet" in best else f"{'n/a':>10s}"
    lines.append(f"{k:12s} {best[k]:8.3f} {gflop / best[k]:8.1f} {ratio}  "
                 + ", ".join(f"{s:.3f}" for s in rows[k]))
lines += notes
print("\n".join(lines), file=sys.stderr if as_json else sys.stdout)
if as_json:
    print(json.dumps(out))
EOF

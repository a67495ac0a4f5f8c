#!/usr/bin/env python3
"""Tubelet beside ONNX Runtime (and PyTorch eager) on UniFormer-S, timed in the same run.

Model: the official UniFormer video model (tools/uniformer_reference.py, a copy of Sense-X/UniFormer
slowfast/models/uniformer.py) in the UniFormer-S topology (dims 64-128-320-512, depths 3-4-8-3,
head_dim 64, 400 classes), PyTorch's default random init with a fixed seed, eval, fp32, exported once
to ONNX (cached under ~/.cache/tubelet-bench). Input [1, 3, T, S, S] random normal, fixed seed.
Tubelet: `tubelet bench --topology uniformer_s --frames T --size S --json` (its own random weights:
the cost does not depend on the values).

Rounds alternate Tubelet and the peers (``--rounds N``) so that load drift on a shared machine hits
both; the best time of each engine over all rounds is reported with the ratio peer / Tubelet (> 1:
Tubelet is faster). Engine set-up (session creation, ONNX export) is outside the timings. GFLOP is
counted analytically (``uniformer_gflop``: 2 x multiply-adds of every convolution, depthwise ones
included, linear and attention product) and checked against Tubelet's count.

Usage: python3 tools/bench_uniformer_peers.py [--frames 16] [--size 224] [--threads 2] [--repeat 3]
           [--rounds 2] [--engines onnxruntime,torch] [--tubelet PATH] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_peers  # noqa: E402  (engines, timing and ONNX export shared with the Swin benchmark)
from uniformer_reference import Uniformer, uniformer_small_cfg  # noqa: E402

DIMS, DEPTHS, HEAD_DIM, CLASSES = (64, 128, 320, 512), (3, 4, 8, 3), 64, 400


def uniformer_gflop(frames: int, size: int) -> float:
    """2 x MACs of UniFormer-S on one [3, frames, size, size] clip, as the reference executes it."""
    t, h, w = (frames - 1) // 2 + 1, size // 4, size // 4
    macs = t * h * w * 3 * 3 * 16 * DIMS[0]                            # patch_embed1 (3x4x4)
    for stage, (c, depth) in enumerate(zip(DIMS, DEPTHS)):
        if stage > 0:
            h, w = h // 2, w // 2
            macs += t * h * w * DIMS[stage - 1] * 4 * c                # patch_embed (1x2x2)
        n = t * h * w
        if stage < 2:                                                  # CBlock
            per = n * c * (27 + 125) + 2 * n * c * c + 2 * n * c * 4 * c
        else:                                                          # SABlock
            per = n * c * 27 + 4 * n * c * c + 2 * n * n * c + 2 * n * c * 4 * c
        macs += depth * per
    macs += DIMS[3] * CLASSES
    return 2 * macs / 1e9


def tubelet_binary(explicit: str | None) -> str:
    if explicit:
        return explicit
    root = HERE.parent
    print("[bench_uniformer] building tubelet (release)", file=sys.stderr)
    subprocess.run(["swift", "build", "-c", "release", "--product", "tubelet"], cwd=root, check=True, stdout=sys.stderr)
    bin_dir = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=root, check=True,
                             capture_output=True, text=True).stdout.strip()
    return str(Path(bin_dir) / "tubelet")


def run_tubelet(binary: str, frames: int, size: int, repeat: int, threads: int) -> dict:
    env = dict(os.environ, TUBELET_THREADS=str(threads))
    out = subprocess.run([binary, "bench", "--topology", "uniformer_s", "--frames", str(frames), "--size", str(size),
                          "--repeat", str(repeat), "--json"], check=True, capture_output=True, text=True, env=env).stdout
    for line in reversed(out.splitlines()):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "seconds_best" in obj:
            return obj
    raise RuntimeError(f"no JSON from tubelet bench: {out[-500:]}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Tubelet vs ONNX Runtime on UniFormer-S (see module docstring).")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--engines", default="onnxruntime", help="comma list of onnxruntime, torch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tubelet", help="tubelet binary (default: build one with swift build -c release)")
    ap.add_argument("--cache-dir", type=Path,
                    default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tubelet-bench")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = Uniformer(uniformer_small_cfg()).eval()
    x = bench_peers.make_input(args.frames, args.size, args.seed)
    gflop = uniformer_gflop(args.frames, args.size)
    with torch.inference_mode():
        reference = model(x).numpy()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    runners = {}
    for name in engines:
        onnx = None
        if name == "onnxruntime":
            tag = torch.__version__.split("+")[0]
            onnx = args.cache_dir / f"uniformer_s_f{args.frames}_s{args.size}_seed{args.seed}_torch{tag}.onnx"
            if not onnx.exists():
                bench_peers.export_onnx(model, x, onnx)
        runners[name] = bench_peers.ENGINE_FUNCS[name](model, x, args.threads, onnx)
    binary = tubelet_binary(args.tubelet)

    load_start = os.getloadavg()[0]
    best: dict[str, list[float]] = {"tubelet": []}
    diffs, ours_gflop = {}, None
    for r in range(args.rounds):
        ours = run_tubelet(binary, args.frames, args.size, args.repeat, args.threads)
        ours_gflop = ours["gflop"]
        best["tubelet"].append(ours["seconds_best"])
        for name, run in runners.items():
            runs, out = bench_peers.time_runs(run, args.repeat)
            best.setdefault(name, []).append(min(runs))
            diffs[name] = float(np.abs(np.asarray(out) - reference).max())
        print(f"[bench_uniformer] round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in best.items()),
              file=sys.stderr)
    load_end = os.getloadavg()[0]
    ours_best = min(best["tubelet"])
    result = {"model": "UniFormer-S", "frames": args.frames, "size": args.size, "threads": args.threads, "rounds": args.rounds,
              "gflop": round(gflop, 3), "tubelet_gflop": ours_gflop, "loadavg_1m": [round(load_start, 2), round(load_end, 2)],
              "engines": {k: {"best_s": round(min(v), 4), "per_round": [round(s, 4) for s in v],
                              "gflops": round(gflop / min(v), 1), "peer_over_tubelet": round(min(v) / ours_best, 3),
                              **({"version": bench_peers.package_version(k), "max_abs_diff_vs_torch": diffs[k]} if k in diffs else {})}
                          for k, v in best.items()}}
    lines = [f"UniFormer-S 3x{args.frames}x{args.size}x{args.size}, {args.threads} threads, best of {args.repeat} x {args.rounds} rounds, "
             f"{gflop:.1f} GFLOP/clip (tubelet counts {ours_gflop:.1f}), load avg {load_start:.2f} -> {load_end:.2f}",
             f"{'engine':12s} {'best s':>8s} {'GFLOP/s':>8s} {'peer/ours':>10s}  per round"]
    for k, e in result["engines"].items():
        lines.append(f"{k:12s} {e['best_s']:8.3f} {e['gflops']:8.1f} {e['peer_over_tubelet']:10.2f}  "
                     + ", ".join(f"{s:.3f}" for s in e["per_round"]))
    if ours_gflop is not None and abs(ours_gflop - gflop) > 0.005 * gflop:
        lines.append(f"WARNING: tubelet counts {ours_gflop:.3f} GFLOP, this script {gflop:.3f}")
    print("\n".join(lines), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

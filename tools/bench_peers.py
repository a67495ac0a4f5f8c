#!/usr/bin/env python3
"""Time the peer engines on a video model topology: same model, same input, one run.

Topologies (``--topology``), random init with a fixed seed, eval, fp32:
  swin3d_t       torchvision ``swin3d_t(weights=None)`` (embed 96, depths 2-2-6-2, heads 3-6-12-24,
                 patch 2x4x4, window 8x7x7)
  timesformer_b  transformers ``TimesformerForVideoClassification`` (ViT-B: 12 layers, 768, 12 heads,
                 patch 16, divided space-time, 400 classes), built for --frames/--size (paper: 8x224)
  vivit_b_fe     ViViT-B factorised encoder (Model 2) as scenic's kinetics400
                 vivit_base_factorised_encoder config: tubelet 2x16x16 Conv3d, a 12-layer spatial ViT per
                 temporal index (own cls token), a 4-layer temporal ViT (own cls token), token
                 classifier, LayerNorm eps 1e-6, tanh GELU, 400 classes (paper: 32x224). scenic is
                 flax; this is a PyTorch port of its forward pass (``VivitFactorisedEncoder`` below),
                 the same layers ``tubelet bench --topology vivit_b_fe`` runs.
  videomae_b     transformers ``VideoMAEForVideoClassification`` (ViT-B: 12 layers, 768, 12 heads, tubelet
                 2x16x16, q/v biases, mean pooling + fc_norm, 400 classes; paper clip 16x224), built for
                 --frames/--size. ``--write-hf DIR`` saves the same random model as a Hugging Face directory,
                 which ``tools/bench.sh`` imports with ``tubelet import`` and times with ``tubelet bench --model``.
Input [1,3,T,S,S] random normal with a fixed seed. Engines:
  torch        PyTorch eager, torch.set_num_threads(threads), inference_mode
  onnxruntime  the model exported once to ONNX (cached under ~/.cache/tubelet-bench),
               CPU execution provider, intra_op_num_threads=threads, inter_op 1
  openvino     the same ONNX file, CPU plugin, INFERENCE_NUM_THREADS=threads,
               INFERENCE_PRECISION_HINT=f32, PERFORMANCE_HINT=LATENCY
Each engine: one warm-up run, then ``repeat`` timed runs (wall clock); best is reported.
Outputs of onnxruntime/openvino are compared with PyTorch's logits (max |diff|).
An engine whose package is missing is skipped with the reason.

GFLOP per clip is counted analytically (``swin3d_gflop``): 2 x multiply-adds of every
conv, linear and attention matmul as torchvision executes them (qkv/proj/q.k^T/attn.v on
window-padded tokens, MLP on the real tokens, patch merging on the H/W-padded grid),
ignoring norms, softmax, GELU, bias adds. At 16x224 this is the usual 87.8 GFLOP
(torchvision's metadata: 43.882 GMACs). The ViT-style topologies are counted the same way
(``timesformer_gflop``, ``vivit_fe_gflop``).

Usage: python3 tools/bench_peers.py [--topology swin3d_t] --frames 16 --size 224
                                    [--engines torch,onnxruntime,openvino] [--threads 2] [--repeat 3] [--json]
With --json the table goes to stderr and stdout carries one JSON object:
  {"topology":..,"frames":..,"size":..,"threads":..,"gflop":..,"engines":{"torch":{"best_s":..,"runs":[..]},..}}
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path

ENGINES = ("torch", "onnxruntime", "openvino")
TOPOLOGIES = ("swin3d_t", "timesformer_b", "vivit_b_fe", "videomae_b")
SWIN_T = dict(patch=(2, 4, 4), embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
              window=(8, 7, 7), mlp_ratio=4, num_classes=400)


# ----------------------------------------------------------------------------------------
# Analytic FLOP count (follows torchvision's SwinTransformer3d forward)
# ----------------------------------------------------------------------------------------

def _ceil_to(x: int, m: int) -> int:
    return -(-x // m) * m


def swin3d_gflop(frames: int, size: int, cfg: dict = SWIN_T, in_channels: int = 3) -> float:
    """2 x MACs of convs, linears and attention matmuls for one [3,frames,size,size] clip."""
    pt, ph, pw = cfg["patch"]
    t, h, w = -(-frames // pt), -(-size // ph), -(-size // pw)
    c = cfg["embed_dim"]
    macs = t * h * w * (in_channels * pt * ph * pw) * c           # patch-embed Conv3d
    for stage, depth in enumerate(cfg["depths"]):
        n = t * h * w
        win = [min(s, ws) for s, ws in zip((t, h, w), cfg["window"])]   # the '<=' clamp
        n_pad = math.prod(_ceil_to(s, ws) for s, ws in zip((t, h, w), win))
        n_win = math.prod(win)                                   # tokens per window
        per_block = (n_pad * c * 3 * c                           # qkv (on padded tokens)
                     + 2 * n_pad * n_win * c                     # q.k^T and attn.v, all heads
                     + n_pad * c * c                             # proj
                     + 2 * n * c * cfg["mlp_ratio"] * c)         # fc1 + fc2
        macs += depth * per_block
        if stage < len(cfg["depths"]) - 1:                       # patch merging 4C -> 2C
            h, w = -(-h // 2), -(-w // 2)
            macs += t * h * w * 4 * c * 2 * c
            c *= 2
    macs += c * cfg["num_classes"]                               # head
    return 2 * macs / 1e9


def _attention_macs(groups: int, tokens: int, d: int) -> int:
    """qkv, q.k^T, attn.v and the output projection of ``groups`` sequences of ``tokens`` tokens."""
    rows = groups * tokens
    return rows * d * 3 * d + 2 * groups * tokens * tokens * d + rows * d * d


def timesformer_gflop(frames: int, size: int, d: int = 768, layers: int = 12, mlp: int = 3072,
                      patch: int = 16, classes: int = 400) -> float:
    """Divided space-time TimeSformer: per layer temporal attention over T per patch, temporal_dense,
    spatial attention over 1+N per frame (cls repeated), MLP on 1+T·N tokens."""
    n = (size // patch) ** 2
    m = n * frames
    macs = m * 3 * patch * patch * d
    for _ in range(layers):
        macs += _attention_macs(n, frames, d) + m * d * d
        macs += _attention_macs(frames, 1 + n, d) + 2 * (1 + m) * d * mlp
    return 2 * (macs + d * classes) / 1e9


def vivit_fe_gflop(frames: int, size: int, d: int = 768, spatial_layers: int = 12, temporal_layers: int = 4,
                   mlp: int = 3072, tubelet=(2, 16, 16), classes: int = 400) -> float:
    """ViViT factorised encoder: tubelet embedding, spatial ViT on 1+N tokens per temporal index,
    temporal ViT on 1+T' tokens, head."""
    t, n = frames // tubelet[0], (size // tubelet[1]) * (size // tubelet[2])
    macs = t * n * 3 * tubelet[0] * tubelet[1] * tubelet[2] * d
    macs += t * spatial_layers * (_attention_macs(1, 1 + n, d) + 2 * (1 + n) * d * mlp)
    macs += temporal_layers * (_attention_macs(1, 1 + t, d) + 2 * (1 + t) * d * mlp)
    return 2 * (macs + d * classes) / 1e9


def videomae_gflop(frames: int, size: int, d: int = 768, layers: int = 12, mlp: int = 3072,
                   tubelet=(2, 16, 16), classes: int = 400) -> float:
    """VideoMAE: tubelet embedding, ViT layers on the N·T' tokens (no cls token), head."""
    m = (frames // tubelet[0]) * (size // tubelet[1]) * (size // tubelet[2])
    macs = m * 3 * tubelet[0] * tubelet[1] * tubelet[2] * d
    macs += layers * (_attention_macs(1, m, d) + 2 * m * d * mlp)
    return 2 * (macs + d * classes) / 1e9


GFLOP = {"swin3d_t": swin3d_gflop, "timesformer_b": timesformer_gflop, "vivit_b_fe": vivit_fe_gflop,
         "videomae_b": videomae_gflop}


# ----------------------------------------------------------------------------------------
# Model, input, ONNX export
# ----------------------------------------------------------------------------------------

def build_model(topology: str, frames: int, size: int, seed: int):
    """The topology with random init from ``seed``, eval mode, taking [1,3,T,S,S] to logits."""
    import torch
    torch.manual_seed(seed)
    if topology == "swin3d_t":
        from torchvision.models.video import swin3d_t
        return swin3d_t(weights=None).eval()
    if topology == "timesformer_b":
        from transformers import TimesformerConfig, TimesformerForVideoClassification
        config = TimesformerConfig(image_size=size, num_frames=frames, attention_type="divided_space_time",
                                   num_labels=400)
        return ChannelsFirstVideo(TimesformerForVideoClassification(config)).eval()
    if topology == "vivit_b_fe":
        return vivit_factorised_encoder()(frames, size).eval()
    if topology == "videomae_b":
        from transformers import VideoMAEConfig, VideoMAEForVideoClassification
        config = VideoMAEConfig(image_size=size, num_frames=frames, num_labels=400)
        return ChannelsFirstVideo(VideoMAEForVideoClassification(config)).eval()
    raise ValueError(topology)


def ChannelsFirstVideo(hf_model):
    """transformers' video models take [B,T,C,H,W] and return an output object: [B,C,T,H,W] → logits."""
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = hf_model

        def forward(self, x):
            return self.model(pixel_values=x.permute(0, 2, 1, 3, 4)).logits
    return Wrapped()


def vivit_factorised_encoder():
    """A PyTorch port of scenic's ViViT factorised encoder forward pass (scenic/projects/vivit/model.py,
    ``SpaceTimeViViT`` with attention type 'factorized_encoder', classifier 'token')."""
    import torch
    from torch import nn

    class Block(nn.Module):  # scenic Encoder1DBlock: pre-LN attention and MLP, eps 1e-6, tanh GELU
        def __init__(self, d, heads, mlp):
            super().__init__()
            self.heads = heads
            self.norm1, self.norm2 = nn.LayerNorm(d, eps=1e-6), nn.LayerNorm(d, eps=1e-6)
            self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.fc1, self.fc2 = nn.Linear(d, mlp), nn.Linear(mlp, d)
            self.gelu = nn.GELU(approximate="tanh")

        def forward(self, x):  # x: [B, N, d]
            b, n, d = x.shape
            q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
            attention = torch.softmax(q @ k.transpose(-1, -2) * (d // self.heads) ** -0.5, dim=-1)
            x = x + self.out((attention @ v).transpose(1, 2).reshape(b, n, d))
            return x + self.fc2(self.gelu(self.fc1(self.norm2(x))))

    class Encoder(nn.Module):  # cls token, position embeddings, blocks, encoder_norm, token 0
        def __init__(self, d, heads, mlp, layers, tokens):
            super().__init__()
            self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
            self.pos = nn.Parameter(torch.randn(1, 1 + tokens, d) * 0.02)
            self.blocks = nn.ModuleList(Block(d, heads, mlp) for _ in range(layers))
            self.norm = nn.LayerNorm(d, eps=1e-6)

        def forward(self, x):  # [B, N, d] → [B, d]
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
            for block in self.blocks:
                x = block(x)
            return self.norm(x[:, 0])

    class FactorisedEncoder(nn.Module):
        def __init__(self, frames, size, d=768, heads=12, mlp=3072, spatial_layers=12, temporal_layers=4,
                     tubelet=(2, 16, 16), classes=400):
            super().__init__()
            self.embedding = nn.Conv3d(3, d, kernel_size=tubelet, stride=tubelet)
            t, n = frames // tubelet[0], (size // tubelet[1]) * (size // tubelet[2])
            self.spatial = Encoder(d, heads, mlp, spatial_layers, n)
            self.temporal = Encoder(d, heads, mlp, temporal_layers, t)
            self.head = nn.Linear(d, classes)

        def forward(self, x):  # [B, 3, T, H, W]
            e = self.embedding(x)  # [B, d, t, h, w]
            b, d, t = e.shape[:3]
            e = e.flatten(3).permute(0, 2, 3, 1).reshape(b * t, -1, d)  # every temporal index on its own
            s = self.spatial(e).reshape(b, t, d)
            return self.head(self.temporal(s))
    return FactorisedEncoder


def make_input(frames: int, size: int, seed: int):
    import torch
    g = torch.Generator().manual_seed(seed + 1)
    return torch.randn(1, 3, frames, size, size, generator=g)


def onnx_path(cache: Path, topology: str, frames: int, size: int, seed: int) -> Path:
    import torch
    tag = torch.__version__.split("+")[0]
    return cache / f"{topology}_f{frames}_s{size}_seed{seed}_torch{tag}.onnx"


def export_onnx(model, x, path: Path) -> None:
    """Export once (static shapes: the window clamp/pad logic is resolved per input size)."""
    import torch
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    print(f"[bench_peers] exporting ONNX to {path} (once per frames/size)", file=sys.stderr)
    with torch.no_grad():
        try:
            torch.onnx.export(model, (x,), str(tmp), dynamo=False, opset_version=17,
                              input_names=["clip"], output_names=["logits"], do_constant_folding=True)
        except Exception as e:  # legacy exporter gone: try the dynamo exporter (needs onnxscript)
            print(f"[bench_peers] legacy ONNX export failed ({e}); trying dynamo=True", file=sys.stderr)
            torch.onnx.export(model, (x,), str(tmp), dynamo=True, external_data=False,
                              input_names=["clip"], output_names=["logits"])
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------
# Engines: each returns (callable running one inference -> logits ndarray)
# ----------------------------------------------------------------------------------------

def engine_torch(model, x, threads: int, _onnx: Path | None):
    import torch
    torch.set_num_threads(threads)

    def run():
        with torch.inference_mode():
            return model(x).numpy()
    return run


def engine_onnxruntime(_model, x, threads: int, onnx: Path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(onnx), so, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x.numpy()}
    return lambda: sess.run(None, feed)[0]


def engine_openvino(_model, x, threads: int, onnx: Path):
    import openvino as ov
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(onnx)), "CPU", {
        "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY",
    })
    req = compiled.create_infer_request()
    arr = x.numpy()
    return lambda: req.infer({0: arr})[compiled.output(0)].copy()


ENGINE_FUNCS = {"torch": engine_torch, "onnxruntime": engine_onnxruntime, "openvino": engine_openvino}
ENGINE_PACKAGES = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino"}


def time_runs(run, repeat: int) -> tuple[list[float], object]:
    """One warm-up, then ``repeat`` timed calls; returns (wall seconds, last output)."""
    out = run()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = run()
        runs.append(time.perf_counter() - t0)
    return runs, out


def package_version(pkg: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(pkg)
    except Exception:
        return None


# ----------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------

MODEL_NAMES = {"swin3d_t": "torchvision swin3d_t (random init)",
               "timesformer_b": "transformers TimesformerForVideoClassification, divided space-time (random init)",
               "vivit_b_fe": "ViViT-B factorised encoder, PyTorch port of scenic (random init)",
               "videomae_b": "transformers VideoMAEForVideoClassification, ViT-B (random init)"}


def bench(topology: str, frames: int, size: int, engines: list[str], threads: int, repeat: int,
          seed: int, cache: Path) -> dict:
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    model = build_model(topology, frames, size, seed)
    x = make_input(frames, size, seed)
    gflop = GFLOP[topology](frames, size)
    result = {"topology": topology, "frames": frames, "size": size, "threads": threads, "repeat": repeat, "seed": seed,
              "gflop": round(gflop, 3), "model": MODEL_NAMES[topology],
              "cpu_count": os.cpu_count(), "loadavg_1m_start": round(os.getloadavg()[0], 2),
              "engines": {}}
    with torch.inference_mode():
        reference = model(x).numpy()
    onnx = None
    for name in engines:
        pkg = ENGINE_PACKAGES[name]
        if importlib.util.find_spec(pkg) is None:
            result["engines"][name] = {"skipped": f"python package '{pkg}' not installed"}
            print(f"[bench_peers] skipping {name}: package '{pkg}' not installed", file=sys.stderr)
            continue
        try:
            if name != "torch" and onnx is None:
                onnx = onnx_path(cache, topology, frames, size, seed)
                if not onnx.exists():
                    export_onnx(model, x, onnx)
            run = ENGINE_FUNCS[name](model, x, threads, onnx)
            runs, out = time_runs(run, repeat)
        except Exception as e:  # report, keep going with the other engines
            result["engines"][name] = {"skipped": f"{type(e).__name__}: {e}"}
            print(f"[bench_peers] {name} failed: {e}", file=sys.stderr)
            continue
        best = min(runs)
        result["engines"][name] = {
            "best_s": round(best, 4), "runs": [round(r, 4) for r in runs],
            "gflops": round(gflop / best, 1), "version": package_version(pkg),
            "max_abs_diff_vs_torch": float(np.abs(np.asarray(out) - reference).max()),
        }
    # other processes on a shared 2-core VM distort timings badly (OpenMP spin-waits): keep a record
    result["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    return result


def format_table(res: dict) -> str:
    lines = [f"{res['topology']} {res['frames']}x{res['size']}x{res['size']}, {res['threads']} threads, "
             f"best of {res['repeat']} after warm-up, {res['gflop']:.1f} GFLOP/clip, "
             f"load avg {res['loadavg_1m_start']} -> {res['loadavg_1m_end']} on {res['cpu_count']} CPUs",
             f"{'engine':12s} {'version':10s} {'best s':>8s} {'GFLOP/s':>8s} {'max|d| vs torch':>16s}  runs"]
    for name, e in res["engines"].items():
        if "skipped" in e:
            lines.append(f"{name:12s} skipped: {e['skipped']}")
            continue
        lines.append(f"{name:12s} {str(e['version']):10s} {e['best_s']:8.3f} {e['gflops']:8.1f} "
                     f"{e['max_abs_diff_vs_torch']:16.2e}  {', '.join(f'{r:.3f}' for r in e['runs'])}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Peer engines on a video model topology (see module docstring).")
    ap.add_argument("--topology", default="swin3d_t", choices=TOPOLOGIES)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma list of " + ",".join(ENGINES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", type=Path,
                    default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tubelet-bench")
    ap.add_argument("--json", action="store_true", help="JSON on stdout, table on stderr")
    ap.add_argument("--gflop-only", action="store_true", help="print the analytic GFLOP and exit")
    ap.add_argument("--write-hf", type=Path, help="save the topology's random model as a Hugging Face directory and exit "
                                                  "(transformers topologies only)")
    args = ap.parse_args(argv)

    if args.write_hf:
        model = build_model(args.topology, args.frames, args.size, args.seed)
        if not hasattr(model, "model") or not hasattr(model.model, "save_pretrained"):
            ap.error(f"--write-hf: {args.topology} is not a transformers model")
        model.model.save_pretrained(str(args.write_hf))
        print(f"[bench_peers] wrote {args.topology} (seed {args.seed}) to {args.write_hf}", file=sys.stderr)
        return 0

    if args.gflop_only:
        print(f"{GFLOP[args.topology](args.frames, args.size):.3f}")
        return 0
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        ap.error(f"unknown engines {unknown}; choose from {ENGINES}")
    res = bench(args.topology, args.frames, args.size, engines, args.threads, args.repeat, args.seed, args.cache_dir)
    table = format_table(res)
    if args.json:
        print(table, file=sys.stderr)
        print(json.dumps(res))
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

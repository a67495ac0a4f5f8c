#!/usr/bin/env python3
"""Train Tubelet's demo model: a small streaming-native Video Swin on tools/actions.py, on CPU.

Streaming-native training: every sample is `context` frames + a `clip`-frame clip run as one
stream with a random window phase tau0 in [0, Wt); only the clip's last clip/pt token slices are
pooled (exactly what the daemon sees with key/value reuse). With probability --boundary-p the
sample straddles a cut: the previous segment (another class) fills the first frames and the
current segment the last k frames, k uniform in [--min-current, context+clip]; the label is the
current segment's (what a streaming timeline labels "now").

Preprocessing (stored in the checkpoint so the Swift side reproduces it): RGB uint8 32x32 ->
/255 -> (x - mean) / std per channel -> minus each frame's per-channel spatial mean.

Held-out: fixed seeded sets (seed 777, never used for training: training draws from seed
--seed + step), `clean` = no cut in the 24 frames, `cut` = with a cut. Best checkpoint by clean
top-1 is saved as models/demo/demo.pth; the summary goes to models/demo/training_summary.json.

Usage: nice -n 10 python3 tools/train_demo.py --minutes 60
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import actions  # noqa: E402
from streaming_swin import StreamingSwin  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MEAN = [0.5, 0.5, 0.5]
STD = [0.25, 0.25, 0.25]
SIZE = 32
CLIP = 16


def preprocessing_dict(frames=CLIP):
    return {'frames': frames, 'frameStride': 1, 'resizeShortSide': SIZE, 'cropSize': SIZE,  # SIZE set by --size 'pixelScale': 1 / 255,
            'mean': MEAN, 'std': STD, 'subtractFrameMean': True}


def preprocess(u8: np.ndarray) -> torch.Tensor:
    """uint8 [B, F, H, W, 3] -> float32 [B, 3, F, H, W] normalised, per-frame mean removed."""
    x = torch.from_numpy(u8).float().div_(255.0)
    x = (x - torch.tensor(MEAN)) / torch.tensor(STD)
    x = x - x.mean(dim=(2, 3), keepdim=True)
    return x.permute(0, 4, 1, 2, 3).contiguous()


def make_batch(n, context, rng, boundary_p, min_current, difficulty, class_p=None):
    """class_p: probability of each class (default uniform; --oversample raises some)."""
    total = context + CLIP
    cls = rng.choice(len(actions.CLASSES), n, p=class_p) if class_p is not None else rng.integers(0, len(actions.CLASSES), n)
    cur = actions.generate_batch(cls, total, SIZE, rng, **difficulty)
    cut = rng.uniform(0, 1, n) < boundary_p
    if cut.any():
        m = int(cut.sum())
        prev_cls = (cls[cut] + rng.integers(1, len(actions.CLASSES), m)) % len(actions.CLASSES)
        prev = actions.generate_batch(prev_cls, total, SIZE, rng, **difficulty)
        k = rng.integers(min_current, total + 1, m)          # frames of the current segment
        fidx = np.arange(total)[None, :]
        take_prev = fidx < (total - k)[:, None]
        sub = cur[cut]
        sub[take_prev] = prev[take_prev]
        cur[cut] = sub
    return cur, cls, cut


@torch.no_grad()
def evaluate(model, data, context, pt, batch=100):
    model.eval()
    x_all, y_all = data
    preds = []
    for i in range(0, len(y_all), batch):
        x = preprocess(x_all[i:i + batch])
        # held-out phase: every tau0 in [0, Wt) in turn, like a stream
        tau0 = (i // batch) % model.config["window"][0]
        f = model.forward_stream(x, tau0=tau0)
        preds.append(model.clip_logits(f, CLIP // pt).argmax(1).numpy())
    model.train()
    p = np.concatenate(preds)
    acc = float((p == y_all).mean())
    per = {c: float((p[y_all == i] == i).mean()) for i, c in enumerate(actions.CLASSES)}
    conf = np.zeros((len(actions.CLASSES),) * 2, dtype=int)
    np.add.at(conf, (y_all, p), 1)
    return acc, per, conf.tolist()


def heldout(n, context, boundary_p, min_current, difficulty, seed):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in range(0, n, 100):
        x, y, _ = make_batch(min(100, n - i), context, rng, boundary_p, min_current, difficulty)
        xs.append(x); ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def save_checkpoint(model, path, extra):
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state,
                "tubelet": {"streaming": True, "labels": list(actions.CLASSES),
                            "preprocessing": preprocessing_dict(), "config": model.config, **extra}}, path)


def write_curve_svg(path, curve, evals):
    W, H, P = 640, 320, 40
    if not curve:
        return
    smax = max(c["step"] for c in curve) or 1
    lmax = max(c["loss"] for c in curve) * 1.05
    def xy(s, v, vmax):
        return P + (W - 2 * P) * s / smax, H - P - (H - 2 * P) * v / vmax
    loss = " ".join(f"{xy(c['step'], c['loss'], lmax)[0]:.1f},{xy(c['step'], c['loss'], lmax)[1]:.1f}" for c in curve)
    acc = " ".join(f"{xy(e['step'], e['clean_top1'], 1)[0]:.1f},{xy(e['step'], e['clean_top1'], 1)[1]:.1f}" for e in evals)
    cut = " ".join(f"{xy(e['step'], e['cut_top1'], 1)[0]:.1f},{xy(e['step'], e['cut_top1'], 1)[1]:.1f}" for e in evals)
    y90 = xy(0, 0.9, 1)[1]
    svg = f"""<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<line x1="{P}" y1="{H-P}" x2="{W-P}" y2="{H-P}" stroke="black"/><line x1="{P}" y1="{P}" x2="{P}" y2="{H-P}" stroke="black"/>
<line x1="{P}" y1="{y90:.1f}" x2="{W-P}" y2="{y90:.1f}" stroke="#bbb" stroke-dasharray="4"/>
<text x="{W-P+2}" y="{y90+4:.1f}">90%</text>
<polyline fill="none" stroke="#c33" points="{loss}"/>
<polyline fill="none" stroke="#36c" stroke-width="2" points="{acc}"/>
<polyline fill="none" stroke="#3a3" points="{cut}"/>
<text x="{P}" y="{P-8}">train loss (red, 0..{lmax:.2f}); held-out top-1 clean (blue) and with a cut (green), 0..1; x: steps 0..{smax}</text>
</svg>
"""
    Path(path).write_text(svg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--size", type=int, default=32, help="input frame size (square)")
    ap.add_argument("--embed", type=int, default=48)
    ap.add_argument("--depths", type=int, nargs="+", default=[2, 2])
    ap.add_argument("--heads", type=int, nargs="+", default=[3, 6])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--context", type=int, default=8)
    ap.add_argument("--boundary-p", type=float, default=0.35)
    ap.add_argument("--min-current", type=int, default=8)
    ap.add_argument("--eval-every", type=float, default=4.0, help="minutes")
    ap.add_argument("--heldout", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "models" / "demo")
    ap.add_argument("--init", type=Path, default=None, help="resume weights from a checkpoint")
    ap.add_argument("--difficulty", type=str, default="{}", help="JSON overrides of actions.DEFAULTS")
    ap.add_argument("--oversample", type=str, nargs="+", default=[],
                    help="classes drawn more often in training (held-out sets stay uniform), e.g. rotate_cw rotate_ccw")
    ap.add_argument("--oversample-p", type=float, default=0.3, help="share of training samples drawn from --oversample")
    ap.add_argument("--ramp", type=float, nargs=2, default=[0.1, 0.5],
                    help="curriculum: actions.EASY until this fraction of the budget, then linear to the target")
    args = ap.parse_args()
    global SIZE
    SIZE = args.size
    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    difficulty = dict(actions.DEFAULTS, **{k: tuple(v) if isinstance(v, list) else v
                                           for k, v in json.loads(args.difficulty).items()})
    args.out.mkdir(parents=True, exist_ok=True)

    model = StreamingSwin(patch=(2, 4, 4), embed_dim=args.embed, depths=args.depths, num_heads=args.heads,
                          window=(4, 4, 4), num_classes=len(actions.CLASSES), patch_norm=False)
    if args.init:
        ck = torch.load(args.init, weights_only=True)
        model.load_state_dict(ck.get("state_dict", ck))
    pt, Wt = 2, 4
    nparams = sum(p.numel() for p in model.parameters())
    print(f"params {nparams}", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() > 1 and "relative_position_bias_table" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() > 1 and "relative_position_bias_table" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd}, {"params": other, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.999))

    t_h = time.time()
    clean = heldout(args.heldout, args.context, 0.0, args.min_current, difficulty, 777)
    cutset = heldout(args.heldout // 2, args.context, 1.0, args.min_current, difficulty, 778)
    print(f"held-out sets built in {time.time() - t_h:.1f}s", flush=True)

    rng = np.random.default_rng(args.seed)
    class_p = None
    if args.oversample:
        focus = [actions.IDX[c] for c in args.oversample]
        class_p = np.full(len(actions.CLASSES), (1 - args.oversample_p) / len(actions.CLASSES))
        class_p[focus] += args.oversample_p / len(focus)
    budget = args.minutes * 60
    t0 = time.time()
    step, samples = 0, 0
    curve, evals = [], []
    best = -1.0
    ema = None
    last_eval = t0
    gen_time = 0.0
    while True:
        el = time.time() - t0
        frac = el / budget
        if frac >= 1:
            break
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        tg = time.time()
        w = min(1.0, max(0.0, (frac - args.ramp[0]) / max(args.ramp[1] - args.ramp[0], 1e-9)))
        diff_now = actions.lerp_difficulty(actions.EASY, difficulty, w)
        u8, y, _ = make_batch(args.batch, args.context, rng, args.boundary_p * (0.3 + 0.7 * w), args.min_current, diff_now,
                                class_p)
        x = preprocess(u8)
        gen_time += time.time() - tg
        tau0 = int(rng.integers(0, Wt))
        f = model.forward_stream(x, tau0=tau0)
        logits = model.clip_logits(f, CLIP // pt)
        loss = F.cross_entropy(logits, torch.from_numpy(y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        samples += args.batch
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 25 == 0:
            curve.append(dict(step=step, samples=samples, wall_s=round(time.time() - t0, 1), loss=round(ema, 4), lr=lr,
                              difficulty=round(w, 3)))
            print(f"step {step} samples {samples} t {time.time() - t0:.0f}s loss {ema:.4f} lr {lr:.2e} diff {w:.2f} gen {gen_time:.0f}s", flush=True)
        if time.time() - last_eval > args.eval_every * 60 or time.time() - t0 >= budget:
            last_eval = time.time()
            acc, per, conf = evaluate(model, clean, args.context, pt)
            acc_cut, _, _ = evaluate(model, cutset, args.context, pt)
            evals.append(dict(step=step, samples=samples, wall_s=round(time.time() - t0, 1), clean_top1=acc, cut_top1=acc_cut))
            print(f"EVAL step {step} clean {acc:.4f} cut {acc_cut:.4f} per {json.dumps({k: round(v, 2) for k, v in per.items()})}", flush=True)
            if acc > best:
                best = acc
                save_checkpoint(model, args.out / "demo.pth", {"heldout_top1": acc})
            torch.save(model.state_dict(), args.out / "last_state.pt")
    # final evaluation of the best checkpoint
    ck = torch.load(args.out / "demo.pth", weights_only=True)
    model.load_state_dict(ck["state_dict"])
    acc, per, conf = evaluate(model, clean, args.context, pt)
    acc_cut, per_cut, _ = evaluate(model, cutset, args.context, pt)
    medium = heldout(args.heldout // 2, args.context, 0.0, args.min_current, dict(actions.MEDIUM), 779)
    acc_med, per_med, _ = evaluate(model, medium, args.context, pt)
    wall = time.time() - t0
    summary = dict(
        model=model.config, params=nparams, input_size=SIZE, preprocessing=preprocessing_dict(), labels=list(actions.CLASSES),
        training=dict(steps=step, samples=samples, batch=args.batch, wall_s=round(wall, 1),
                      data_generation_s=round(gen_time, 1), lr=args.lr, weight_decay=args.wd, warmup=args.warmup,
                      schedule="linear warmup, cosine over the wall-clock budget to 2%", optimizer="AdamW",
                      curriculum=f"actions.EASY until {args.ramp[0]:.2f} of the budget, linear to the target difficulty by {args.ramp[1]:.2f}; cut probability scaled 0.3->1 with it",
                      context_frames=args.context, clip_frames=CLIP, tau0="uniform in [0, Wt) per step",
                      boundary_p=args.boundary_p, min_current_frames=args.min_current, difficulty={k: list(v) if isinstance(v, tuple) else v for k, v in difficulty.items()},
                      init=str(args.init) if args.init else None, threads=2, seed=args.seed,
                      oversample=dict(classes=args.oversample, p=args.oversample_p) if args.oversample else None),
        heldout=dict(seed_clean=777, seed_cut=778, clean_n=len(clean[1]), cut_n=len(cutset[1]),
                     clean_top1=acc, cut_top1=acc_cut, per_class_clean=per, per_class_cut=per_cut,
                     confusion_clean=conf,
                     harder_medium=dict(seed=779, n=len(medium[1]), difficulty="actions.MEDIUM", top1=acc_med,
                                        per_class=per_med)),
        curve=curve, evals=evals)
    (args.out / "training_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    write_curve_svg(args.out / "training_curve.svg", curve, evals)
    (args.out / "labels.txt").write_text("\n".join(actions.CLASSES) + "\n")
    print(f"FINAL clean {acc:.4f} cut {acc_cut:.4f} medium {acc_med:.4f} steps {step} samples {samples} wall {wall:.0f}s", flush=True)


if __name__ == "__main__":
    main()

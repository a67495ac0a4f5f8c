#!/usr/bin/env python3
"""Render Tubelet's demo video and its ground-truth timeline; optionally check a model on it.

  python3 tools/make_sample_video.py                      # models/demo/sample.mp4 + sample_timeline.json
  python3 tools/make_sample_video.py --eval models/demo/demo.pth [--skip-render]

The timeline (tools/actions.generate_timeline, seeded) is consecutive 2-6 s segments of random
classes (idle included), each its own scene. Frames are rendered at 128x128 (16 fps, so frame
stride 1 gives the 16-frame / 1 s clips the model was trained on) and encoded H.264 yuv420p.
The generator's geometry is resolution-independent, so the Swift side's swscale bilinear resize
to 32x32 gives what training saw (training renders at 32x32 directly, with the noise scaled so
that its 32-px level matches).

--eval decodes the mp4 exactly as the daemon would (ffmpeg scale=32:32:flags=bilinear, rgb24),
applies the model's preprocessing, runs the whole stream once (forward_stream, tau0 = 0), and
classifies a clip of 8 token slices (16 frames) every 2 slices (a quarter clip, 4 frames = 0.25 s),
each label at the clip's end time; it smooths the softmax over the last --smooth clips, takes the
argmax, merges runs into segments and reports segment F1 (a predicted segment matches an unmatched
ground-truth segment of the same label with IoU >= 0.5), per-clip accuracy against the label at the
clip's end, and per-segment detection delay (segment start -> first correct label inside it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import actions  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "models" / "demo"


def render(seconds, fps, size, seed, mp4, timeline_path, crf):
    rng = np.random.default_rng(seed)
    segs = actions.generate_timeline(seconds, fps, rng)
    frames = actions.render_timeline(segs, size, rng)
    n = frames.shape[0]
    cmd = ["ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size}x{size}",
           "-r", str(fps), "-i", "-", "-c:v", "libx264", "-preset", "slow", "-crf", str(crf), "-pix_fmt", "yuv420p",
           "-movflags", "+faststart", str(mp4)]
    subprocess.run(cmd, input=frames.tobytes(), check=True)
    tl = dict(fps=fps, frames=n, width=size, height=size, seed=seed, generator="tools/actions.py",
              labels=list(actions.CLASSES),
              segments=[dict(label=s["label"], start_s=round(s["start_s"], 4), end_s=round(s["end_s"], 4),
                             start_frame=s["start_frame"], end_frame=s["end_frame"]) for s in segs])
    Path(timeline_path).write_text(json.dumps(tl, indent=1) + "\n")
    print(f"{mp4}: {n} frames, {n / fps:.1f} s, {len(segs)} segments, {Path(mp4).stat().st_size / 1e6:.2f} MB")
    return tl


def decode32(mp4, size=32):
    cmd = ["ffmpeg", "-loglevel", "error", "-i", str(mp4), "-vf", f"scale={size}:{size}:flags=bilinear",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, size, size, 3)


def segments_from(labels, times_start, times_end):
    segs = []
    for i, l in enumerate(labels):
        if segs and segs[-1][0] == l:
            segs[-1][2] = times_end[i]
        else:
            segs.append([l, times_start[i], times_end[i]])
    return segs


def iou(a, b):
    inter = max(0.0, min(a[2], b[2]) - max(a[1], b[1]))
    union = max(a[2], b[2]) - min(a[1], b[1])
    return inter / union if union > 0 else 0.0


def evaluate(model_path, mp4, timeline, smooth, clip_tokens=8, hop_tokens=2):
    # torch only here: rendering a video (e.g. a validation one) needs numpy and ffmpeg alone.
    import torch
    torch.set_grad_enabled(False)
    from streaming_swin import StreamingSwin
    from train_demo import preprocess
    torch.set_num_threads(2)
    ck = torch.load(model_path, weights_only=True)
    cfg = ck["tubelet"]["config"]
    model = StreamingSwin(patch=cfg["patch"], embed_dim=cfg["embed_dim"], depths=cfg["depths"],
                          num_heads=cfg["num_heads"], window=cfg["window"], num_classes=cfg["num_classes"],
                          patch_norm=cfg["patch_norm"]).eval()
    model.load_state_dict(ck["state_dict"])
    labels = ck["tubelet"]["labels"]
    import train_demo
    pre = ck["tubelet"]["preprocessing"]
    train_demo.SIZE = pre["cropSize"]
    fr = decode32(mp4, pre["cropSize"])
    fps = timeline["fps"]
    pt = cfg["patch"][0]
    n = fr.shape[0] - fr.shape[0] % pt
    x = preprocess(fr[None, :n])
    feats = model.forward_stream(x, tau0=0)[0]
    T = feats.shape[0]
    ends = list(range(clip_tokens, T + 1, hop_tokens))
    pooled = torch.stack([feats[e - clip_tokens:e].mean(dim=(0, 1, 2)) for e in ends])
    probs = model.head(pooled).softmax(-1).numpy()
    sm = np.stack([probs[max(0, i - smooth + 1):i + 1].mean(0) for i in range(len(probs))])
    pred_raw = probs.argmax(1)
    pred = sm.argmax(1)
    t_end = np.array([e * pt / fps for e in ends])             # label time = clip end
    gt_frame_label = np.empty(timeline["frames"], dtype=object)
    for s in timeline["segments"]:
        gt_frame_label[s["start_frame"]:s["end_frame"]] = s["label"]
    gt = np.array([gt_frame_label[e * pt - 1] for e in ends])
    pl = np.array([labels[i] for i in pred])
    acc = float((pl == gt).mean())
    acc_raw = float((np.array([labels[i] for i in pred_raw]) == gt).mean())
    hop_s = hop_tokens * pt / fps
    psegs = segments_from(list(pl), list(t_end - hop_s), list(t_end))
    gsegs = [[s["label"], s["start_s"], s["end_s"]] for s in timeline["segments"]]
    used = set()
    tp = 0
    for p in psegs:
        for j, g in enumerate(gsegs):
            if j not in used and g[0] == p[0] and iou(p, g) >= 0.5:
                used.add(j); tp += 1
                break
    prec = tp / max(len(psegs), 1)
    rec = tp / max(len(gsegs), 1)
    f1 = 2 * prec * rec / max(prec + rec, 1e-9)
    delays = []
    for g in gsegs:
        inside = (t_end > g[1]) & (t_end <= g[2])
        hit = np.where(inside & (pl == g[0]))[0]
        delays.append(float(t_end[hit[0]] - g[1]) if len(hit) else None)
    found = [d for d in delays if d is not None]
    per_label = {}
    for l in labels:
        m = gt == l
        if m.any():
            per_label[l] = round(float((pl[m] == l).mean()), 3)
    res = dict(model=str(model_path), clips=len(ends), hop_s=hop_s, clip_s=clip_tokens * pt / fps, smooth_clips=smooth,
               clip_accuracy_smoothed=round(acc, 4), clip_accuracy_raw=round(acc_raw, 4),
               predicted_segments=len(psegs), gt_segments=len(gsegs), matched=tp,
               segment_precision=round(prec, 4), segment_recall=round(rec, 4), segment_f1=round(f1, 4),
               median_delay_s=(float(np.median(found)) if found else None),
               segments_never_detected=sum(d is None for d in delays),
               per_label_clip_accuracy=per_label,
               note="python streaming check: whole-stream features (tau0 0), clip 8 slices every 2, "
                    "causal mean of the last smooth_clips softmaxes, segments matched at IoU >= 0.5")
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=96)
    ap.add_argument("--fps", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--crf", type=int, default=20)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--skip-render", action="store_true")
    ap.add_argument("--eval", type=Path, default=None)
    ap.add_argument("--smooth", type=int, default=3)
    ap.add_argument("--check-out", type=Path, default=None, help="where to write the check (default OUT/sample_stream_check.json)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    mp4, tlp = args.out / "sample.mp4", args.out / "sample_timeline.json"
    if args.skip_render:
        tl = json.loads(tlp.read_text())
    else:
        tl = render(args.seconds, args.fps, args.size, args.seed, mp4, tlp, args.crf)
    if args.eval:
        res = evaluate(args.eval, mp4, tl, args.smooth)
        print(json.dumps(res, indent=1))
        (args.check_out or args.out / "sample_stream_check.json").write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()

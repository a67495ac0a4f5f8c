#!/usr/bin/env python3
"""Seeded procedural action generator for Tubelet's demo model (numpy only).

Ten classes whose identity is in the temporal order of the frames:
  idle, move_left, move_right, move_up, move_down, rotate_cw, rotate_ccw, grow, shrink, blink
A clip shows one main object (a two-tone superellipse: ellipse or rounded rectangle, so its
orientation is visible) on a textured background (a sum of random colour gratings), with an
optional distractor (a small disc doing a random walk), global lighting drift, a colour cast,
pixel noise and random speed / scale / colour. Motion wraps around the frame (toroidally), so a
moving object never leaves the picture however long a segment lasts. Any single frame fits every
class: position, size, orientation, visibility and colours are all random.

All geometry is in frame-normalised units and edges are anti-aliased from a signed distance,
so rendering at 128x128 and area/bilinear-downsampling to 32x32 gives (nearly) what rendering
at 32x32 directly gives; training renders at 32, the sample video at 128.

API
  CLASSES
  generate_clip(cls, frames, size, rng, **difficulty) -> uint8 [frames, size, size, 3]
  generate_batch(classes, frames, size, rng, **difficulty) -> uint8 [B, frames, size, size, 3]
  generate_timeline(seconds, fps, rng) -> list of segments {label, start_frame, end_frame, ...}
  render_timeline(segments, size, rng) -> uint8 [frames, size, size, 3]
"""

from __future__ import annotations

import numpy as np

CLASSES = ["idle", "move_left", "move_right", "move_up", "move_down",
           "rotate_cw", "rotate_ccw", "grow", "shrink", "blink"]
IDX = {c: i for i, c in enumerate(CLASSES)}

# Reference frame: 32 px across; speeds below are per frame at 16 fps.
REF = 32.0
DEFAULTS = dict(
    speed=(0.85, 1.5),        # px/frame (of 32) for moves
    rot_speed=(7.0, 13.0),    # degrees/frame for rotations
    grow_rate=(0.035, 0.055), # d ln(size)/frame for grow/shrink
    radius=(7.0, 11.5),       # object half-size in px (of 32), long axis
    aspect=(0.43, 0.6),       # short/long axis
    blink_period=(4, 8),      # frames per on/off cycle
    distractor_p=0.25,
    noise=(0.0, 0.01),        # per-pixel gaussian sigma (0..1 scale), per 32-px pixel
    contrast=(0.45, 0.75),    # object vs background colour distance (min)
    light_amp=(0.0, 0.03),    # slow global gain modulation
    jitter=0.02,              # px/frame random jitter of the main object (all classes)
    bg_amp=(0.02, 0.08),      # amplitude of each of the 3 background gratings
)
# The target of the second run (harder than DEFAULTS; measured, see training_summary.json).
MEDIUM = dict(
    speed=(0.6, 1.4), rot_speed=(6.0, 12.0), grow_rate=(0.025, 0.05), radius=(6.0, 11.0), aspect=(0.45, 0.65),
    blink_period=(4, 9), distractor_p=0.5, noise=(0.0, 0.015), contrast=(0.4, 0.7), light_amp=(0.0, 0.06),
    jitter=0.05, bg_amp=(0.03, 0.12),
)
# A harder setting, measured in the first run (see models/demo/training_summary.json notes).
HARD = dict(
    speed=(0.5, 1.3), rot_speed=(5.0, 12.0), grow_rate=(0.02, 0.05), radius=(5.0, 10.0), aspect=(0.45, 0.7),
    blink_period=(4, 10), distractor_p=0.6, noise=(0.0, 0.03), contrast=(0.3, 0.6), light_amp=(0.0, 0.1),
    jitter=0.1, bg_amp=(0.03, 0.14),
)
# The easy end of the training curriculum (train_demo.py ramps from EASY to DEFAULTS).
EASY = dict(
    speed=(1.0, 1.6), rot_speed=(8.0, 14.0), grow_rate=(0.04, 0.06), radius=(8.0, 12.0), aspect=(0.4, 0.55),
    blink_period=(4, 8), distractor_p=0.0, noise=(0.0, 0.005), contrast=(0.5, 0.8), light_amp=(0.0, 0.0),
    jitter=0.0, bg_amp=(0.01, 0.05),
)


def lerp_difficulty(a, b, w):
    """Difficulty between a (w=0) and b (w=1): ranges and scalars interpolated."""
    out = {}
    for k in b:
        x, y = a.get(k, b[k]), b[k]
        if isinstance(y, tuple):
            v = tuple(xa + (ya - xa) * w for xa, ya in zip(x, y))
            out[k] = tuple(int(round(t)) for t in v) if k == "blink_period" else v
        else:
            out[k] = x + (y - x) * w
    return out


def _rand(rng, lo_hi, n):
    lo, hi = lo_hi
    return rng.uniform(lo, hi, n)


def _colour_pair(rng, n, contrast):
    """Object colours far enough from the background's mean colour."""
    bg = rng.uniform(0.2, 0.8, (n, 3))
    out = []
    for _ in range(2):
        c = rng.uniform(0.05, 0.95, (n, 3))
        for _ in range(20):
            d = np.linalg.norm(c - bg, axis=1)
            need = d < np.asarray(contrast)
            if not need.any():
                break
            c[need] = rng.uniform(0.05, 0.95, (need.sum(), 3))
        out.append(c)
    return bg, out[0], out[1]


def sample_params(classes, frames, rng, segment_frames=None, **difficulty):
    """Per-clip parameters (arrays over the batch). ``segment_frames``: the clip is one segment of
    that many frames (timeline), so grow/shrink keep the object within its size range."""
    d = dict(DEFAULTS, **difficulty)
    cls = np.asarray(classes)
    n = len(cls)
    p = {"cls": cls}
    p["radius0"] = _rand(rng, d["radius"], n)
    p["aspect"] = _rand(rng, d["aspect"], n)
    p["power"] = rng.choice([2.0, 6.0], n)                       # ellipse or rounded rectangle
    p["x0"] = rng.uniform(0, REF, n)
    p["y0"] = rng.uniform(0, REF, n)
    p["theta0"] = rng.uniform(0, 2 * np.pi, n)
    vx = np.zeros(n); vy = np.zeros(n); om = np.zeros(n); gr = np.zeros(n)
    sp = _rand(rng, d["speed"], n)
    vx[cls == IDX["move_left"]] = -sp[cls == IDX["move_left"]]
    vx[cls == IDX["move_right"]] = sp[cls == IDX["move_right"]]
    vy[cls == IDX["move_up"]] = -sp[cls == IDX["move_up"]]
    vy[cls == IDX["move_down"]] = sp[cls == IDX["move_down"]]
    w = np.deg2rad(_rand(rng, d["rot_speed"], n))
    # image y grows downwards: clockwise on screen is increasing angle in (x, y-down) coordinates
    om[cls == IDX["rotate_cw"]] = w[cls == IDX["rotate_cw"]]
    om[cls == IDX["rotate_ccw"]] = -w[cls == IDX["rotate_ccw"]]
    span = frames if segment_frames is None else segment_frames
    lo, hi = d["grow_rate"]
    r = rng.uniform(lo, hi, n)
    rmin, rmax = 2.5, 15.0
    if segment_frames is not None:
        # the whole segment goes from small to big (or back) within [rmin, rmax]
        r = np.minimum(r, np.log(rmax / rmin) / span * 0.95)
    g = cls == IDX["grow"]
    s = cls == IDX["shrink"]
    gr[g] = r[g]
    gr[s] = -r[s]
    total = np.abs(gr) * span
    # choose the starting radius so that the radius stays within [rmin, rmax] over the span
    start_lo = np.where(gr > 0, rmin, rmin * np.exp(total))
    start_hi = np.where(gr > 0, rmax * np.exp(-total), rmax)
    start_hi = np.maximum(start_hi, start_lo + 1e-3)
    gs = g | s
    p["radius0"][gs] = rng.uniform(start_lo[gs], start_hi[gs])
    p["vx"], p["vy"], p["omega"], p["grow"] = vx, vy, om, gr
    p["blink_period"] = rng.integers(d["blink_period"][0], d["blink_period"][1] + 1, n)
    p["blink_phase"] = rng.integers(0, 1000, n)
    p["jitter"] = np.full(n, d["jitter"])
    p["bg"], p["c1"], p["c2"] = _colour_pair(rng, n, rng.uniform(*d["contrast"], n))
    # background gratings: 3 per clip, wavelengths 12..48 px (of 32): still resolved at 16x16
    k = 3
    wl = rng.uniform(12, 48, (n, k))
    ang = rng.uniform(0, np.pi, (n, k))
    p["g_fx"] = np.cos(ang) / wl
    p["g_fy"] = np.sin(ang) / wl
    p["g_ph"] = rng.uniform(0, 2 * np.pi, (n, k))
    p["g_amp"] = rng.uniform(d["bg_amp"][0], d["bg_amp"][1], (n, k)) * rng.choice([-1, 1], (n, k))
    p["g_col"] = rng.uniform(0.3, 1.0, (n, k, 3))
    p["distractor"] = rng.uniform(0, 1, n) < d["distractor_p"]
    p["d_r"] = rng.uniform(1.5, 3.0, n)
    p["d_x0"] = rng.uniform(0, REF, n)
    p["d_y0"] = rng.uniform(0, REF, n)
    p["d_col"] = rng.uniform(0.05, 0.95, (n, 3))
    p["d_step"] = rng.uniform(0.2, 0.7, n)
    p["light_amp"] = _rand(rng, d["light_amp"], n)
    p["light_per"] = rng.uniform(24, 96, n)
    p["light_ph"] = rng.uniform(0, 2 * np.pi, n)
    p["gain"] = rng.uniform(0.8, 1.15, n)
    p["cast"] = rng.uniform(-0.05, 0.05, (n, 3))
    p["noise"] = _rand(rng, d["noise"], n)
    return p


def render(p, frames, size, rng, t0=0):
    """Render frames [t0, t0+frames) of the clips in ``p``: uint8 [B, frames, size, size, 3]."""
    n = len(p["cls"])
    f32 = np.float32
    t = np.arange(t0, t0 + frames, dtype=np.float64)[None, :]          # [1, F]
    u = ((np.arange(size) + 0.5) * (REF / size)).astype(f32)            # pixel centres, 32-px units
    X = u[None, None, None, :]                                          # [1,1,1,S]
    Y = u[None, None, :, None]                                          # [1,1,S,1]
    pix = REF / size                                                    # one render pixel in 32-px units
    col = lambda a: a[:, None]                                          # noqa: E731
    # random walk jitter shared by all classes (so "idle" is never perfectly still)
    jit = rng.normal(0, 1, (n, frames + t0, 2)).cumsum(1)[:, t0:] * col(p["jitter"])[..., None] * 0.5
    jit -= jit.mean(1, keepdims=True)
    jit = np.clip(jit, -1.0, 1.0)
    cx = col(p["x0"]) + col(p["vx"]) * t + jit[..., 0]
    cy = col(p["y0"]) + col(p["vy"]) * t + jit[..., 1]
    th = col(p["theta0"]) + col(p["omega"]) * t
    rad = col(p["radius0"]) * np.exp(col(p["grow"]) * t)
    per = col(p["blink_period"]).astype(np.int64)
    on = ((t.astype(np.int64) + col(p["blink_phase"])) % per) < (per + 1) // 2
    vis = np.where(col(p["cls"]) == IDX["blink"], on, True).astype(np.float32)

    cx, cy, th, rad = (v.astype(f32) for v in (cx, cy, th, rad))

    def tor(a, c):  # toroidal difference
        return (a - c[..., None, None] + f32(REF / 2)) % f32(REF) - f32(REF / 2)

    dx = tor(X, cx)
    dy = tor(Y, cy)
    ct, st = np.cos(th)[..., None, None], np.sin(th)[..., None, None]
    xo = ct * dx + st * dy
    yo = -st * dx + ct * dy
    a = rad[..., None, None]
    b = a * p["aspect"].astype(f32)[:, None, None, None]
    # superellipse |x/a|^p + |y/b|^p with p = 2 (ellipse) or 6 (rounded rectangle); the signed
    # distance near the edge is about (q - 1) / p * b with q the p-power sum
    u2 = (xo / a) ** 2
    v2 = (yo / b) ** 2
    q = np.where(p["power"][:, None, None, None] > 2, u2 * u2 * u2 + v2 * v2 * v2, u2 + v2)
    pw = p["power"].astype(f32)[:, None, None, None]
    alpha = np.clip(0.5 - (q - 1.0) / pw * b / pix, 0.0, 1.0) * vis[..., None, None]
    side = np.clip(0.5 + xo / f32(pix), 0.0, 1.0)                            # two-tone split along the long axis
    c1 = p["c1"].astype(f32)[:, None, None, None, :]
    c2 = p["c2"].astype(f32)[:, None, None, None, :]
    ocol = c2 + side[..., None] * (c1 - c2)
    # background [B, S, S, 3]
    bx, by = u[None, None, :], u[None, :, None]
    bg = np.broadcast_to(p["bg"][:, None, None, :], (n, size, size, 3)).astype(f32)
    for k in range(p["g_fx"].shape[1]):
        wave = np.sin(2 * np.pi * (p["g_fx"][:, k, None, None] * bx + p["g_fy"][:, k, None, None] * by) + p["g_ph"][:, k, None, None])
        bg += ((p["g_amp"][:, k, None, None] * wave)[..., None] * p["g_col"][:, k, None, None, :]).astype(f32)
    img = bg[:, None] + alpha[..., None] * (ocol - bg[:, None])
    # distractor: small disc doing a random walk, drawn behind the main object
    steps = rng.normal(0, 1, (n, frames + t0, 2)).cumsum(1)[:, t0:] * p["d_step"][:, None, None]
    ddx = tor(X, (col(p["d_x0"]) + steps[..., 0]).astype(f32))
    ddy = tor(Y, (col(p["d_y0"]) + steps[..., 1]).astype(f32))
    dr = np.sqrt(ddx * ddx + ddy * ddy)
    dal = np.clip(0.5 - (dr - p["d_r"].astype(f32)[:, None, None, None]) / pix, 0, 1) * p["distractor"].astype(f32)[:, None, None, None]
    dal = dal * (1 - alpha)
    img = img + dal[..., None] * (p["d_col"].astype(f32)[:, None, None, None, :] - img)
    # lighting, colour cast, noise
    light = col(p["gain"]) * (1 + col(p["light_amp"]) * np.sin(2 * np.pi * t / col(p["light_per"]) + col(p["light_ph"])))
    img = img * light.astype(f32)[..., None, None, None] + p["cast"].astype(f32)[:, None, None, None, :]
    sig = (p["noise"] * (size / REF)).astype(f32)[:, None, None, None, None]  # same noise after downsampling to 32
    img = img + rng.standard_normal(img.shape, dtype=f32) * sig
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def generate_batch(classes, frames, size, rng, **difficulty):
    p = sample_params(classes, frames, rng, **difficulty)
    return render(p, frames, size, rng)


def generate_clip(cls, frames, size, rng, **difficulty):
    """One clip of class ``cls`` (index or name): uint8 [frames, size, size, 3]."""
    c = IDX[cls] if isinstance(cls, str) else int(cls)
    return generate_batch([c], frames, size, rng, **difficulty)[0]


def generate_timeline(seconds, fps, rng, min_s=2.0, max_s=6.0):
    """Consecutive segments 2-6 s long with random classes (incl. idle), no class twice in a row.
    Grow/shrink segments are capped at 2.5 s so the object stays within its size range at the
    training growth rates."""
    total = int(round(seconds * fps))
    segs, f, prev = [], 0, None
    while f < total:
        c = int(rng.integers(len(CLASSES)))
        while c == prev:
            c = int(rng.integers(len(CLASSES)))
        hi = min(max_s, 2.5) if CLASSES[c] in ("grow", "shrink") else max_s
        n = int(round(rng.uniform(min_s, hi) * fps))
        if total - (f + n) < int(min_s * fps):           # do not leave a stub at the end
            n = total - f
        segs.append(dict(label=CLASSES[c], cls=c, start_frame=f, end_frame=f + n,
                         start_s=f / fps, end_s=(f + n) / fps))
        f += n
        prev = c
    return segs


def render_timeline(segments, size, rng, **difficulty):
    """Each segment is its own scene (a cut at each boundary). uint8 [frames, size, size, 3]."""
    out = []
    for s in segments:
        n = s["end_frame"] - s["start_frame"]
        p = sample_params([s["cls"]], n, rng, segment_frames=n, **difficulty)
        out.append(render(p, n, size, rng)[0])
    return np.concatenate(out, 0)

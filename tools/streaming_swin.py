#!/usr/bin/env python3
"""Streaming-native Video Swin in PyTorch (docs/streaming-native-swin.md).

A Video Swin whose temporal windows are anchored to absolute token time (never wrapping, no
temporal padding/roll/clamp), shifted by Wt/2 on odd blocks, and causal in time inside each
window (excluded keys take no part in the softmax). Spatial windows, roll, -100 shift mask and
the `<=` clamp are Video Swin's, per token slice. The relative position bias is indexed by the
true offsets (configured Wh, Ww strides even when the spatial window is clamped).

Parameter names are exactly torchvision's SwinTransformer3d state-dict names:
  patch_embed.proj.*, patch_embed.norm.* (only with patch_norm), features.{2s}.{j}.{norm1,
  attn.qkv, attn.proj, attn.relative_position_bias_table, attn.relative_position_index, norm2,
  mlp.0, mlp.3}.*, features.{2s+1}.{norm, reduction}.*, norm.*, head.*
(`relative_position_index` is torchvision's full-window index, stored only so that an importer
can infer the window; this module computes its own index per call from the actual window.)

Entry points:
  forward_stream(frames [B,3,F,H,W], tau0=0) -> final LayerNorm features [B, T', H', W', C]
  clip_logits(features, clip_tokens)         -> logits of the mean of the last clip_tokens slices
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F

NEG = -1e30  # stands for -inf: exp(NEG - max) == 0 exactly in fp32, and no NaN for all-masked rows


def torchvision_relative_position_index(window: list[int]) -> torch.Tensor:
    """torchvision's full-window relative_position_index [N, N] (int64), for storage only."""
    wt, wh, ww = window
    coords = torch.stack(torch.meshgrid(torch.arange(wt), torch.arange(wh), torch.arange(ww), indexing="ij"))
    flat = coords.flatten(1)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += wt - 1
    rel[:, :, 1] += wh - 1
    rel[:, :, 2] += ww - 1
    rel[:, :, 0] *= (2 * wh - 1) * (2 * ww - 1)
    rel[:, :, 1] *= 2 * ww - 1
    return rel.sum(-1)


@lru_cache(maxsize=None)
def true_offset_index(wt: int, wh: int, ww: int, Wt: int, Wh: int, Ww: int) -> torch.Tensor:
    """Bias-table rows [N, N] for an actual window (wt, wh, ww) using the configured strides."""
    t, h, w = torch.meshgrid(torch.arange(wt), torch.arange(wh), torch.arange(ww), indexing="ij")
    t, h, w = t.flatten(), h.flatten(), w.flatten()
    dt = t[:, None] - t[None, :] + Wt - 1
    dh = h[:, None] - h[None, :] + Wh - 1
    dw = w[:, None] - w[None, :] + Ww - 1
    return (dt * (2 * Wh - 1) * (2 * Ww - 1) + dh * (2 * Ww - 1) + dw).contiguous()


def _axis_labels(size: int, window: int, shift: int) -> torch.Tensor:
    """Swin's shift-region label per position along one (padded) axis: slices (0,-w),(-w,-s),(-s,None)."""
    lab = torch.zeros(size, dtype=torch.long)
    for i, sl in enumerate((slice(0, -window), slice(-window, -shift), slice(-shift, None))):
        lab[sl] = i
    return lab


@lru_cache(maxsize=None)
def spatial_mask(hp: int, wp: int, wh: int, ww: int, sh: int, sw: int) -> torch.Tensor:
    """[nH*nW, wh*ww] region labels per spatial window -> additive mask [nHW, 1, wh*ww, 1, wh*ww]
    (to be broadcast over the temporal part of the window). 0 or -100."""
    lh = _axis_labels(hp, wh, sh)
    lw = _axis_labels(wp, ww, sw)
    lab = lh[:, None] * 3 + lw[None, :]                                  # [hp, wp]
    lab = lab.view(hp // wh, wh, wp // ww, ww).permute(0, 2, 1, 3).reshape(-1, wh * ww)
    diff = lab[:, :, None] != lab[:, None, :]                             # [nHW, s, s]
    return torch.where(diff, -100.0, 0.0).float()


def temporal_mask(tau0: int, T: int, Wt: int, st: int) -> tuple[torch.Tensor, int, int]:
    """Causal + validity mask per temporal window: [nT, Wt, Wt] (0 or NEG), and the front/back
    temporal padding that aligns windows to absolute time."""
    p0 = (tau0 - st) % Wt
    Tp = -(-(p0 + T) // Wt) * Wt
    pos = torch.arange(Tp)
    valid = (pos >= p0) & (pos < p0 + T)
    pos = pos.view(-1, Wt)                                                 # [nT, Wt]
    valid = valid.view(-1, Wt)
    ok = (pos[:, None, :] <= pos[:, :, None]) & valid[:, None, :]          # [nT, q, k]
    return torch.where(ok, 0.0, NEG), p0, Tp - p0 - T


class StreamingWindowAttention(nn.Module):
    def __init__(self, dim: int, window: list[int], num_heads: int):
        super().__init__()
        self.dim, self.window, self.num_heads = dim, list(window), num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)
        Wt, Wh, Ww = window
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * Wt - 1) * (2 * Wh - 1) * (2 * Ww - 1), num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", torchvision_relative_position_index(window))

    def forward(self, x: torch.Tensor, tau0: int, shifted: bool) -> torch.Tensor:
        """x: [B, T, H, W, C] (already norm1'd) -> [B, T, H, W, C]."""
        B, T, H, W, C = x.shape
        Wt, Wh, Ww = self.window
        st = Wt // 2 if shifted else 0
        wh, sh = (H, 0) if H <= Wh else (Wh, Wh // 2 if shifted else 0)
        ww, sw = (W, 0) if W <= Ww else (Ww, Ww // 2 if shifted else 0)
        ph, pw = (-H) % wh, (-W) % ww
        Hp, Wp = H + ph, W + pw
        tmask, p0, p1 = temporal_mask(tau0, T, Wt, st)
        # spatial pad (end) and temporal alignment pad (front/back), zeros
        x = F.pad(x, (0, 0, 0, pw, 0, ph, p0, p1))
        if sh or sw:
            x = torch.roll(x, shifts=(-sh, -sw), dims=(2, 3))
        Tp = x.shape[1]
        nT, nH, nW = Tp // Wt, Hp // wh, Wp // ww
        s = wh * ww
        n = Wt * s
        xw = x.view(B, nT, Wt, nH, wh, nW, ww, C).permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, n, C)
        qkv = self.qkv(xw).reshape(-1, n, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)                           # [B*nT*nHW, h, n, n]
        idx = true_offset_index(Wt, wh, ww, Wt, Wh, Ww).to(x.device)
        bias = self.relative_position_bias_table[idx.view(-1)].view(n, n, -1).permute(2, 0, 1)
        attn = attn.view(B, nT, nH * nW, self.num_heads, n, n) + bias
        # temporal causal/validity mask [nT, Wt, Wt] -> [1, nT, 1, 1, Wt, 1, Wt, 1]
        mask = tmask.to(x.device).view(1, nT, 1, 1, Wt, 1, Wt, 1)
        if sh or sw:
            smask = spatial_mask(Hp, Wp, wh, ww, sh, sw).to(x.device).view(1, 1, nH * nW, 1, 1, s, 1, s)
            mask = mask + smask
        attn = attn.view(B, nT, nH * nW, self.num_heads, Wt, s, Wt, s) + mask
        attn = attn.view(-1, self.num_heads, n, n).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(-1, n, C)
        out = self.proj(out)
        out = out.view(B, nT, nH, nW, Wt, wh, ww, C).permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(B, Tp, Hp, Wp, C)
        if sh or sw:
            out = torch.roll(out, shifts=(sh, sw), dims=(2, 3))
        return out[:, p0:p0 + T, :H, :W, :].contiguous()


class MLP(nn.Sequential):
    """torchvision.ops.MLP layout: 0 Linear, 1 GELU, 2 Dropout, 3 Linear, 4 Dropout."""

    def __init__(self, dim: int, hidden: int):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0), nn.Linear(hidden, dim), nn.Dropout(0.0))


class StreamingSwinBlock(nn.Module):
    def __init__(self, dim, num_heads, window, shifted, mlp_ratio=4.0, drop_path=0.0):
        super().__init__()
        self.shifted = shifted
        self.drop_path = drop_path
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = StreamingWindowAttention(dim, window, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def _dp(self, y):
        if not self.training or self.drop_path == 0.0:
            return y
        keep = 1.0 - self.drop_path
        m = y.new_empty((y.shape[0],) + (1,) * (y.dim() - 1)).bernoulli_(keep)
        return y * m / keep

    def forward(self, x, tau0):
        x = x + self._dp(self.attn(self.norm1(x), tau0, self.shifted))
        return x + self._dp(self.mlp(self.norm2(x)))


class Stage(nn.Sequential):
    def forward(self, x, tau0):  # type: ignore[override]
        for blk in self:
            x = blk(x, tau0)
        return x


class PatchMerging(nn.Module):
    """Spatial 2x2 merge: x0=[0::2,0::2], x1=[1::2,0::2], x2=[0::2,1::2], x3=[1::2,1::2] on (H, W)."""

    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=1e-5)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x, tau0=0):
        H, W = x.shape[2], x.shape[3]
        x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch, embed_dim, patch_norm):
        super().__init__()
        self.patch = list(patch)
        self.proj = nn.Conv3d(3, embed_dim, kernel_size=patch, stride=patch)
        if patch_norm:
            self.norm = nn.LayerNorm(embed_dim, eps=1e-5)
        else:
            self.norm = None

    def forward(self, x):
        pt, ph, pw = self.patch
        _, _, Fr, H, W = x.shape
        if Fr % pt:
            raise ValueError(f"stream of {Fr} frames is not a whole number of {pt}-frame tubelets")
        x = F.pad(x, (0, (-W) % pw, 0, (-H) % ph))
        x = self.proj(x).permute(0, 2, 3, 4, 1)  # B, T, H, W, C
        if self.norm is not None:
            x = self.norm(x)
        return x


class StreamingSwin(nn.Module):
    def __init__(self, patch=(2, 4, 4), embed_dim=48, depths=(2, 2), num_heads=(3, 6), window=(4, 4, 4),
                 mlp_ratio=4.0, num_classes=11, patch_norm=False, drop_path=0.0):
        super().__init__()
        self.config = dict(patch=list(patch), embed_dim=embed_dim, depths=list(depths), num_heads=list(num_heads),
                           window=list(window), mlp_ratio=mlp_ratio, num_classes=num_classes,
                           patch_norm=patch_norm, streaming=True, layer_norm_eps=1e-5)
        self.patch_embed = PatchEmbed(patch, embed_dim, patch_norm)
        layers = []
        total = sum(depths)
        bi = 0
        dim = embed_dim
        for s, (d, h) in enumerate(zip(depths, num_heads)):
            blocks = []
            for j in range(d):
                dp = drop_path * bi / max(total - 1, 1)
                blocks.append(StreamingSwinBlock(dim, h, window, shifted=(j % 2 == 1), mlp_ratio=mlp_ratio, drop_path=dp))
                bi += 1
            layers.append(Stage(*blocks))
            if s < len(depths) - 1:
                layers.append(PatchMerging(dim))
                dim *= 2
        self.features = nn.Sequential(*layers)
        self.num_features = dim
        self.norm = nn.LayerNorm(dim, eps=1e-5)
        self.head = nn.Linear(dim, num_classes)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward_stream(self, frames: torch.Tensor, tau0: int = 0) -> torch.Tensor:
        x = self.patch_embed(frames)
        for layer in self.features:
            x = layer(x, tau0)
        return self.norm(x)

    def clip_logits(self, features: torch.Tensor, clip_tokens: int) -> torch.Tensor:
        return self.head(features[:, -clip_tokens:].mean(dim=(1, 2, 3)))

    def forward(self, frames: torch.Tensor, tau0: int = 0, clip_tokens: int | None = None) -> torch.Tensor:
        f = self.forward_stream(frames, tau0)
        return self.clip_logits(f, clip_tokens or f.shape[1])


# ----------------------------------------------------------------------------------------
# A direct (slow, per-query) reading of the definition, used only to check the vectorised one.
# ----------------------------------------------------------------------------------------

@torch.no_grad()
def reference_attention(attn: StreamingWindowAttention, x: torch.Tensor, tau0: int, shifted: bool) -> torch.Tensor:
    """Per-query loop straight from the doc. x: [T, H, W, C] normed. Returns [T, H, W, C]."""
    T, H, W, C = x.shape
    Wt, Wh, Ww = attn.window
    st = Wt // 2 if shifted else 0
    wh, sh = (H, 0) if H <= Wh else (Wh, Wh // 2 if shifted else 0)
    ww, sw = (W, 0) if W <= Ww else (Ww, Ww // 2 if shifted else 0)
    Hp, Wp = H + (-H) % wh, W + (-W) % ww
    xp = torch.zeros(T, Hp, Wp, C)
    xp[:, :H, :W] = x
    xr = torch.roll(xp, shifts=(-sh, -sw), dims=(1, 2))  # rolled, padded slice coordinates
    qkv = attn.qkv(xr)
    nh = attn.num_heads
    hd = C // nh
    q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]
    lh, lw = _axis_labels(Hp, wh, sh), _axis_labels(Wp, ww, sw)
    out = torch.zeros(T, Hp, Wp, C)
    table = attn.relative_position_bias_table
    for t in range(T):
        ti = tau0 + t
        kw = math.floor((ti - st) / Wt)
        for h in range(Hp):
            for w in range(Wp):
                keys = []
                for t2 in range(T):
                    tj = tau0 + t2
                    if math.floor((tj - st) / Wt) != kw or tj > ti:
                        continue
                    for h2 in range(Hp):
                        if h2 // wh != h // wh:
                            continue
                        for w2 in range(Wp):
                            if w2 // ww != w // ww:
                                continue
                            keys.append((t2, h2, w2))
                res = []
                for head in range(nh):
                    sl = slice(head * hd, (head + 1) * hd)
                    qv = q[t, h, w, sl] * attn.scale
                    sc = []
                    for (t2, h2, w2) in keys:
                        row = (ti - (tau0 + t2) + Wt - 1) * (2 * Wh - 1) * (2 * Ww - 1) \
                            + ((h % wh) - (h2 % wh) + Wh - 1) * (2 * Ww - 1) + ((w % ww) - (w2 % ww) + Ww - 1)
                        m = 0.0 if (lh[h] == lh[h2] and lw[w] == lw[w2]) else -100.0
                        sc.append(torch.dot(qv, k[t2, h2, w2, sl]) + table[row, head] + m)
                    p = torch.softmax(torch.stack(sc), 0)
                    res.append(sum(p[i] * v[kk[0], kk[1], kk[2], sl] for i, kk in enumerate(keys)))
                out[t, h, w] = attn.proj(torch.cat(res))
    out = torch.roll(out, shifts=(sh, sw), dims=(1, 2))
    return out[:, :H, :W]

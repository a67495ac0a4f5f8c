#!/usr/bin/env python3
"""Parity fixtures for the streaming-native Video Swin (docs/streaming-native-swin.md).

Writes Tests/TubeletModelsTests/Fixtures/streaming_swin/{patch_norm,no_patch_norm}/ with
  model.pth             torch.save({'state_dict', 'tubelet': {'streaming', 'labels', 'preprocessing', 'config'}})
  stream.safetensors    frames float32 [3, F, H, W] (already normalised; random normal)
  expected.safetensors  features [T', H', W', C] (whole stream, tau0 = 0, final LayerNorm),
                        clip_logits [numClips, classes] (clips of clip_tokens slices ending at
                        token times 8, 10, ..., T', pooled from the whole-stream features),
                        clip_logits_scratch [numClips, classes] (each clip's own frames run as a
                        stream with tau0 = the clip's first token time)
  config.json           config, clip_tokens, hop_tokens, clip end times, what it exercises

Model: patch [2,4,4], window [4,4,4], embed 16, depths [2,2,3], heads [2,4,4], 5 classes,
every parameter randomised (LayerNorm weight 1+0.1*randn, bias 0.1*randn; bias tables
0.5*randn; linear/conv weights randn*fan_in^-0.5, biases 0.2*randn). Stream [3, 40, 36, 28]:
T'=20, stage grids 9x7 (pad 12x8, shift 2,2), 5x4 (pad 8 / clamp W, shift 2,0), 3x2 (clamped).

Self-checks: state-dict keys/shapes equal torchvision SwinTransformer3d's for the same config;
causality (altering frames after tau leaves slices < tau unchanged); the vectorised model equals
a per-query loop written straight from the doc (streaming_swin.reference_attention).

Usage: python3 tools/make_streaming_fixtures.py [--out DIR] [--skip-reference]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from streaming_swin import StreamingSwin, reference_attention  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "Tests" / "TubeletModelsTests" / "Fixtures" / "streaming_swin"

BASE = dict(patch=[2, 4, 4], window=[4, 4, 4], embed_dim=16, depths=[2, 2, 3], num_heads=[2, 4, 4], num_classes=5)
STREAM = [3, 40, 36, 28]
CLIP_TOKENS = 8
HOP_TOKENS = 2
LABELS = ["alpha", "bravo", "charlie", "delta", "echo"]
PREPROCESSING = {'frames': 16, 'frameStride': 1, 'resizeShortSide': 32, 'cropSize': 32, 'pixelScale': 1 / 255,
                 'mean': [0.5, 0.5, 0.5], 'std': [0.25, 0.25, 0.25], 'subtractFrameMean': True}

CONFIGS = {
    "patch_norm": dict(seed=6101, patch_norm=True),
    "no_patch_norm": dict(seed=6202, patch_norm=False),
}


@torch.no_grad()
def randomise_(model: nn.Module, gen: torch.Generator) -> None:
    for mod_name, mod in model.named_modules():
        for p_name, p in list(mod.named_parameters(recurse=False)):
            r = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if isinstance(mod, nn.LayerNorm):
                p.copy_(1.0 + 0.1 * r if p_name == "weight" else 0.1 * r)
            elif p_name == "relative_position_bias_table":
                p.copy_(0.5 * r)
            elif isinstance(mod, (nn.Linear, nn.Conv3d)) and p_name == "weight":
                p.copy_(r * p[0].numel() ** -0.5)
            elif isinstance(mod, (nn.Linear, nn.Conv3d)) and p_name == "bias":
                p.copy_(0.2 * r)
            else:
                raise RuntimeError(f"no randomisation rule for {mod_name}.{p_name}")


def check_keys_against_torchvision(model: StreamingSwin, patch_norm: bool) -> None:
    from torchvision.models.video.swin_transformer import PatchEmbed3d, SwinTransformer3d
    kw = {}
    if not patch_norm:
        kw["patch_embed"] = lambda patch_size, embed_dim, norm_layer=None: PatchEmbed3d(patch_size, embed_dim=embed_dim, norm_layer=None)
    tv = SwinTransformer3d(patch_size=BASE["patch"], embed_dim=BASE["embed_dim"], depths=BASE["depths"],
                           num_heads=BASE["num_heads"], window_size=BASE["window"], num_classes=BASE["num_classes"], **kw)
    a = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    b = {k: tuple(v.shape) for k, v in tv.state_dict().items()}
    assert a == b, (set(a) ^ set(b), [k for k in a if k in b and a[k] != b[k]])
    for k, v in tv.state_dict().items():
        if k.endswith("relative_position_index"):
            assert torch.equal(v, model.state_dict()[k]), k


@torch.no_grad()
def reference_stream(model: StreamingSwin, frames: torch.Tensor, tau0: int) -> torch.Tensor:
    """forward_stream with every attention replaced by the per-query loop (B = 1)."""
    x = model.patch_embed(frames)
    for layer in model.features:
        if hasattr(layer, "reduction"):
            x = layer(x)
            continue
        for blk in layer:
            y = reference_attention(blk.attn, blk.norm1(x[0]), tau0, blk.shifted)[None]
            x = x + y
            x = x + blk.mlp(blk.norm2(x))
    return model.norm(x)


@torch.no_grad()
def build(name: str, cfg: dict, out: Path, reference: bool) -> None:
    gen = torch.Generator().manual_seed(cfg["seed"])
    model = StreamingSwin(patch=BASE["patch"], embed_dim=BASE["embed_dim"], depths=BASE["depths"],
                          num_heads=BASE["num_heads"], window=BASE["window"], num_classes=BASE["num_classes"],
                          patch_norm=cfg["patch_norm"]).eval()
    randomise_(model, gen)
    check_keys_against_torchvision(model, cfg["patch_norm"])
    frames = torch.randn(STREAM, generator=gen, dtype=torch.float32)

    feats = model.forward_stream(frames[None], tau0=0)          # [1, T', H', W', C]
    Tq = feats.shape[1]
    pt = BASE["patch"][0]
    ends = list(range(CLIP_TOKENS, Tq + 1, HOP_TOKENS))
    logits, scratch = [], []
    for e in ends:
        logits.append(model.clip_logits(feats[:, :e], CLIP_TOKENS)[0])
        s = e - CLIP_TOKENS
        f2 = model.forward_stream(frames[None, :, pt * s:pt * e], tau0=s)
        scratch.append(model.clip_logits(f2, CLIP_TOKENS)[0])
    logits, scratch = torch.stack(logits), torch.stack(scratch)

    # causality: alter frames from token time tau on; slices < tau must not change
    for tau in (3, 8, 13):
        alt = frames.clone()
        alt[:, pt * tau:] = torch.randn(alt[:, pt * tau:].shape, generator=gen)
        f3 = model.forward_stream(alt[None], tau0=0)
        d = (f3[:, :tau] - feats[:, :tau]).abs().max().item()
        assert d < 1e-5, f"causality broken at tau={tau}: {d}"
        assert (f3[:, tau:] - feats[:, tau:]).abs().max().item() > 1e-3
    # the first clip (ending at 8, tau0 0) equals its scratch computation
    assert (logits[0] - scratch[0]).abs().max().item() < 1e-4
    # later clips differ from scratch (they had context): the fixture tells the two apart
    assert (logits[-1] - scratch[-1]).abs().max().item() > 1e-3
    if reference:
        ref = reference_stream(model, frames[None], 0)
        d = (ref - feats).abs().max().item()
        print(f"  {name}: vectorised vs per-query reference max |d| = {d:.2e}")
        assert d < 1e-4

    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state,
                "tubelet": {"streaming": True, "labels": LABELS, "preprocessing": PREPROCESSING,
                            "config": model.config}}, d / "model.pth")
    save_file({"frames": frames.contiguous()}, d / "stream.safetensors")
    save_file({"features": feats[0].contiguous(), "clip_logits": logits.contiguous(),
               "clip_logits_scratch": scratch.contiguous()}, d / "expected.safetensors")
    grids = []
    h, w = -(-STREAM[2] // 4), -(-STREAM[3] // 4)
    for s in range(len(BASE["depths"])):
        grids.append([Tq, h, w])
        h, w = -(-h // 2), -(-w // 2)
    meta = dict(config=model.config, seed=cfg["seed"], stream_shape=STREAM, tau0=0, token_slices=Tq,
                stage_grids=grids, feature_shape=list(feats.shape[1:]), clip_tokens=CLIP_TOKENS,
                hop_tokens=HOP_TOKENS, clip_end_token_times=ends,
                clip_start_token_times=[e - CLIP_TOKENS for e in ends], labels=LABELS,
                purpose="Streaming-native Swin: absolute-time temporal windows (Wt=4, shift 2 on odd "
                        "blocks, no wrap), causal in time, stage 0 grid 9x7 pads to 12x8 with spatial "
                        "shift 2,2; stage 1 5x4 pads H to 8 (shift 2) and clamps W (<=, shift 0); "
                        "stage 2 3x2 clamped, 3 blocks so block 2 is unshifted again. clip_logits pool "
                        "whole-stream features; clip_logits_scratch run the clip's 16 frames alone "
                        "with tau0 = its first token time (equal for the first clip only).",
                tolerance_hint="fp32; reference differences ~1e-6")
    (d / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    total = sum(p.stat().st_size for p in d.iterdir())
    print(f"  {name}: features {tuple(feats.shape[1:])}, {len(ends)} clips, {total / 1e6:.2f} MB")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for name, cfg in CONFIGS.items():
        build(name, cfg, args.out, not args.skip_reference)


if __name__ == "__main__":
    main()

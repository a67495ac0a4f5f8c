#!/usr/bin/env python3
"""Build the Video Swin parity fixtures under Tests/TubeletModelsTests/Fixtures/swin/.

Reference: torchvision 0.29 ``torchvision/models/video/swin_transformer.py``
(``SwinTransformer3d``), cross-checked against mmaction2 1.2.0's
``mmaction/models/backbones/swin.py`` -- mmaction2's port of the official
Video-Swin-Transformer ``SwinTransformer3D`` (same module tree and key names as the
official checkpoints, except that mmaction2 calls the final norm ``norm3`` where the
official repository calls it ``norm``).

For every config in ``CONFIGS`` the script:
  1. builds a small ``SwinTransformer3d`` (patch 2x4x4, default LayerNorm eps 1e-5),
  2. randomises every parameter and buffer except ``relative_position_index``
     (LayerNorm weight 1+0.1*randn, bias 0.1*randn; linear/conv weights randn*fan_in^-0.5,
     biases 0.2*randn so that the qkv bias of zero-padded tokens matters;
     relative_position_bias_table randn*0.5),
  3. runs a seeded random clip through it in eval mode, fp32, no_grad, and writes
     ``torchvision.pth``, ``clip.safetensors``, ``expected.safetensors``, ``config.json``
     (plus per-stage activations, ``official.pth`` and ``torchvision.safetensors`` where the
     config asks for them),
  4. for configs with ``official``: renames the weights to the official checkpoint layout,
     loads them with ``strict=True`` into mmaction2's official-layout backbone, runs
     backbone + mean pool + fc_cls and asserts its logits equal torchvision's.

The mmaction2 module is executed from its source file with small stand-ins for the
mmcv / mmengine / mmaction.registry imports (registry, BaseModule = nn.Module,
build_norm_layer -> nn.LayerNorm(eps=1e-5), build_activation_layer -> nn.GELU() (exact erf),
build_conv_layer -> nn.Conv3d, DropPath -> identity, which is what mmcv does in eval mode).
All the numeric code (window partition, masks, relative position bias, attention, patch
merging, patch embedding) is mmaction2's own. If mmaction2 is not installed the script
downloads its wheel (``pip download --no-deps mmaction2==1.2.0``) into
~/.cache/tubelet-fixtures; with ``--skip-official-check`` the cross-check is skipped and
``official.pth`` is then only a rename of the torchvision weights (the script says so).

Deterministic: fixed seeds; re-running gives identical tensors (the .pth zip entries
carry timestamps, nothing else differs).

Usage: python3 tools/make_swin_fixtures.py [--out DIR] [--only NAME ...] [--skip-official-check]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import importlib.util
import json
import os
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save_file
from torchvision.models.video.swin_transformer import PatchEmbed3d, SwinTransformer3d

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "Tests" / "TubeletModelsTests" / "Fixtures" / "swin"
PATCH = [2, 4, 4]
MMACTION_VERSION = "1.2.0"

# name -> config. ``clip`` is [C, T, H, W]. ``stages``: also dump per-stage activations.
CONFIGS: dict[str, dict] = {
    "pad_two_windows": dict(
        seed=101, embed_dim=16, depths=[2, 2, 2, 2], num_heads=[2, 2, 4, 4], window=[8, 7, 7],
        num_classes=5, clip=[3, 17, 58, 58], patch_norm=True,
        stages=True, official=True, safetensors=False,
        purpose="T'=9: T padded at patch embed (17->18) and to two temporal windows (16) in every "
                "stage, temporal shift 4 in every stage; H'=W'=15 padded to 21 with shift 3; "
                "odd H/W at the first merge (15->8); later stages clamp H/W (<= window, shift 0).",
    ),
    "clamp_nonsquare": dict(
        seed=202, embed_dim=16, depths=[2, 1, 1, 1], num_heads=[2, 2, 4, 4], window=[8, 7, 7],
        num_classes=7, clip=[3, 8, 40, 24], patch_norm=True,
        stages=False, official=False, safetensors=True,
        purpose="T'=4 (temporal clamp to 4, shift 0), H'=10 (pad to 14, shift 3), W'=6 (clamp, "
                "shift 0): mixed per-axis shift (0,3,0) in stage 0; stages 1-3 fully clamped; "
                "depth-1 stages; also stored as safetensors.",
    ),
    "equal_window": dict(
        seed=303, embed_dim=24, depths=[2, 2, 2, 2], num_heads=[3, 3, 6, 6], window=[8, 7, 7],
        num_classes=4, clip=[3, 32, 28, 28], patch_norm=True,
        stages=False, official=False, safetensors=False,
        purpose="T'=16: exactly two temporal windows (no padding), shift 4; H'=W'=7 equals the "
                "window, so the '<=' clamp gives shift 0 on H/W; 3 heads (head_dim 8).",
    ),
    "window_433": dict(
        seed=404, embed_dim=16, depths=[2, 2, 2, 2], num_heads=[2, 2, 4, 4], window=[4, 3, 3],
        num_classes=6, clip=[3, 12, 44, 36], patch_norm=True,
        stages=False, official=True, safetensors=False,
        purpose="Non-default window 4x3x3 (importer must infer it from relative_position_index); "
                "T'=6 pad to 8 shift 2; H'=11 pad 12 shift 1; W'=9 exact shift 1; odd H/W merges.",
    ),
    "no_patch_norm": dict(
        seed=505, embed_dim=16, depths=[2, 1, 1, 1], num_heads=[2, 2, 4, 4], window=[8, 7, 7],
        num_classes=7, clip=[3, 16, 32, 32], patch_norm=False,
        stages=False, official=False, safetensors=False,
        purpose="Patch embedding without LayerNorm (no patch_embed.norm.* keys); T'=8 equals the "
                "window (clamp, shift 0), H'=W'=8 pad to 14 shift 3.",
    ),
    "deep_stage": dict(
        seed=606, embed_dim=16, depths=[2, 2, 4, 2], num_heads=[2, 2, 4, 4], window=[4, 3, 3],
        num_classes=5, clip=[3, 12, 40, 40], patch_norm=True,
        stages=False, official=False, safetensors=False,
        purpose="A 4-block stage (as Swin-T's 6-block stage 3): blocks 2 and 3 have their own bias "
                "tables and shift parities, which a model reusing the first even/odd block's bias gets wrong.",
    ),
}


# ----------------------------------------------------------------------------------------
# Model construction and randomisation (torchvision reference)
# ----------------------------------------------------------------------------------------

def _patch_embed_without_norm(patch_size, embed_dim, norm_layer=None):
    """torchvision PatchEmbed3d with ``norm_layer=None`` (norm becomes nn.Identity, no keys).

    SwinTransformer3d always passes its own ``norm_layer`` to the patch-embed factory, so a
    plain functools.partial would be overridden; this wrapper drops it."""
    return PatchEmbed3d(patch_size=patch_size, embed_dim=embed_dim, norm_layer=None)


def build_torchvision(cfg: dict) -> SwinTransformer3d:
    """torchvision SwinTransformer3d with the config's topology (mlp ratio 4, LN eps 1e-5)."""
    kwargs = {}
    if not cfg["patch_norm"]:
        kwargs["patch_embed"] = _patch_embed_without_norm
    return SwinTransformer3d(
        patch_size=PATCH, embed_dim=cfg["embed_dim"], depths=cfg["depths"],
        num_heads=cfg["num_heads"], window_size=cfg["window"], num_classes=cfg["num_classes"],
        stochastic_depth_prob=0.0, **kwargs)


@torch.no_grad()
def randomise_(model: nn.Module, gen: torch.Generator) -> None:
    """Give every parameter/buffer a non-trivial seeded value (not relative_position_index)."""
    for mod_name, mod in model.named_modules():
        for p_name, p in list(mod.named_parameters(recurse=False)) + list(mod.named_buffers(recurse=False)):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if p_name == "relative_position_index":
                continue
            r = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if isinstance(mod, nn.LayerNorm):
                p.copy_(1.0 + 0.1 * r if p_name == "weight" else 0.1 * r)
            elif p_name == "relative_position_bias_table":
                p.copy_(0.5 * r)
            elif isinstance(mod, (nn.Linear, nn.Conv3d)) and p_name == "weight":
                fan_in = p[0].numel()
                p.copy_(r * fan_in ** -0.5)
            elif isinstance(mod, (nn.Linear, nn.Conv3d)) and p_name == "bias":
                p.copy_(0.2 * r)
            else:
                raise RuntimeError(f"no randomisation rule for {full} ({type(mod).__name__})")


def make_clip(cfg: dict, gen: torch.Generator) -> torch.Tensor:
    """Random normal clip [C, T, H, W], float32."""
    return torch.randn(cfg["clip"], generator=gen, dtype=torch.float32)


@torch.no_grad()
def run_torchvision(model: SwinTransformer3d, clip: torch.Tensor, want_stages: bool):
    """Logits [num_classes] and (optionally) per-stage activations [T, H, W, C] via hooks."""
    acts: dict[str, torch.Tensor] = {}
    hooks = []
    if want_stages:
        def keep(name):
            return lambda _m, _i, out: acts.__setitem__(name, out[0].detach().clone().contiguous())
        hooks.append(model.patch_embed.register_forward_hook(keep("patch_embed")))
        for i in range(len(model.features)):
            name = f"stage{i // 2}" if i % 2 == 0 else f"merge{i // 2}"
            hooks.append(model.features[i].register_forward_hook(keep(name)))
        hooks.append(model.norm.register_forward_hook(keep("final_norm")))
    logits = model(clip.unsqueeze(0))[0].contiguous()
    for h in hooks:
        h.remove()
    return logits, acts


def stage_geometry(cfg: dict) -> list[dict]:
    """Token grid per stage and the window/shift each stage actually uses (the <= clamp)."""
    t, h, w = (-(-s // p) for s, p in zip(cfg["clip"][1:], PATCH))
    out = []
    for i in range(len(cfg["depths"])):
        win, shift = [], []
        for size, wsz in zip((t, h, w), cfg["window"]):
            if size <= wsz:
                win.append(size)
                shift.append(0)
            else:
                win.append(wsz)
                shift.append(wsz // 2)
        padded = [-(-s // ws) * ws for s, ws in zip((t, h, w), win)]
        out.append(dict(stage=i, thw=[t, h, w], dim=cfg["embed_dim"] * 2 ** i, window=win,
                        shift_odd_blocks=shift, padded_thw=padded))
        h, w = -(-h // 2), -(-w // 2)
    return out


# ----------------------------------------------------------------------------------------
# Official layout (Video-Swin-Transformer checkpoints)
# ----------------------------------------------------------------------------------------

def torchvision_to_official(sd: dict) -> "collections.OrderedDict[str, torch.Tensor]":
    """Rename torchvision keys to the official checkpoint layout (``backbone.*``, ``cls_head.fc_cls``)."""
    out = collections.OrderedDict()
    for k, v in sd.items():
        parts = k.split(".")
        if parts[0] == "patch_embed":
            nk = "backbone." + k
        elif parts[0] == "features":
            idx = int(parts[1])
            rest = parts[2:]
            if idx % 2 == 0:
                block = rest[0]
                tail = ".".join(rest[1:])
                tail = tail.replace("mlp.0.", "mlp.fc1.").replace("mlp.3.", "mlp.fc2.")
                nk = f"backbone.layers.{idx // 2}.blocks.{block}.{tail}"
            else:
                nk = f"backbone.layers.{idx // 2}.downsample.{'.'.join(rest)}"
        elif parts[0] == "norm":
            nk = "backbone." + k
        elif parts[0] == "head":
            nk = "cls_head.fc_cls." + ".".join(parts[1:])
        else:
            raise KeyError(k)
        out[nk] = v.clone()
    return out


def official_checkpoint(state_dict: dict, cfg_name: str, gen: torch.Generator) -> dict:
    """A checkpoint dict shaped like the official release: meta (with a numpy scalar),
    state_dict and a small optimizer state (extra globals a weights-only loader must skip)."""
    first = next(iter(state_dict.values()))
    return {
        "meta": {
            "mmcv_version": "1.3.1",
            "time": "Fri Jun 25 12:00:00 2021",
            "epoch": 30,
            "iter": 12345,
            "config": f"# tubelet fixture {cfg_name}\nmodel = dict(type='Recognizer3D', "
                      f"backbone=dict(type='SwinTransformer3D'), cls_head=dict(type='I3DHead'))\n",
            "seed": np.int64(0),
        },
        "state_dict": state_dict,
        "optimizer": {
            "state": {0: {"step": 10,
                          "exp_avg": torch.randn(first.shape, generator=gen),
                          "exp_avg_sq": torch.rand(first.shape, generator=gen)}},
            "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0]}],
        },
    }


# ----------------------------------------------------------------------------------------
# mmaction2's official-layout backbone, loaded from source with stand-ins for mmcv/mmengine
# ----------------------------------------------------------------------------------------

def _mmaction_swin_source() -> Path:
    """Path of mmaction2's backbones/swin.py: installed package, else the wheel via pip download."""
    spec = importlib.util.find_spec("mmaction")
    if spec and spec.submodule_search_locations:
        p = Path(list(spec.submodule_search_locations)[0]) / "models" / "backbones" / "swin.py"
        if p.exists():
            return p
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tubelet-fixtures"
    target = cache / f"mmaction2-{MMACTION_VERSION}" / "swin.py"
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                        f"mmaction2=={MMACTION_VERSION}", "-d", str(cache)], check=True)
        wheel = next(cache.glob(f"mmaction2-{MMACTION_VERSION}-*.whl"))
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as z:
            target.write_bytes(z.read("mmaction/models/backbones/swin.py"))
    return target


def _stub_modules() -> dict[str, types.ModuleType]:
    """Minimal stand-ins for the mmcv / mmengine / mmaction.registry names swin.py imports."""
    class BaseModule(nn.Module):
        def __init__(self, init_cfg=None):
            super().__init__()
            self.init_cfg = init_cfg

    class DropPath(nn.Module):  # mmcv DropPath is the identity in eval mode
        def __init__(self, drop_prob=0.0):
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x):
            assert not self.training
            return x

    def build_norm_layer(cfg, num_features):
        assert cfg["type"] == "LN", cfg
        return "ln", nn.LayerNorm(num_features, eps=cfg.get("eps", 1e-5))

    def build_activation_layer(cfg):
        assert cfg["type"] == "GELU", cfg
        return nn.GELU()

    def build_conv_layer(cfg, *args, **kwargs):
        assert cfg["type"] == "Conv3d", cfg
        return nn.Conv3d(*args, **kwargs)

    class Registry:
        def register_module(self, *a, **k):
            return lambda cls: cls

    def unavailable(*_a, **_k):
        raise RuntimeError("not available in the fixture stand-ins")

    mods = {n: types.ModuleType(n) for n in [
        "mmcv", "mmcv.cnn", "mmcv.cnn.bricks", "mmengine", "mmengine.logging", "mmengine.model",
        "mmengine.model.weight_init", "mmengine.runner", "mmengine.runner.checkpoint",
        "mmaction", "mmaction.registry"]}
    mods["mmcv.cnn"].build_activation_layer = build_activation_layer
    mods["mmcv.cnn"].build_conv_layer = build_conv_layer
    mods["mmcv.cnn"].build_norm_layer = build_norm_layer
    mods["mmcv.cnn.bricks"].DropPath = DropPath
    mods["mmengine.logging"].MMLogger = type("MMLogger", (), {})
    mods["mmengine.model"].BaseModule = BaseModule
    mods["mmengine.model"].ModuleList = nn.ModuleList
    mods["mmengine.model.weight_init"].trunc_normal_ = nn.init.trunc_normal_
    mods["mmengine.runner.checkpoint"]._load_checkpoint = unavailable
    mods["mmaction.registry"].MODELS = Registry()
    return mods


@contextlib.contextmanager
def _patched_modules(mods: dict[str, types.ModuleType]):
    saved = {n: sys.modules.get(n) for n in mods}
    sys.modules.update(mods)
    try:
        yield
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


@functools.lru_cache(maxsize=1)
def load_mmaction_swin() -> types.ModuleType:
    """Execute mmaction2's backbones/swin.py as a standalone module."""
    src = _mmaction_swin_source()
    with _patched_modules(_stub_modules()):
        spec = importlib.util.spec_from_file_location("_mmaction2_swin3d", src)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    mod.__tubelet_source__ = str(src)
    return mod


class OfficialRecognizer(nn.Module):
    """mmaction2 SwinTransformer3D backbone + I3DHead-style head (mean over T,H,W, fc_cls)."""

    def __init__(self, cfg: dict):
        super().__init__()
        swin = load_mmaction_swin()
        self.backbone = swin.SwinTransformer3D(
            arch=dict(embed_dims=cfg["embed_dim"], depths=cfg["depths"], num_heads=cfg["num_heads"]),
            pretrained=None, pretrained2d=False, patch_size=tuple(PATCH),
            window_size=tuple(cfg["window"]), drop_path_rate=0.0, patch_norm=cfg["patch_norm"],
            out_indices=(len(cfg["depths"]) - 1,))
        self.fc_cls = nn.Linear(cfg["embed_dim"] * 2 ** (len(cfg["depths"]) - 1), cfg["num_classes"])

    def load_official(self, sd: dict) -> None:
        """strict=True load of an official-layout state dict (``backbone.norm`` -> mmaction2's ``norm3``)."""
        last = len(self.backbone.layers) - 1
        bb, head = {}, {}
        for k, v in sd.items():
            if k.startswith("backbone."):
                k = k[len("backbone."):]
                if k.startswith("norm."):
                    k = f"norm{last}." + k[len("norm."):]
                bb[k] = v
            elif k.startswith("cls_head.fc_cls."):
                head[k[len("cls_head.fc_cls."):]] = v
            else:
                raise KeyError(k)
        self.backbone.load_state_dict(bb, strict=True)
        self.fc_cls.load_state_dict(head, strict=True)

    def forward(self, x):
        feat = self.backbone(x)               # B C T H W (after norm3)
        return self.fc_cls(feat.mean(dim=(2, 3, 4)))


@torch.no_grad()
def check_official(cfg: dict, official_sd: dict, clip: torch.Tensor, tv_logits: torch.Tensor) -> float:
    """Run mmaction2's official-layout model on the renamed weights; assert logits match."""
    model = OfficialRecognizer(cfg).eval()
    model.load_official(official_sd)
    logits = model(clip.unsqueeze(0))[0]
    diff = (logits - tv_logits).abs().max().item()
    assert diff <= 1e-5, f"official/torchvision logits differ by {diff}"
    return diff


# ----------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------

def make_fixture(name: str, cfg: dict, out_root: Path, official_check: bool) -> dict:
    """Build, run and write one fixture directory; return a summary."""
    torch.manual_seed(cfg["seed"])
    gen = torch.Generator().manual_seed(cfg["seed"])
    model = build_torchvision(cfg)
    randomise_(model, gen)
    model.eval()
    clip = make_clip(cfg, gen)
    logits, acts = run_torchvision(model, clip, cfg["stages"])

    d = out_root / name
    d.mkdir(parents=True, exist_ok=True)
    sd = collections.OrderedDict((k, v.detach().clone().contiguous()) for k, v in model.state_dict().items())
    torch.save(sd, d / "torchvision.pth")
    if cfg["safetensors"]:
        save_file(dict(sd), str(d / "torchvision.safetensors"))
    save_file({"clip": clip.contiguous()}, str(d / "clip.safetensors"))
    expected = {"logits": logits}
    expected.update(acts)
    save_file(expected, str(d / "expected.safetensors"))

    summary = dict(name=name, max_abs_logit=logits.abs().max().item())
    official_note = None
    if cfg["official"]:
        off_sd = torchvision_to_official(sd)
        if official_check:
            diff = check_official(cfg, off_sd, clip, logits)
            summary["official_max_diff"] = diff
            official_note = (f"mmaction2 {MMACTION_VERSION} SwinTransformer3D (official layout) loaded "
                             f"these weights strict and matched torchvision logits, max |diff| {diff:.3g}")
        else:
            official_note = "rename only: NOT cross-checked against the official code"
        torch.save(official_checkpoint(off_sd, name, gen), d / "official.pth")

    config = dict(
        name=name, reference=f"torchvision {__import__('torchvision').__version__} SwinTransformer3d",
        patch_size=PATCH, embed_dim=cfg["embed_dim"], depths=cfg["depths"], num_heads=cfg["num_heads"],
        window_size=cfg["window"], mlp_ratio=4.0, layer_norm_eps=1e-5, patch_norm=cfg["patch_norm"],
        num_classes=cfg["num_classes"], clip_shape=cfg["clip"], seed=cfg["seed"],
        stages=stage_geometry(cfg), purpose=cfg["purpose"],
        files=sorted(p.name for p in d.iterdir() if p.name != "config.json") + ["config.json"],
        expected_tensors={k: list(v.shape) for k, v in expected.items()},
        official_check=official_note,
        max_abs_logit=summary["max_abs_logit"],
    )
    (d / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*", default=None, help="config names (default: all)")
    ap.add_argument("--skip-official-check", action="store_true",
                    help="write official.pth as a rename only, without running mmaction2's code")
    args = ap.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    names = args.only or list(CONFIGS)
    for name in names:
        s = make_fixture(name, CONFIGS[name], args.out, not args.skip_official_check)
        extra = f"  official-vs-torchvision max|diff| {s['official_max_diff']:.3g}" if "official_max_diff" in s else ""
        print(f"{name:16s} max|logit| {s['max_abs_logit']:.4f}{extra}")
    if not args.skip_official_check and any(CONFIGS[n]["official"] for n in names):
        print(f"official code: {load_mmaction_swin().__tubelet_source__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

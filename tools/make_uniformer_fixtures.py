#!/usr/bin/env python3
"""Build the UniFormer parity fixtures under Tests/TubeletModelsTests/Fixtures/uniformer/.

Reference: the official video model, Sense-X/UniFormer
``video_classification/slowfast/models/uniformer.py``, copied into ``tools/uniformer_reference.py``
(see its docstring for what was changed; nothing numeric).

For every config in ``CONFIGS`` the script:
  1. builds a tiny ``Uniformer`` (small dims and depths so that the files stay small),
  2. randomises every parameter and buffer: BatchNorm running mean 0.3*randn, running var
     U(0.5, 2), weight 1+0.2*randn, bias 0.2*randn; LayerNorm weight 1+0.2*randn, bias 0.2*randn;
     conv/linear weights randn*fan_in^-0.5, biases 0.2*randn (``num_batches_tracked`` keeps its
     int64 type, set to 1000),
  3. runs a seeded random clip through it in eval mode, fp32, no_grad, and writes
     ``checkpoint.pth`` (a plain state dict, or slowfast's ``{'model_state', 'epoch',
     'optimizer_state', 'cfg'}``), ``clip.safetensors`` (``clip`` [3, T, H, W]),
     ``expected.safetensors`` (``logits``) and ``config.json``.

Deterministic: fixed seeds. Usage: python3 tools/make_uniformer_fixtures.py [--out DIR] [--only NAME ...]
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
from uniformer_reference import Uniformer, make_cfg  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "Tests" / "TubeletModelsTests" / "Fixtures" / "uniformer"

CONFIGS: dict[str, dict] = {
    "plain_8f": dict(
        seed=901, embed_dim=[16, 16, 24, 32], depth=[2, 1, 2, 1], head_dim=8, qkv_bias=True, split=False, std=False,
        num_classes=6, clip=[3, 8, 32, 32], layout="plain",
        purpose="8 frames -> T'=4 (first patch embedding pads one frame each side), 32x32 -> 8x8, 4x4, 2x2, 1x1; "
                "SABlocks with qkv bias; a plain state dict.",
    ),
    "split_16f_nonsquare": dict(
        seed=902, embed_dim=[8, 16, 16, 24], depth=[1, 2, 2, 1], head_dim=8, qkv_bias=True, split=True, std=False,
        num_classes=5, clip=[3, 16, 32, 40], layout="model_state",
        purpose="16 frames -> T'=8, non-square 32x40 -> 8x10 ... 1x1 (floor of 5/2); SplitSABlocks "
                "(temporal then spatial attention); slowfast's {'model_state': ...} with epoch, optimizer state and cfg.",
    ),
    "std_odd": dict(
        seed=903, embed_dim=[8, 16, 16, 16], depth=[1, 1, 1, 2], head_dim=4, qkv_bias=False, split=False, std=True,
        num_classes=4, clip=[3, 7, 36, 44], layout="model_state",
        purpose="7 frames -> T'=4 (last token half padding), 36x44 -> 9x11 -> 4x5 -> 2x2 -> 1x1 (odd sizes floor); "
                "3x2x2 'std' patch embeddings (temporal padding 1); no qkv bias; head_dim 4.",
    ),
}


@torch.no_grad()
def randomise_(model: nn.Module, gen: torch.Generator) -> None:
    for mod_name, mod in model.named_modules():
        for p_name, p in list(mod.named_parameters(recurse=False)) + list(mod.named_buffers(recurse=False)):
            full = f"{mod_name}.{p_name}"
            if p_name == "num_batches_tracked":
                p.fill_(1000)
                continue
            r = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if isinstance(mod, nn.BatchNorm3d):
                if p_name == "running_mean":
                    p.copy_(0.3 * r)
                elif p_name == "running_var":
                    p.copy_(0.5 + 1.5 * torch.rand(p.shape, generator=gen))
                elif p_name == "weight":
                    p.copy_(1.0 + 0.2 * r)
                else:
                    p.copy_(0.2 * r)
            elif isinstance(mod, nn.LayerNorm):
                p.copy_(1.0 + 0.2 * r if p_name == "weight" else 0.2 * r)
            elif isinstance(mod, (nn.Linear, nn.Conv3d)) and p_name == "weight":
                p.copy_(r * p[0].numel() ** -0.5)
            elif isinstance(mod, (nn.Linear, nn.Conv3d)) and p_name == "bias":
                p.copy_(0.2 * r)
            else:
                raise RuntimeError(f"no randomisation rule for {full} ({type(mod).__name__})")


def build(name: str, cfg: dict, out: Path) -> None:
    gen = torch.Generator().manual_seed(cfg["seed"])
    model = Uniformer(make_cfg(cfg["embed_dim"], cfg["depth"], head_dim=cfg["head_dim"], qkv_bias=cfg["qkv_bias"],
                               split=cfg["split"], std=cfg["std"], num_classes=cfg["num_classes"]))
    randomise_(model, gen)
    model.eval()
    clip = torch.randn(cfg["clip"], generator=gen, dtype=torch.float32)
    with torch.no_grad():
        logits = model(clip.unsqueeze(0))[0].contiguous()

    directory = out / name
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    if cfg["layout"] == "plain":
        checkpoint = state
    else:
        # What slowfast's save_checkpoint writes: epoch, model_state, optimizer_state, cfg (a YAML dump).
        first = state["head.weight"]
        checkpoint = {
            "epoch": 30,
            "model_state": state,
            "optimizer_state": {"state": {0: {"step": torch.tensor(10.0), "exp_avg": torch.randn(first.shape, generator=gen)}},
                                "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": [0]}]},
            "cfg": f"MODEL:\n  ARCH: uniformer\nUNIFORMER:\n  EMBED_DIM: {cfg['embed_dim']}\n  DEPTH: {cfg['depth']}\n",
        }
    torch.save(checkpoint, directory / "checkpoint.pth")
    save_file({"clip": clip.contiguous()}, str(directory / "clip.safetensors"))
    save_file({"logits": logits}, str(directory / "expected.safetensors"))
    meta = {k: v for k, v in cfg.items() if k != "seed"}
    meta["max_abs_logit"] = float(logits.abs().max())
    (directory / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"{name}: logits {[round(float(v), 4) for v in logits]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for name, cfg in CONFIGS.items():
        if args.only and name not in args.only:
            continue
        build(name, cfg, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

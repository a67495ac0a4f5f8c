#!/usr/bin/env python3
"""Build the TimeSformer and ViViT (Model 1) parity fixtures from Hugging Face transformers.

Reference: transformers 5.x ``TimesformerForVideoClassification`` and
``VivitForVideoClassification`` (checked with 5.23.0), fp32, eval mode, no_grad.

Every parameter is randomised (LayerNorm weight 1+0.1*randn, bias 0.1*randn; cls token,
position and time embeddings randn*0.3; linear/conv weights randn*fan_in^-0.5, biases
0.1*randn), so that nothing sits at its 0/1 initial value. Each fixture directory holds what a
published HF checkout holds (``config.json`` + ``model.safetensors`` via ``save_pretrained``,
or ``pytorch_model.bin``), plus ``clip.safetensors`` (``clip`` [3, T, H, W], what
``tubelet infer --clip`` reads; the reference gets it as (1, T, 3, H, W)) and
``expected.safetensors`` (``logits`` [num_labels]).

Fixtures (under Tests/TubeletModelsTests/Fixtures/):
  timesformer/divided      divided_space_time, 8 frames, 4x4 patches, preprocessor_config.json;
                           also ``clip_short`` (4 frames < num_frames: time embeddings are
                           interpolated, and transformers' layers reshape with
                           config.num_frames, see below) with ``logits_short``;
                           ``original.pyth``: the same weights in the facebookresearch
                           TimeSformer layout ({'model_state': {'model.blocks.N...'}})
  timesformer/joint        joint_space_time, 4 frames, weights as pytorch_model.bin (torch zip)
  timesformer/space_only   space_only, 4 frames; transformers returns one row of logits per
                           frame (batch*frames): ``expected`` holds ``frame_logits`` [T, labels]
  vivit/v4                 Model 1, save_pretrained layout (vivit.encoder.layer.N.attention.attention.query)
  vivit/v5                 the same weights renamed to transformers 5's in-memory layout
                           (vivit.layers.N.attention.q_proj, o_proj, mlp.fc1, mlp.fc2)

Short clips in transformers 5.x: ``TimesformerEmbeddings`` interpolates ``time_embeddings``
(nearest) to the clip's frame count, but ``TimesformerLayer`` reshapes with
``config.num_frames``; for T < num_frames its "temporal" attention therefore runs over groups
of num_frames consecutive tokens of the patch-major, time-minor sequence. That is what the
reference computes, so it is what the fixture records (and what Tubelet reproduces for HF
imports). The original facebookresearch code uses the clip's own T instead.

Usage: python3 tools/make_hf_fixtures.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file
from transformers import (TimesformerConfig, TimesformerForVideoClassification, VivitConfig,
                          VivitForVideoClassification)


def randomise(model: nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.copy_(1 + 0.1 * torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
            elif isinstance(module, (nn.Linear, nn.Conv2d, nn.Conv3d)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * fan_in ** -0.5)
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
        for name, parameter in model.named_parameters():
            if name.endswith(("cls_token", "position_embeddings", "time_embeddings")):
                parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))


def run(model: nn.Module, clip: torch.Tensor) -> torch.Tensor:
    """clip [3, T, H, W] -> logits, through the reference's (B, T, C, H, W) input."""
    with torch.no_grad():
        return model(pixel_values=clip.permute(1, 0, 2, 3).unsqueeze(0)).logits


def save_clip(directory: Path, clips: dict[str, torch.Tensor]) -> None:
    save_file({k: v.contiguous() for k, v in clips.items()}, str(directory / "clip.safetensors"))


def timesformer(out: Path, name: str, seed: int, attention_type: str, frames: int, image: int, patch: int,
                bin_format: bool = False, short_frames: int | None = None, preprocessor: dict | None = None) -> None:
    directory = out / "timesformer" / name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    generator = torch.Generator().manual_seed(seed)
    config = TimesformerConfig(image_size=image, patch_size=patch, num_frames=frames, hidden_size=32,
                               num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                               num_labels=4, attention_type=attention_type)
    model = TimesformerForVideoClassification(config).eval()
    randomise(model, generator)
    clip = torch.randn(3, frames, image, image, generator=generator)
    clips = {"clip": clip}
    logits = run(model, clip)
    expected = {}
    if attention_type == "space_only":
        expected["frame_logits"] = logits.reshape(frames, -1).contiguous()  # batch*frames rows
    else:
        expected["logits"] = logits[0].contiguous()
    if short_frames is not None:
        short = torch.randn(3, short_frames, image, image, generator=generator)
        clips["clip_short"] = short
        expected["logits_short"] = run(model, short)[0].contiguous()
    if bin_format:
        model.save_pretrained(str(directory))
        state = load_file(str(directory / "model.safetensors"))
        (directory / "model.safetensors").unlink()
        torch.save(state, str(directory / "pytorch_model.bin"))
    else:
        model.save_pretrained(str(directory))
    if preprocessor is not None:
        (directory / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
    if name == "divided":
        torch.save({"model_state": to_original(load_file(str(directory / "model.safetensors")))},
                   str(directory / "original.pyth"))
    save_clip(directory, clips)
    save_file(expected, str(directory / "expected.safetensors"))
    print(f"timesformer/{name}: {sum(p.numel() for p in model.parameters())} parameters, "
          f"logits {[tuple(v.shape) for v in expected.values()]}")


def to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF TimeSformer names -> facebookresearch TimeSformer (`model.` + timm-style) names."""
    fixed = {
        "timesformer.embeddings.cls_token": "model.cls_token",
        "timesformer.embeddings.position_embeddings": "model.pos_embed",
        "timesformer.embeddings.time_embeddings": "model.time_embed",
        "timesformer.embeddings.patch_embeddings.projection.weight": "model.patch_embed.proj.weight",
        "timesformer.embeddings.patch_embeddings.projection.bias": "model.patch_embed.proj.bias",
        "timesformer.layernorm.weight": "model.norm.weight",
        "timesformer.layernorm.bias": "model.norm.bias",
        "classifier.weight": "model.head.weight",
        "classifier.bias": "model.head.bias",
    }
    block = {
        "layernorm_before": "norm1", "attention.attention.qkv": "attn.qkv", "attention.output.dense": "attn.proj",
        "temporal_layernorm": "temporal_norm1", "temporal_attention.attention.qkv": "temporal_attn.qkv",
        "temporal_attention.output.dense": "temporal_attn.proj", "temporal_dense": "temporal_fc",
        "layernorm_after": "norm2", "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
    }
    result = {}
    for key, value in state.items():
        if key in fixed:
            result[fixed[key]] = value
            continue
        prefix = "timesformer.encoder.layer."
        assert key.startswith(prefix), key
        index, rest = key[len(prefix):].split(".", 1)
        module, leaf = rest.rsplit(".", 1)
        result[f"model.blocks.{index}.{block[module]}.{leaf}"] = value
    return result


def vivit(out: Path, seed: int) -> None:
    root = out / "vivit"
    shutil.rmtree(root, ignore_errors=True)
    generator = torch.Generator().manual_seed(seed)
    config = VivitConfig(image_size=32, num_frames=4, tubelet_size=[2, 16, 16], hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64, num_labels=3)
    model = VivitForVideoClassification(config).eval()
    randomise(model, generator)
    clip = torch.randn(3, 4, 32, 32, generator=generator)
    logits = run(model, clip)[0]
    v4 = root / "v4"
    model.save_pretrained(str(v4))
    state = load_file(str(v4 / "model.safetensors"))
    assert any(".encoder.layer.0.attention.attention.query." in k for k in state), "save_pretrained layout changed"
    renames = [("vivit.encoder.layer.", "vivit.layers."), ("attention.attention.query", "attention.q_proj"),
               ("attention.attention.key", "attention.k_proj"), ("attention.attention.value", "attention.v_proj"),
               ("attention.output.dense", "attention.o_proj"), ("intermediate.dense", "mlp.fc1"),
               ("output.dense", "mlp.fc2")]
    renamed = {}
    for key, value in state.items():
        for old, new in renames:
            key = key.replace(old, new)
        renamed[key] = value
    assert set(renamed) == set(model.state_dict().keys()), "v5 names differ from transformers' in-memory names"
    v5 = root / "v5"
    v5.mkdir(parents=True)
    shutil.copy(v4 / "config.json", v5 / "config.json")
    save_file(renamed, str(v5 / "model.safetensors"))
    # The renamed file must load back into transformers with identical logits.
    check = VivitForVideoClassification(config).eval()
    check.load_state_dict(renamed, strict=True)
    assert torch.equal(run(check, clip)[0], logits)
    save_clip(root, {"clip": clip})
    save_file({"logits": logits.contiguous()}, str(root / "expected.safetensors"))
    print(f"vivit: {sum(p.numel() for p in model.parameters())} parameters, logits {tuple(logits.shape)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "Tests/TubeletModelsTests/Fixtures")
    args = parser.parse_args()
    torch.manual_seed(0)
    # Hub-style recipe (facebook/timesformer-base-finetuned-k400 uses 0.45/0.225).
    preprocessor = {"image_processor_type": "VideoMAEImageProcessor", "do_normalize": True, "do_rescale": True,
                    "rescale_factor": 1 / 255, "image_mean": [0.45, 0.45, 0.45], "image_std": [0.225, 0.225, 0.225],
                    "size": {"shortest_edge": 40}, "crop_size": {"height": 32, "width": 32}}
    timesformer(args.out, "divided", 1, "divided_space_time", frames=8, image=32, patch=8, short_frames=4,
                preprocessor=preprocessor)
    timesformer(args.out, "joint", 2, "joint_space_time", frames=4, image=32, patch=16, bin_format=True)
    timesformer(args.out, "space_only", 3, "space_only", frames=4, image=32, patch=16)
    vivit(args.out, 4)


if __name__ == "__main__":
    main()

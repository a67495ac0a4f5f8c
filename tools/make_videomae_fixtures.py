#!/usr/bin/env python3
"""Build the VideoMAE parity fixtures from Hugging Face transformers.

Reference: transformers 5.x ``VideoMAEForVideoClassification`` (checked with 5.25.0), fp32, eval mode,
no_grad. Every parameter is randomised (LayerNorm weight 1+0.1*randn, bias 0.1*randn; linear/conv
weights randn*fan_in^-0.5, biases 0.1*randn, the q and v biases too), so that nothing sits at its 0/1
initial value. The sinusoidal position table is not a parameter: transformers computes it, and so
must Tubelet. Each fixture directory holds what a published checkout holds (``config.json`` plus
``model.safetensors`` or ``pytorch_model.bin``), ``clip.safetensors`` (``clip`` [3, T, H, W]; the
reference gets it as (1, T, 3, H, W)) and ``expected.safetensors`` (``logits`` [num_labels]).

Fixtures (under Tests/TubeletModelsTests/Fixtures/videomae/), none on the default config:
  mean_hub     mean pooling + fc_norm, q/v biases, 4 frames of 32x32, patch 8, tubelet 2, hidden 48,
               3 heads, 2 layers, exact GELU, layer_norm_eps 1e-6, 5 labels with names, a
               preprocessor_config.json; as save_pretrained writes it (the Hub's names:
               attention.attention.q_bias / v_bias), with the config key of the published checkpoints
               (qkv_bias; transformers 5 writes qv_bias)
  mean_v5      the same weights and logits under transformers 5's in-memory names
               (attention.attention.query.bias / value.bias) and config key qv_bias
  first_token  final LayerNorm and the first token (use_mean_pooling false), no q/v biases, 6 frames of
               24x24, patch 6, tubelet 3, hidden 32, 4 heads, 3 layers, tanh GELU (gelu_new), 4 labels,
               weights as pytorch_model.bin (a torch.save zip)

Usage: python3 tools/make_videomae_fixtures.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file
from transformers import VideoMAEConfig, VideoMAEForVideoClassification


def randomise(model: nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.copy_(1 + 0.1 * torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
            elif isinstance(module, (nn.Linear, nn.Conv3d)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * fan_in ** -0.5)
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))


def run(model: nn.Module, clip: torch.Tensor) -> torch.Tensor:
    """clip [3, T, H, W] -> logits, through the reference's (B, T, C, H, W) input."""
    with torch.no_grad():
        return model(pixel_values=clip.permute(1, 0, 2, 3).unsqueeze(0)).logits[0]


def to_v5(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The Hub's q_bias / v_bias -> transformers 5's in-memory query.bias / value.bias."""
    renamed = {}
    for key, value in state.items():
        key = key.replace("attention.attention.q_bias", "attention.attention.query.bias")
        key = key.replace("attention.attention.v_bias", "attention.attention.value.bias")
        renamed[key] = value
    return renamed


def make(out: Path, name: str, seed: int, config: VideoMAEConfig, bin_format: bool = False,
         preprocessor: dict | None = None) -> tuple[Path, VideoMAEForVideoClassification]:
    directory = out / "videomae" / name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    generator = torch.Generator().manual_seed(seed)
    model = VideoMAEForVideoClassification(config).eval()
    randomise(model, generator)
    clip = torch.randn(3, config.num_frames, config.image_size, config.image_size, generator=generator)
    logits = run(model, clip)
    model.save_pretrained(str(directory))
    if bin_format:
        state = load_file(str(directory / "model.safetensors"))
        (directory / "model.safetensors").unlink()
        torch.save(state, str(directory / "pytorch_model.bin"))
    if preprocessor is not None:
        (directory / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
    save_file({"clip": clip.contiguous()}, str(directory / "clip.safetensors"))
    save_file({"logits": logits.contiguous()}, str(directory / "expected.safetensors"))
    stored = sorted(load_file(str(directory / "model.safetensors")).keys()) if not bin_format else []
    print(f"videomae/{name}: {sum(p.numel() for p in model.parameters())} parameters, logits {list(logits.shape)}, "
          f"max |logit| {logits.abs().max():.3f}; q bias stored as {[k for k in stored if 'bias' in k and 'attention.attention' in k][:2]}")
    return directory, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "Tests/TubeletModelsTests/Fixtures")
    args = parser.parse_args()
    torch.manual_seed(0)

    mean = VideoMAEConfig(image_size=32, patch_size=8, num_channels=3, num_frames=4, tubelet_size=2, hidden_size=48,
                          num_hidden_layers=2, num_attention_heads=3, intermediate_size=96, hidden_act="gelu",
                          layer_norm_eps=1e-6, qkv_bias=True, use_mean_pooling=True, num_labels=5,
                          id2label={i: f"action_{i}" for i in range(5)}, label2id={f"action_{i}": i for i in range(5)})
    preprocessor = {"image_processor_type": "VideoMAEImageProcessor", "image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.3],
                    "do_normalize": True, "do_rescale": True, "rescale_factor": 1 / 255, "size": {"shortest_edge": 36},
                    "crop_size": {"height": 32, "width": 32}}
    directory, _ = make(args.out, "mean_hub", seed=11, config=mean, preprocessor=preprocessor)
    config = json.loads((directory / "config.json").read_text())
    v5 = json.loads(json.dumps(config))
    config["qkv_bias"] = config.pop("qv_bias", True)
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    v5_directory = args.out / "videomae" / "mean_v5"
    shutil.rmtree(v5_directory, ignore_errors=True)
    v5_directory.mkdir(parents=True)
    save_file(to_v5(load_file(str(directory / "model.safetensors"))), str(v5_directory / "model.safetensors"), metadata={"format": "pt"})
    (v5_directory / "config.json").write_text(json.dumps(v5, indent=2) + "\n")
    for name in ("clip.safetensors", "expected.safetensors"):
        shutil.copy(directory / name, v5_directory / name)
    print("videomae/mean_v5: the same weights under query.bias / value.bias, config key qv_bias")

    first = VideoMAEConfig(image_size=24, patch_size=6, num_channels=3, num_frames=6, tubelet_size=3, hidden_size=32,
                           num_hidden_layers=3, num_attention_heads=4, intermediate_size=80, hidden_act="gelu_new",
                           layer_norm_eps=1e-12, qkv_bias=False, use_mean_pooling=False, num_labels=4)
    make(args.out, "first_token", seed=12, config=first, bin_format=True)


if __name__ == "__main__":
    main()

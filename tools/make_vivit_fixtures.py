#!/usr/bin/env python3
"""Build the scenic ViViT Model 2/3/4 parity fixtures (seeded) with tools/vivit_scenic_reference.py.

Reference: the jax/flax re-implementation of scenic's ViViT in tools/vivit_scenic_reference.py
(checked with jax 0.10.2, flax 0.12.8, CPU, fp32).

Every parameter is randomised (LayerNorm scale 1+0.1*randn, bias 0.1*randn; pos-embeds and cls
tokens randn*0.3; kernels randn*fan_in^-0.5 (conv: kt*kh*kw*c; attention out: heads*head_dim),
biases 0.1*randn). The checkpoint is what scenic's checkpoints hold: flax.serialization.to_bytes of
{'params': tree} (msgpack, arrays as ext type 1).

Fixtures, under Tests/TubeletModelsTests/Fixtures/vivit_scenic/<name>/ each with
checkpoint.msgpack, clip.safetensors (``clip`` [3, T, H, W]; model2_gap reuses model2's) and
expected.safetensors (``logits``):
  model2       factorised encoder, 'token' classifier: hidden 32, spatial 2 layers / 2 heads / mlp 64,
               temporal 2 layers / 4 heads / mlp 48, tubelet (t,h,w) = (2,8,8), 8 frames of 32x32, 5 classes
  model3       factorised self-attention ('time_space'), 'gap': hidden 32, 2 layers, 2 heads, mlp 64, 4 classes
  model4       factorised dot-product (4 heads: 2 over t, 2 over hw), 'gap': hidden 32, 2 layers, mlp 64, 3 classes
  model2_gap   factorised encoder with scenic's 'gap' classifier (no cls tokens; mean over tokens after
               each encoder_norm): spatial 2 layers / 4 heads / mlp 64, temporal 1 layer / 2 heads / mlp 32, 3 classes

Usage: python3 tools/make_vivit_fixtures.py [--out DIR]
"""
from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization
from flax.traverse_util import flatten_dict, unflatten_dict
from safetensors.numpy import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vivit_scenic_reference as ref  # noqa: E402

HIDDEN, FRAMES, SIZE, TUBELET = 32, 8, 32, (2, 8, 8)


def randomise(params, rng):
    flat = flatten_dict(params)
    out = {}
    for path, value in sorted(flat.items()):
        shape = value.shape
        leaf = path[-1]
        parent = path[-2] if len(path) > 1 else ''
        if leaf == 'scale':
            v = 1 + 0.1 * rng.standard_normal(shape)
        elif leaf == 'bias':
            v = 0.1 * rng.standard_normal(shape)
        elif leaf == 'pos_embedding' or leaf.startswith('cls'):
            v = 0.3 * rng.standard_normal(shape)
        elif leaf == 'kernel':
            if parent == 'embedding':
                fan_in = int(np.prod(shape[:-1]))
            elif parent == 'out':
                fan_in = shape[0] * shape[1]
            else:
                fan_in = shape[0]
            v = rng.standard_normal(shape) / np.sqrt(fan_in)
        else:
            raise ValueError(f'unexpected parameter {path}')
        out[path] = np.asarray(v, dtype=np.float32)
    return unflatten_dict(out)


def build(name, module, rng, out_dir, clip=None):
    """clip: an earlier fixture's clip to reuse (then no clip.safetensors of its own, to keep the size down)."""
    own_clip = clip is None
    if own_clip:
        clip = rng.standard_normal((3, FRAMES, SIZE, SIZE)).astype(np.float32)
    x = jnp.asarray(clip.transpose(1, 2, 3, 0)[None])  # [1, T, H, W, C]
    params = module.init(jax.random.PRNGKey(0), x)['params']
    params = randomise(jax.tree_util.tree_map(np.asarray, params), rng)
    logits = np.asarray(module.apply({'params': params}, x))[0].astype(np.float32)
    directory = os.path.join(out_dir, name)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, 'checkpoint.msgpack'), 'wb') as f:
        f.write(serialization.to_bytes({'params': params}))
    if own_clip:
        save_file({'clip': clip}, os.path.join(directory, 'clip.safetensors'))
    save_file({'logits': logits}, os.path.join(directory, 'expected.safetensors'))
    print(name, 'logits', np.round(logits, 4), 'params', sum(v.size for v in flatten_dict(params).values()))


def main():
    parser = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument('--out', default=os.path.join(here, '..', 'Tests', 'TubeletModelsTests', 'Fixtures', 'vivit_scenic'))
    args = parser.parse_args()
    rng = np.random.default_rng(20261123)
    build('model2', ref.ViViTFactorisedEncoder(num_classes=5, hidden=HIDDEN, tubelet=TUBELET,
                                               spatial=(64, 2, 2), temporal=(48, 2, 4), classifier='token'), rng, args.out)
    build('model3', ref.ViViTFactorised(num_classes=4, hidden=HIDDEN, tubelet=TUBELET, mlp_dim=64, num_layers=2,
                                        num_heads=2, attention_type='factorized_self_attention_block'), rng, args.out)
    build('model4', ref.ViViTFactorised(num_classes=3, hidden=HIDDEN, tubelet=TUBELET, mlp_dim=64, num_layers=2,
                                        num_heads=4, attention_type='factorized_dot_product_attention'), rng, args.out)
    build('model2_gap', ref.ViViTFactorisedEncoder(num_classes=3, hidden=HIDDEN, tubelet=TUBELET,
                                                   spatial=(64, 2, 4), temporal=(32, 1, 2), classifier='gap'), rng, args.out,
          clip=load_file(os.path.join(args.out, 'model2', 'clip.safetensors'))['clip'])


if __name__ == '__main__':
    main()

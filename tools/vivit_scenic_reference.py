"""ViViT Models 2, 3 and 4 in jax/flax, re-implemented from the authors' scenic code.

scenic itself is not on PyPI, so this is a faithful re-implementation (not a copy) of the parts
the forward pass uses, with flax's own modules (nn.Conv, nn.LayerNorm, nn.MultiHeadDotProductAttention,
nn.Dense) so that the parameter tree has scenic's names. It follows (google-research/scenic):

- scenic/projects/vivit/model.py
  - `temporal_encode` / `embed_3d_patch` ('3d_conv'): nn.Conv(hidden, (ft, fh, fw), strides=(ft, fh, fw),
    padding='VALID', name='embedding') on [b, t, h, w, c]; NB scenic's `patches.size` is (fh, fw, ft).
  - `EncoderBlock`: LayerNorm -> MultiHeadDotProductAttention(attention_fn) -> residual;
    LayerNorm -> MlpBlock(Dense, gelu, Dense) -> residual (names LayerNorm_0, MultiHeadDotProductAttention_1,
    LayerNorm_2, MlpBlock_3).
  - `EncoderFactorizedSelfAttentionBlock` (Model 3, attention_order 'time_space'): LayerNorm_time ->
    MultiHeadDotProductAttention_time over t (+ residual), LayerNorm_space -> MultiHeadDotProductAttention_space
    over hw (+ residual), LayerNorm_mlp -> MlpBlock (+ residual).
  - `Encoder`: 'posembed_input' (learned_1d, vit.AddPositionEmbs: param 'pos_embedding' [1, len, d]) ->
    encoderblock_N -> 'encoder_norm'. For 'factorized_dot_product_attention' the tokens are reshaped to
    [b, t, hw, d] before the blocks and back after.
  - `ViViT.__call__` (Models 3, 4; 'gap' classifier: mean over tokens) and `SpaceTimeViViT.__call__`
    (Model 2, 'factorized_encoder': params 'cls_SpatialTransformer', 'SpatialTransformer' applied to each
    temporal index with shared weights (jax.vmap over t), token 0 ('token' classifier) -> [b, t, d];
    'cls_TemporalTransformer', 'TemporalTransformer' -> token 0), head 'output_projection'.
- scenic/projects/vivit/model_utils.py: `reshape_to_1d_factorized` / `reshape_to_2d_factorized`,
  `factorized_dot_product_attention` (query / sqrt(depth); heads split in halves, the first attends over
  t, the second over hw; concatenated back along heads).
- scenic/model_lib/layers/attention_layers.py: `MlpBlock` (Dense_0 -> activation -> Dense_1), with
  ViViT's activation nn.gelu (flax's default approximate=True: the tanh form).
- scenic/projects/baselines/vit.py: `AddPositionEmbs`.

flax defaults kept: LayerNorm eps 1e-6, softmax in f32. Dropout and droplayer are off (inference).
representation_size (pre_logits Dense + tanh) is not used (None, scenic's ViViT configs' default).
"""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def factorized_dot_product_attention(query, key, value, **unused):
    """model_utils.factorized_dot_product_attention, deterministic: q, k, v [b, t, hw, heads, hd]."""
    query = query / jnp.sqrt(query.shape[-1]).astype(query.dtype)
    n_axes = query.ndim - 3  # t and hw
    assert query.shape[-2] % n_axes == 0
    qs, ks, vs = (jnp.split(a, n_axes, axis=-2) for a in (query, key, value))
    outputs = []
    letters = 'abcdefghijk'
    for i, (q, k, v) in enumerate(zip(qs, ks, vs)):
        batch = letters[:i + 1]
        logits = jnp.einsum(f'{batch}x...z,{batch}y...z->{batch}x...y', q, k)
        weights = jax.nn.softmax(logits, axis=-1)
        outputs.append(jnp.einsum(f'{batch}x...y,{batch}y...z->{batch}x...z', weights, v))
    return jnp.concatenate(outputs, axis=-2)


class MlpBlock(nn.Module):
    """attention_layers.MlpBlock: Dense(mlp_dim) -> gelu (tanh) -> Dense(d)."""
    mlp_dim: int

    @nn.compact
    def __call__(self, x):
        d = x.shape[-1]
        y = nn.Dense(self.mlp_dim, name='Dense_0')(x)
        y = nn.gelu(y)  # approximate=True
        return nn.Dense(d, name='Dense_1')(y)


class EncoderBlock(nn.Module):
    """model.EncoderBlock (pre-LN)."""
    mlp_dim: int
    num_heads: int
    attention_fn: Any = nn.dot_product_attention

    @nn.compact
    def __call__(self, inputs):
        # Explicit names: the auto-names of the flax that wrote scenic's checkpoints (one counter per
        # module, not per type as flax 0.12 would give: LayerNorm_0, MultiHeadDotProductAttention_0, ...).
        x = nn.LayerNorm(name='LayerNorm_0')(inputs)
        x = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, attention_fn=self.attention_fn,
                                            name='MultiHeadDotProductAttention_1')(x, x)
        x = x + inputs
        y = nn.LayerNorm(name='LayerNorm_2')(x)
        y = MlpBlock(mlp_dim=self.mlp_dim, name='MlpBlock_3')(y)
        return x + y


class EncoderFactorizedSelfAttentionBlock(nn.Module):
    """model.EncoderFactorizedSelfAttentionBlock, attention_order 'time_space'."""
    mlp_dim: int
    num_heads: int
    temporal_dims: int

    @nn.compact
    def __call__(self, inputs):
        b, thw, d = inputs.shape
        x = inputs.reshape(b, self.temporal_dims, thw // self.temporal_dims, d)  # [b, t, hw, d]
        two_d_shape = x.shape
        for axis, name in ((1, 'time'), (2, 'space')):
            _, t, hw, _ = two_d_shape
            if axis == 1:  # reshape_to_1d_factorized: [b·hw, t, d]
                seq = x.transpose(0, 2, 1, 3).reshape(b * hw, t, d)
            else:  # [b·t, hw, d]
                seq = x.reshape(b * t, hw, d)
            y = nn.LayerNorm(name=f'LayerNorm_{name}')(seq)
            y = nn.SelfAttention(num_heads=self.num_heads, name=f'MultiHeadDotProductAttention_{name}')(y)
            y = y + seq
            if axis == 1:  # reshape_to_2d_factorized
                x = y.reshape(b, hw, t, d).transpose(0, 2, 1, 3)
            else:
                x = y.reshape(two_d_shape)
        x = x.reshape(b, thw, d)
        y = nn.LayerNorm(name='LayerNorm_mlp')(x)
        y = MlpBlock(mlp_dim=self.mlp_dim, name='MlpBlock')(y)
        return x + y


class AddPositionEmbs(nn.Module):
    """vit.AddPositionEmbs: param 'pos_embedding' [1, len, d]."""

    @nn.compact
    def __call__(self, inputs):
        pe = self.param('pos_embedding', nn.initializers.normal(0.02), (1, inputs.shape[1], inputs.shape[2]))
        return inputs + pe


class TransformerEncoder(nn.Module):
    """model.Encoder: posembed_input -> encoderblock_N -> encoder_norm."""
    mlp_dim: int
    num_layers: int
    num_heads: int
    attention_type: str
    temporal_dims: int | None = None

    @nn.compact
    def __call__(self, inputs):
        x = AddPositionEmbs(name='posembed_input')(inputs)
        if self.attention_type in ('spacetime', 'factorized_encoder'):
            block = EncoderBlock
        elif self.attention_type == 'factorized_self_attention_block':
            block = functools.partial(EncoderFactorizedSelfAttentionBlock, temporal_dims=self.temporal_dims)
        elif self.attention_type == 'factorized_dot_product_attention':
            b, thw, d = x.shape
            x = x.reshape(b, self.temporal_dims, thw // self.temporal_dims, d)
            block = functools.partial(EncoderBlock, attention_fn=factorized_dot_product_attention)
        else:
            raise ValueError(self.attention_type)
        for layer in range(self.num_layers):
            x = block(mlp_dim=self.mlp_dim, num_heads=self.num_heads, name=f'encoderblock_{layer}')(x)
        if self.attention_type == 'factorized_dot_product_attention':
            x = x.reshape(x.shape[0], -1, x.shape[-1])
        return nn.LayerNorm(name='encoder_norm')(x)


def tubelet_embed(x, hidden, tubelet):
    """temporal_encode('3d_conv') / embed_3d_patch: x [b, t, h, w, c] -> [b, t', h', w', d]."""
    ft, fh, fw = tubelet
    return nn.Conv(hidden, (ft, fh, fw), strides=(ft, fh, fw), padding='VALID', name='embedding')(x)


class ViViTFactorised(nn.Module):
    """Model 3 ('factorized_self_attention_block') and Model 4 ('factorized_dot_product_attention'):
    model.ViViT with classifier 'gap'."""
    num_classes: int
    hidden: int
    tubelet: tuple  # (t, h, w)
    mlp_dim: int
    num_layers: int
    num_heads: int
    attention_type: str

    @nn.compact
    def __call__(self, x):
        x = tubelet_embed(x, self.hidden, self.tubelet)
        b, t, h, w, c = x.shape
        x = x.reshape(b, t * h * w, c)
        x = TransformerEncoder(mlp_dim=self.mlp_dim, num_layers=self.num_layers, num_heads=self.num_heads,
                               attention_type=self.attention_type, temporal_dims=t, name='Transformer')(x)
        x = jnp.mean(x, axis=1)  # 'gap'
        return nn.Dense(self.num_classes, name='output_projection')(x)


class ViViTFactorisedEncoder(nn.Module):
    """Model 2: model.SpaceTimeViViT ('factorized_encoder')."""
    num_classes: int
    hidden: int
    tubelet: tuple
    spatial: tuple  # (mlp_dim, layers, heads)
    temporal: tuple
    classifier: str = 'token'

    def vit_body(self, x, cfg, name):
        if self.classifier == 'token':
            cls = self.param(f'cls_{name}', nn.initializers.zeros, (1, 1, x.shape[-1]))
            x = jnp.concatenate([jnp.tile(cls, [x.shape[0], 1, 1]), x], axis=1)
        mlp_dim, layers, heads = cfg
        x = TransformerEncoder(mlp_dim=mlp_dim, num_layers=layers, num_heads=heads,
                               attention_type='factorized_encoder', name=name)(x)
        return x[:, 0] if self.classifier == 'token' else jnp.mean(x, axis=1)

    @nn.compact
    def __call__(self, x):
        x = tubelet_embed(x, self.hidden, self.tubelet)
        b, t, h, w, c = x.shape
        x = x.reshape(b, t, h * w, c)
        # jax.vmap over t with shared parameters == the spatial encoder on the (b·t) batch.
        s = self.vit_body(x.reshape(b * t, h * w, c), self.spatial, 'SpatialTransformer').reshape(b, t, c)
        y = self.vit_body(s, self.temporal, 'TemporalTransformer')
        return nn.Dense(self.num_classes, name='output_projection')(y)

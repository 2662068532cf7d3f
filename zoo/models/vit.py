"""Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words").

Axis legend: B batch, H, W image height and width, C channels, P patch size,
N = (H/P)(W/P) patches, D model width, K classes.

    z_0 = [x_cls; x_p^1 E; ...; x_p^N E] + E_pos        x_p^i: patch i flattened [P*P*C]  (eq. 1)
    z_l = pre-norm Transformer block(z_{l-1})            l = 1..L                        (eqs. 2-3)
    y   = norm(z_L)^0 W_head + b_head                    the CLS row, or the mean over the N rows

The patch embedding E is a convolution with kernel = stride = P (zoo.models.layers.patch_embed,
shared with MLP-Mixer); the encoder after it is the "transformer" model's own
(zoo.models.transformer: encoder_trunk_init, encode), so every option of its blocks applies:
norm, positions, mlp, num_kv_heads, bias, dropout, remat, scan_layers.

As big_vision's ViT (google-research/big_vision, models/vit.py), the head starts at zero
(`zero_head`), so the initial logits are zero and the first steps train the head alone;
"mean" pooling is its "gap". Deviations: positions are a learned table added to the CLS row
as well (big_vision adds them before the CLS token is prepended; the CLS vector plus its
position is one learned vector either way), initialised N(0, 0.02^2) as GPT-2's.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

import zoo.models.attention as A
import zoo.models.layers as L
import zoo.models.transformer as T
from zoo.errors import ConfigError
from zoo.models.core import Model, ModelEntry


@dataclasses.dataclass(frozen=True)
class ViTConfig(T.EncoderConfig):
    patch_size: int = 2
    zero_head: bool = True                 # big_vision's head_zeroinit


def build(name: str, cfg: ViTConfig) -> Model:
    if cfg.num_outputs is None:
        raise ConfigError("vit needs num_outputs (the trainer takes it from the dataset)")
    _, _, d = cfg.dims()

    def init(key, x):
        x = L.with_image_channels(x)
        k_embed, k_cls, k_trunk, k_head = jax.random.split(key, 4)
        num_patches = L.patchify(x, cfg.patch_size).shape[1]
        return {"embed": L.patch_embed_init(k_embed, cfg.patch_size, x.shape[-1], d),
                **T.encoder_trunk_init(k_cls, k_trunk, cfg, num_patches),
                "head": L.head_init(k_head, d, cfg.num_outputs, zero=cfg.zero_head)}

    def apply(params, x, *, key=None, train=False):
        h = L.patch_embed(params["embed"], L.with_image_channels(x))          # [B, N, D]
        return L.dense(params["head"], T.encode(cfg, params, h, key=key, train=train))

    return Model.of(init, apply)


def cls_attention(cfg: ViTConfig, params: dict, x: jax.Array) -> jax.Array:
    """How much the CLS token attends to each patch: [B, L, N], the CLS row of every block's
    softmax(q k^T / sqrt(Dh)) averaged over heads, the CLS column left out (what is left of
    each row sums to at most 1). Runs the model's own blocks; only the weights are recomputed."""
    if cfg.pooling != "cls":
        raise ConfigError("the CLS attention map needs model.pooling=cls")
    _, num_heads, d = cfg.dims()
    h = L.patch_embed(params["embed"], L.with_image_channels(x))
    h = jnp.concatenate([jnp.broadcast_to(params["cls"], (h.shape[0], 1, d)), h], axis=1)
    positions = jnp.arange(h.shape[1])
    h = T.add_positions(cfg, params, h, positions)
    maps = []
    for block in T.layer_list(params["blocks"]):
        maps.append(_cls_weights(cfg, block, T.norm(cfg, block["attention_norm"], h), num_heads, positions)[:, 1:])
        h, _ = T.block(cfg, block, h, causal=False, positions=positions, cache=None, key=None, train=False)
    return jnp.stack(maps, axis=1)


def _cls_weights(cfg: ViTConfig, block: dict, u: jax.Array, num_heads: int, positions: jax.Array) -> jax.Array:
    """softmax over keys of the CLS query (position 0) in one block, mean over heads: [B, 1 + N]."""
    a = block["attention"]
    q = A.split_heads(L.dense(a["query"], u), num_heads)                    # [B, S, N_h, Dh]
    k = A.split_heads(L.dense(a["key"], u), a["key"]["kernel"].shape[1] * num_heads // a["query"]["kernel"].shape[1])
    if cfg.positions == "rotary":
        q, k = A.rotary(q, positions, cfg.rope_base), A.rotary(k, positions, cfg.rope_base)
    k = jnp.repeat(k, num_heads // k.shape[2], axis=2)
    logits = jnp.einsum("bnh,bsnh->bns", q[:, 0], k) / math.sqrt(q.shape[-1])
    return jax.nn.softmax(logits, axis=-1).mean(axis=1)


MODELS = {"vit": ModelEntry(ViTConfig, build, for_platform=T._for_platform, figure="zoo.figures.vit:cls_attention")}

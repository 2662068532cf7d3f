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

import jax

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


MODELS = {"vit": ModelEntry(ViTConfig, build,
                            "Vision Transformer: patch embedding, CLS or mean pooling, the encoder's blocks, zero head",
                            for_platform=T._for_platform)}

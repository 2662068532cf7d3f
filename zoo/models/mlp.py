"""The MLP family: the multi-layer perceptron (Rumelhart et al. 1986) and MLP-Mixer
(Tolstikhin et al. 2021).

Axis legend: B batch, D input features (any trailing shape is flattened), K outputs;
for Mixer H, W, C image height, width, channels, P patch size, S = (H/P)(W/P) patches,
D hidden width, D_S and D_C the token- and channel-mixing MLPs' widths.

"mlp":

    h_0 = flatten(x)                                   [B, D]
    h_l = drop(act(norm(h_{l-1} W_l + b_l)))           [B, width]   l = 1..depth
    h_l = h_{l-1} + drop(act(norm(h_{l-1} W_l + b_l)))              with residual=True, l >= 2
    y   = h_depth W_out + b_out                        [B, K]

MNIST-1D's MLP (Greydanus 2020) is depth 2, width 100, ReLU.

"mixer" (Tolstikhin et al. 2021, eq. 1): patches embedded as ViT's (X = patch_embed(x) [B, S, D],
zoo.models.layers.patch_embed), then per block, with mlp(u) = GELU(u W_1 + b_1) W_2 + b_2,

    U_{*,i} = X_{*,i} + mlp_tokens(LayerNorm(X)_{*,i})      i = 1..D   token mixing, across S
    Y_{j,*} = U_{j,*} + mlp_channels(LayerNorm(U)_{j,*})    j = 1..S   channel mixing, across D

and y = mean_j LayerNorm(Y)_{j,*} W_head + b_head. dropout_rate drops elements of each mixing MLP's
output before its residual sum (a regulariser for small data; the paper uses none). The token-mixing MLP is one MLP shared by
every channel, so it commutes with any permutation of the channels; the channel-mixing MLP is
shared by every patch, so it commutes with any permutation of the patches. As big_vision's
MlpMixer, the head starts at zero (`zero_head`) and the dense layers are LeCun normal.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import jax

import zoo.models.layers as L
from zoo.errors import ConfigError
from zoo.models.core import Model, ModelEntry


@dataclasses.dataclass(frozen=True)
class MLPConfig:
    num_outputs: int | None = None  # None: taken from the dataset
    depth: int = 2
    width: int = 100
    activation: str = "relu"
    dropout_rate: float = 0.0
    residual: bool = False
    norm: Literal["none", "layer"] = "none"


def build(name: str, cfg: MLPConfig) -> Model:
    if cfg.num_outputs is None:
        raise ConfigError("mlp needs num_outputs (the trainer takes it from the dataset)")
    act = L.activation(cfg.activation)

    def init(key, x):
        keys = jax.random.split(key, cfg.depth + 1)
        d_in = x.reshape(x.shape[0], -1).shape[1]
        widths = [d_in] + [cfg.width] * cfg.depth
        blocks = []
        for i in range(cfg.depth):
            block = {"dense": L.dense_init(keys[i], widths[i], widths[i + 1])}
            if cfg.norm == "layer":
                block["norm"] = L.layernorm_init(widths[i + 1])
            blocks.append(block)
        return {"blocks": blocks, "head": L.dense_init(keys[-1], widths[-1], cfg.num_outputs)}

    def apply(params, x, *, key=None, train=False):
        h = x.reshape(x.shape[0], -1)
        keys = L.split_key(key, cfg.depth)
        for i, block in enumerate(params["blocks"]):
            z = L.dense(block["dense"], h)
            if "norm" in block:
                z = L.layernorm(block["norm"], z)
            z = L.dropout(keys[i], act(z), cfg.dropout_rate, train)
            h = h + z if cfg.residual and i > 0 else z
        return L.dense(params["head"], h)

    return Model.of(init, apply)


@dataclasses.dataclass(frozen=True)
class MixerConfig:
    num_outputs: int | None = None  # None: taken from the dataset
    patch_size: int = 2
    num_blocks: int = 4
    hidden_size: int = 64           # D
    tokens_mlp_dim: int = 32        # D_S
    channels_mlp_dim: int = 256     # D_C
    dropout_rate: float = 0.0       # on each mixing MLP's output, before the residual sum
    zero_head: bool = True          # big_vision's MlpMixer: head kernel zeros


def mlp_block_init(key: jax.Array, d: int, hidden: int) -> dict:
    k_up, k_down = jax.random.split(key)
    return {"up": L.dense_init(k_up, d, hidden), "down": L.dense_init(k_down, hidden, d)}


def mlp_block(params: dict, u: jax.Array) -> jax.Array:
    """GELU(u W_1 + b_1) W_2 + b_2 over the last axis of u."""
    return L.dense(params["down"], jax.nn.gelu(L.dense(params["up"], u)))


def token_mixing(params: dict, x: jax.Array, drop=lambda u: u) -> jax.Array:
    """x [B, S, D] + the token MLP across S, for each channel alone (`drop`: dropout)."""
    u = L.layernorm(params["token_norm"], x).swapaxes(1, 2)                 # [B, D, S]
    return x + drop(mlp_block(params["token_mixing"], u).swapaxes(1, 2))


def channel_mixing(params: dict, x: jax.Array, drop=lambda u: u) -> jax.Array:
    """x [B, S, D] + the channel MLP across D, for each patch alone (`drop`: dropout)."""
    return x + drop(mlp_block(params["channel_mixing"], L.layernorm(params["channel_norm"], x)))


def mixer_block_init(key: jax.Array, cfg: MixerConfig, num_patches: int) -> dict:
    k_tokens, k_channels = jax.random.split(key)
    return {"token_norm": L.layernorm_init(cfg.hidden_size),
            "token_mixing": mlp_block_init(k_tokens, num_patches, cfg.tokens_mlp_dim),
            "channel_norm": L.layernorm_init(cfg.hidden_size),
            "channel_mixing": mlp_block_init(k_channels, cfg.hidden_size, cfg.channels_mlp_dim)}


def build_mixer(name: str, cfg: MixerConfig) -> Model:
    if cfg.num_outputs is None:
        raise ConfigError("mixer needs num_outputs (the trainer takes it from the dataset)")

    def init(key, x):
        x = L.with_image_channels(x)
        keys = jax.random.split(key, cfg.num_blocks + 2)
        num_patches = L.patchify(x, cfg.patch_size).shape[1]
        return {"embed": L.patch_embed_init(keys[0], cfg.patch_size, x.shape[-1], cfg.hidden_size),
                "blocks": [mixer_block_init(k, cfg, num_patches) for k in keys[1:-1]],
                "final_norm": L.layernorm_init(cfg.hidden_size),
                "head": L.head_init(keys[-1], cfg.hidden_size, cfg.num_outputs, zero=cfg.zero_head)}

    def apply(params, x, *, key=None, train=False):
        h = L.patch_embed(params["embed"], L.with_image_channels(x))         # [B, S, D]
        keys = L.split_key(key, 2 * len(params["blocks"]))
        for i, block in enumerate(params["blocks"]):
            h = token_mixing(block, h, lambda u, k=keys[2 * i]: L.dropout(k, u, cfg.dropout_rate, train))
            h = channel_mixing(block, h, lambda u, k=keys[2 * i + 1]: L.dropout(k, u, cfg.dropout_rate, train))
        return L.dense(params["head"], L.layernorm(params["final_norm"], h).mean(axis=1))

    return Model.of(init, apply)


MODELS = {"mlp": ModelEntry(MLPConfig, build, symmetry="shift", probe_points="zoo.probes.gradflow:mlp_points"),
          "mixer": ModelEntry(MixerConfig, build_mixer)}

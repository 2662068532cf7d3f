"""Multi-layer perceptron (Rumelhart et al. 1986).

Axis legend: B batch, D input features (any trailing shape is flattened), K outputs.

    h_0 = flatten(x)                                   [B, D]
    h_l = drop(act(norm(h_{l-1} W_l + b_l)))           [B, width]   l = 1..depth
    h_l = h_{l-1} + drop(act(norm(h_{l-1} W_l + b_l)))              with residual=True, l >= 2
    y   = h_depth W_out + b_out                        [B, K]

MNIST-1D's MLP (Greydanus 2020) is depth 2, width 100, ReLU.
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


MODELS = {"mlp": ModelEntry(MLPConfig, build)}

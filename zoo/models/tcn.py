"""Temporal convolutional network (Bai, Kolter and Koltun 2018, "An Empirical Evaluation of
Generic Convolutional and Recurrent Networks for Sequence Modeling").

Axis legend: B batch, T time, D input features, C channels, K outputs.

Level l = 0 .. L-1 is a residual block of two causal convolutions dilated by d = 2^l:

    conv_{k,d}(h)_t = b + sum_{i<k} W_i h_{t - (k-1-i) d}     (zeros before t = 0: never the future)
    z = drop(relu(conv_{k,d}(drop(relu(conv_{k,d}(h))))))
    h' = relu(z + P h)             P: a 1x1 convolution where the channels change, else the identity

so output t sees 1 + 2 (k - 1)(2^L - 1) steps back (the receptive field). Readout `last`: a
dense head on h_T, [B, K] (the adding problem); `steps`: on every h_t, [B, T, K] (copy memory).

Deviations from the paper: no weight normalisation (a reparametrisation of each kernel, left
out as the other families here use none; tried on adding_tcn, one seed, it did not help: test MSE
1.3e-3 with it against 6.2e-4 without; at T=600 a training loss of 0.126 at step 1,000 with it
against 0.0034 at step 1,179 without), and LeCun-normal initialisation. The paper's code draws
every kernel from N(0, 0.01^2) (`init_std=0.01`); measured at the paper's T, one seed each, it did
not help: adding_tcn_t600 0.00106 against 0.00118 at 3,000 steps (the GRU: 0.00101), and
copy_memory_tcn_t1000 failed with it (0.0214 at 1,500 steps, remembering nothing: 0.0204) where
LeCun-normal kernels reach 5.1e-6 (`zoo reproduce NAME --set model.init_std=0.01`).
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import jax

import zoo.models.layers as L
from zoo.errors import ConfigError
from zoo.models.core import Model, ModelEntry


@dataclasses.dataclass(frozen=True)
class TCNConfig:
    num_outputs: int | None = None                # None: taken from the dataset
    channels: tuple[int, ...] = (32, 32, 32, 32)  # one per level; level l dilates by 2^l
    kernel_size: int = 7
    dropout_rate: float = 0.0
    readout: Literal["last", "steps"] = "last"    # the last step's features, or every step's
    init_std: float | None = None                 # None: LeCun normal kernels; a number s: N(0, s^2) (paper: 0.01)

    def receptive_field(self) -> int:
        return 1 + 2 * (self.kernel_size - 1) * (2 ** len(self.channels) - 1)


def causal_conv(params: dict, h, dilation: int):
    """[B, T, C_in] -> [B, T, C_out]: zeros (k - 1) d steps before the start, so step t reads
    steps t, t - d, ..., t - (k - 1) d only."""
    k = params["kernel"].shape[0]
    return L.conv(params, h, padding=(((k - 1) * dilation, 0),), dilation=dilation)


def level(cfg: TCNConfig, params: dict, h, dilation: int, key, train: bool):
    """One residual block (the module docstring's level)."""
    keys = L.split_key(key, 2)
    z = L.dropout(keys[0], jax.nn.relu(causal_conv(params["conv1"], h, dilation)), cfg.dropout_rate, train)
    z = L.dropout(keys[1], jax.nn.relu(causal_conv(params["conv2"], z, dilation)), cfg.dropout_rate, train)
    skip = L.conv(params["skip"], h, padding="VALID") if "skip" in params else h
    return jax.nn.relu(z + skip)


def _inputs(x):
    if isinstance(x, dict) or x.ndim not in (2, 3):
        shape = "{x, lengths}" if isinstance(x, dict) else list(x.shape)
        raise ConfigError(f"a tcn takes sequences of one length [B, T] or [B, T, D], not {shape}")
    return L.floating(x[..., None] if x.ndim == 2 else x)


def init(cfg: TCNConfig, key, x) -> dict:
    c_in = _inputs(x).shape[-1]
    keys = jax.random.split(key, 3 * len(cfg.channels) + 1)

    def drawn(layer_init, key, *shape) -> dict:
        """layer_init(key, *shape), its kernel N(0, init_std^2) when init_std is set (the paper's code)."""
        params = layer_init(key, *shape)
        if cfg.init_std is None:
            return params
        return {**params, "kernel": cfg.init_std * jax.random.normal(key, params["kernel"].shape)}
    levels = []
    for i, c in enumerate(cfg.channels):
        p = {"conv1": drawn(L.conv_init, keys[3 * i], (cfg.kernel_size,), c_in, c),
             "conv2": drawn(L.conv_init, keys[3 * i + 1], (cfg.kernel_size,), c, c)}
        if c_in != c:
            p["skip"] = drawn(L.conv_init, keys[3 * i + 2], (1,), c_in, c)
        levels.append(p)
        c_in = c
    return {"levels": levels, "head": drawn(L.dense_init, keys[-1], c_in, cfg.num_outputs)}


def build(name: str, cfg: TCNConfig) -> Model:
    if cfg.num_outputs is None:
        raise ConfigError("tcn needs num_outputs (the trainer takes it from the dataset)")
    if cfg.kernel_size < 2 or not cfg.channels:
        raise ConfigError(f"tcn needs kernel_size >= 2 and one or more levels; got kernel_size={cfg.kernel_size}, "
                          f"channels={list(cfg.channels)}")

    def apply(params, x, *, key=None, train=False):
        h = _inputs(x)
        keys = L.split_key(key, len(params["levels"]))
        for i, p in enumerate(params["levels"]):
            h = level(cfg, p, h, 2 ** i, keys[i], train)
        return L.dense(params["head"], h if cfg.readout == "steps" else h[:, -1])

    return Model.of(lambda key, x: init(cfg, key, x), apply)


MODELS = {"tcn": ModelEntry(TCNConfig, build)}

"""Convolutional network, 1-D or 2-D, channels last (LeCun et al. 1998; He et al. 2016).

Axis legend: B batch, T length (1-D), H, W height, width (2-D), C channels, K outputs.
Inputs are [B, T] or [B, T, C] for dims=1 and [B, H, W] or [B, H, W, C] for dims=2; a
missing channel axis is added.

Layer l (kernel k_l, stride s_l, C_l channels):

    z_l = act(norm(conv_{k_l, s_l}(h_{l-1})))             norm: GroupNorm, LayerNorm or none
    h_l = pool(drop(z_l))                                  plain
    h_l = pool(drop(z_l) + P_l h_{l-1})                    residual=True

P_l is the identity when h_{l-1} and z_l have the same shape, else a strided 1x1 convolution
(ResNet's projection shortcut, option B). With block_depth=n > 1 a residual block spans n layers
and the block's last activation follows the sum, as in He et al. 2016 and the time-series ResNet
of Wang, Yan and Oates 2017 (Fawaz et al. 2019), P normalised like the layers (its BN):

    u = act(norm(conv(h)))  n - 1 times,  h' = act(norm(conv(u)) + norm(P h))

With preactivation=True each layer after the first
normalises and activates its input instead of its output (He et al. 2016b, "Identity Mappings
in Deep Residual Networks"), so the residual stream is a sum of convolutions, never rectified:

    z_l = conv_{k_l, s_l}(drop(act(norm(h_{l-1}))))       l >= 2 (layer 1: conv alone)
    h_L -> act(norm(h_L)) before the readout

Padding "circular" wraps the signal around, so that
with a mean or max readout the network is exactly invariant to circular shifts by multiples
of its total stride (zoo.probes.symmetry measures it). The readout flattens, or takes the mean or max over
the spatial axes, then a dense layer gives [B, K].

MNIST-1D's CNN (Greydanus 2020): channels (25, 25, 25), kernels (5, 3, 3), strides 2,
padding 1, ReLU, flatten. The time-series baselines of Wang et al. 2017 (configs/*_fcn.yaml,
*_resnet.yaml): FCN = channels (128, 256, 128), kernels (8, 5, 3), stride 1, "same" padding,
norm, ReLU, global average pooling (readout mean); ResNet = three blocks of depth 3, kernels
(8, 5, 3) in each, 64, 128, 128 channels.

norm "batch" is the paper's BatchNorm (Ioffe & Szegedy 2015; zoo.models.layers.batchnorm): each
channel over the batch and the spatial axes, with the batch's statistics in training and running
averages (decay `norm_momentum`, 0.99 as Keras and flax) in evaluation. The running averages are
the model's state (zoo.models.core.Model): `init` puts them under params["batch_stats"], keyed
like the norms they belong to ({"blocks": {"0": {"norm": {"mean", "var"}}, ...}}), and
`apply_with_stats(..., train=True)` returns their new values, which the trainer writes back. A
conv followed by BatchNorm has no bias (the norm's mean removes it). The stateless norms need no
state: GroupNorm with one group per channel or two (num_groups 128 and 64 in the GunPoint configs)
normalises each channel over time within one series, and reaches 97.9% (FCN) and 98.9% (ResNet)
on GunPoint against the paper's 100.0% and 99.1%; one group for the whole layer left seeds stuck
at 69-88%. On ArrowHead the batch's statistics are what reach the paper (README, issue #27).
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import numpy as np

import zoo.models.layers as L
from zoo.errors import ConfigError
from zoo.models.core import STATE, Model, ModelEntry


@dataclasses.dataclass(frozen=True)
class CNNConfig:
    num_outputs: int | None = None  # None: taken from the dataset
    dims: Literal[1, 2] = 1
    channels: tuple[int, ...] = (25, 25, 25)
    kernel_sizes: tuple[int, ...] = (5, 3, 3)  # one per layer, one per layer of a block, or one for all
    strides: tuple[int, ...] = (2, 2, 2)       # likewise
    padding: int | str = 1                     # symmetric zeros (PyTorch style), "same", "valid" or "circular"
    activation: str = "relu"
    norm: Literal["none", "group", "layer", "batch"] = "none"   # batch: BatchNorm, its running statistics the model's state
    num_groups: int = 1
    norm_momentum: float = 0.99                # batch: running statistics' decay per step (Keras, flax)
    residual: bool = False
    block_depth: int = 1                       # layers per residual block (> 1: act after the sum)
    preactivation: bool = False                # norm -> act -> conv per layer (He et al. 2016b)
    pool: Literal["none", "max", "avg"] = "none"
    pool_size: int = 2
    dropout_rate: float = 0.0
    readout: Literal["flatten", "mean", "max"] = "flatten"

    def per_layer(self, values: tuple[int, ...], what: str) -> tuple[int, ...]:
        if len(values) == 1:
            return values * len(self.channels)
        if self.block_depth > 1 and len(values) == self.block_depth:   # the same in every block
            return values * (len(self.channels) // self.block_depth)
        if len(values) != len(self.channels):
            raise ConfigError(f"cnn {what} has {len(values)} entries for {len(self.channels)} "
                             f"layers; give one per layer, one per layer of a block or a single value")
        return values


def _padding(p: int | str) -> int | str:
    return p.upper() if isinstance(p, str) else p


def _check(cfg: CNNConfig) -> None:
    if cfg.num_outputs is None:
        raise ConfigError("cnn needs num_outputs (the trainer takes it from the dataset)")
    if cfg.norm == "group" and any(c % cfg.num_groups for c in cfg.channels):
        raise ConfigError(f"cnn num_groups={cfg.num_groups} must divide every channel count {cfg.channels}")
    if cfg.block_depth < 1 or len(cfg.channels) % cfg.block_depth:
        raise ConfigError(f"cnn block_depth={cfg.block_depth} must divide the {len(cfg.channels)} layers")
    if cfg.block_depth > 1 and cfg.preactivation:
        raise ConfigError("cnn preactivation takes block_depth=1; drop one of them")
    cfg.per_layer(cfg.kernel_sizes, "kernel_sizes")
    cfg.per_layer(cfg.strides, "strides")
    L.activation(cfg.activation)


def with_channels(cfg: CNNConfig, x):
    """[B, L] -> [B, L, 1] (or [B, H, W] -> [B, H, W, 1]); inputs with channels unchanged."""
    if x.ndim not in (cfg.dims + 1, cfg.dims + 2):
        raise ConfigError(f"a cnn with dims={cfg.dims} takes [B, {'L' if cfg.dims == 1 else 'H, W'}(, C)], "
                          f"not {list(x.shape)}; set model.dims={x.ndim - 1 if x.ndim <= 3 else 2}")
    return x[..., None] if x.ndim == cfg.dims + 1 else x


def normalise(cfg: CNNConfig, params: dict | None, z, stats: dict | None = None, train: bool = False):
    """(z normalised with params {"scale", "bias"}, BatchNorm's updated running statistics or
    None): GroupNorm, LayerNorm, or BatchNorm with running statistics `stats`; z when norm is none."""
    if cfg.norm == "batch":
        return L.batchnorm(params, stats, z, train=train, momentum=cfg.norm_momentum)
    if cfg.norm == "group":
        return L.groupnorm(params, z, num_groups=cfg.num_groups), None
    if cfg.norm == "layer":
        return L.layernorm(params, z), None
    return z, None


class Norms:
    """The norm layers of one apply. `norm(owner, i, name, z)` normalises z with the norm `name`
    of `owner`, layer i's params ("norm" or "skip_norm"; i None: the trunk's "final_norm"). A
    BatchNorm reads its running statistics from `running` (params[STATE], keyed the same way)
    and, in training, leaves their new values in `updated`, a tree of the same shape: the
    model's new state (zoo.models.core.Model)."""

    def __init__(self, cfg: CNNConfig, running: dict | None, train: bool):
        self.cfg, self.running, self.train, self.updated = cfg, running, train, {}

    def __call__(self, owner: dict, i: int | None, name: str, z):
        stats = None
        if self.running is not None:
            stats = (self.running["blocks"].get(str(i), {}) if i is not None else self.running).get(name)
        y, new = normalise(self.cfg, owner.get(name), z, stats, self.train)
        if new is not None:
            where = self.updated.setdefault("blocks", {}).setdefault(str(i), {}) if i is not None else self.updated
            where[name] = new
        return y


def block_layer(cfg: CNNConfig, layers: list[dict], h, first: int, keys, train: bool, norm: Norms):
    """A residual block of block_depth > 1 layers from layer `first`: conv -> norm -> activation
    -> dropout, the last layer's activation after the sum with its (normalised) shortcut; pool."""
    strides, act = cfg.per_layer(cfg.strides, "strides"), L.activation(cfg.activation)
    z = h
    for j, block in enumerate(layers):
        z = norm(block, first + j, "norm", L.conv(block["conv"], z, strides=strides[first + j],
                                            padding=_padding(cfg.padding)))
        if j < len(layers) - 1:
            z = L.dropout(keys[first + j], act(z), cfg.dropout_rate, train)
    last = layers[-1]
    if cfg.residual:
        skip = h
        if "skip" in last:
            stride = int(np.prod(strides[first:first + len(layers)]))
            skip = norm(last, first + len(layers) - 1, "skip_norm", L.conv(last["skip"], h, strides=stride, padding="VALID"))
        z = z + skip[(slice(None), *(slice(0, n) for n in z.shape[1:-1]))]
    z = L.dropout(keys[first + len(layers) - 1], act(z), cfg.dropout_rate, train)
    return L.pool(z, cfg.pool, cfg.pool_size) if cfg.pool != "none" else z


def layer(cfg: CNNConfig, block: dict, h, i: int, key, train: bool, norm: Norms):
    """Block i: conv -> norm -> activation -> dropout (+ skip) -> pool; with preactivation
    norm -> activation -> dropout -> conv (+ skip) -> pool (layer 0: conv alone)."""
    stride = cfg.per_layer(cfg.strides, "strides")[i]
    act = L.activation(cfg.activation)
    if cfg.preactivation:
        u = L.dropout(key, act(norm(block, i, "norm", h)), cfg.dropout_rate, train) if i > 0 else h
        z = L.conv(block["conv"], u, strides=stride, padding=_padding(cfg.padding))
    else:
        z = L.conv(block["conv"], h, strides=stride, padding=_padding(cfg.padding))
        z = L.dropout(key, act(norm(block, i, "norm", z)), cfg.dropout_rate, train)
    if cfg.residual:
        skip = L.conv(block["skip"], h, strides=stride, padding="VALID") if "skip" in block else h
        z = z + skip[(slice(None), *(slice(0, n) for n in z.shape[1:-1]))]
    return L.pool(z, cfg.pool, cfg.pool_size) if cfg.pool != "none" else z


def features(cfg: CNNConfig, params: dict, x, key=None, train: bool = False):
    """The trunk without its head: x [B, L(, C)] or [B, H, W(, C)] -> features [B, F]."""
    return features_and_state(cfg, params, x, key, train)[0]


def features_and_state(cfg: CNNConfig, params: dict, x, key=None, train: bool = False):
    """(features [B, F], the new model state: BatchNorm's running statistics after a training
    batch, {} otherwise)."""
    norm = Norms(cfg, params.get(STATE), train)
    h = with_channels(cfg, x)
    keys = L.split_key(key, len(cfg.channels))
    n = cfg.block_depth
    for i in range(0, len(params["blocks"]), n):
        if n == 1:
            h = layer(cfg, params["blocks"][i], h, i, keys[i], train, norm)
        else:
            h = block_layer(cfg, params["blocks"][i:i + n], h, i, keys, train, norm)
    if cfg.preactivation:
        h = L.activation(cfg.activation)(norm(params, None, "final_norm", h))
    if cfg.readout == "mean":
        h = h.mean(axis=tuple(range(1, h.ndim - 1)))
    elif cfg.readout == "max":
        h = h.max(axis=tuple(range(1, h.ndim - 1)))
    else:
        h = h.reshape(h.shape[0], -1)
    return h, norm.updated


def init(cfg: CNNConfig, key, x) -> dict:
    kernels, strides = cfg.per_layer(cfg.kernel_sizes, "kernel_sizes"), cfg.per_layer(cfg.strides, "strides")
    keys = jax.random.split(key, 2 * len(cfg.channels) + 1)
    c_in = c_x = with_channels(cfg, x).shape[-1]
    blocks, n, running = [], cfg.block_depth, {}

    def norm_init(i: int | None, name: str, c: int) -> dict:
        if cfg.norm == "batch":   # the running statistics: model state
            where = running.setdefault("blocks", {}).setdefault(str(i), {}) if i is not None else running
            where[name] = L.batchnorm_stats_init(c)
        return L.layernorm_init(c)
    # BatchNorm removes a bias before it (its mean is the batch's), so its conv has none: its
    # gradient would be rounding noise, which Adam scales up to full steps (as torchvision's ResNet)
    conv_bias = not (cfg.norm == "batch" and not cfg.preactivation)
    for i, c_out in enumerate(cfg.channels):
        block = {"conv": L.conv_init(keys[2 * i], (kernels[i],) * cfg.dims, c_in, c_out, bias=conv_bias)}
        if cfg.norm != "none" and not (cfg.preactivation and i == 0):
            block["norm"] = norm_init(i, "norm", c_in if cfg.preactivation else c_out)
        first = i - i % n                      # the first layer of i's residual block
        c_block = c_x if first == 0 else cfg.channels[first - 1]
        if cfg.residual and i == first + n - 1 and (c_block != c_out or max(strides[first:i + 1]) != 1):
            block["skip"] = L.conv_init(keys[2 * i + 1], (1,) * cfg.dims, c_block, c_out, bias=False)
            if n > 1 and cfg.norm != "none":
                block["skip_norm"] = norm_init(i, "skip_norm", c_out)
        blocks.append(block)
        c_in = c_out
    params = {"blocks": blocks}
    if cfg.preactivation and cfg.norm != "none":
        params["final_norm"] = norm_init(None, "final_norm", c_in)
    if running:
        params[STATE] = running
    d_feat = jax.eval_shape(lambda p, x: features(cfg, p, x), params, x).shape[-1]
    params["head"] = L.dense_init(keys[-1], d_feat, cfg.num_outputs)
    return params


def build(name: str, cfg: CNNConfig) -> Model:
    _check(cfg)

    def apply_with_stats(params, x, *, key=None, train=False):
        h, state = features_and_state(cfg, params, x, key, train)
        return L.dense(params["head"], h), ({STATE: state} if state else {})

    return Model.with_stats(lambda key, x: init(cfg, key, x), apply_with_stats)


def exact_shifts(cfg: CNNConfig, group: str, elements: list) -> tuple[str, np.ndarray]:
    """Circular padding and a mean or max readout make shifts by multiples of the total stride
    exact symmetries of the outputs (zoo probe RUN symmetry)."""
    if group != "shift" or cfg.padding != "circular" or cfg.readout not in ("mean", "max"):
        return "", np.zeros(len(elements), bool)
    stride = int(np.prod(cfg.per_layer(cfg.strides, "strides")))
    stride *= cfg.pool_size ** len(cfg.channels) if cfg.pool != "none" else 1
    return f"shifts by multiples of {stride}", np.array([s % stride == 0 for s in elements])


MODELS = {"cnn": ModelEntry(CNNConfig, build, symmetry="shift", exact_symmetry=exact_shifts,
                            probe_points="zoo.probes.gradflow:cnn_points")}

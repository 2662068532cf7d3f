"""Shared layers as pure functions: `<layer>_init(key, ...) -> params`, `<layer>(params, x)`.

Axis legend: B batch, T length, H/W image height/width, C channels, D features.
Parameter names follow flax.linen (`kernel`, `bias`, `scale`) so weights copy across
directly; kernels are stored `[in, out]` for dense and `[*window, C_in, C_out]` for conv.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from zoo.errors import ConfigError

Params = dict

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "gelu_exact": lambda x: jax.nn.gelu(x, approximate=False),
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "silu": jax.nn.silu,
    "elu": jax.nn.elu,
    "leaky_relu": jax.nn.leaky_relu,
    "softplus": jax.nn.softplus,
    "identity": lambda x: x,
}

_lecun_normal = jax.nn.initializers.lecun_normal()


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The activation function called `name`; unknown names list the valid ones."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; valid: {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]


# ----------------------------------------------------------------------------- dense
def dense_init(key: jax.Array, d_in: int, d_out: int, *, bias: bool = True) -> Params:
    """y = x W + b with W: [d_in, d_out] (LeCun normal), b: [d_out] (zeros)."""
    params = {"kernel": _lecun_normal(key, (d_in, d_out), jnp.float32)}
    if bias:
        params["bias"] = jnp.zeros((d_out,), jnp.float32)
    return params


def dense(params: Params, x: jax.Array) -> jax.Array:
    """x: [..., d_in] -> [..., d_out]."""
    y = x @ params["kernel"].astype(x.dtype)
    if "bias" in params:
        y = y + params["bias"].astype(x.dtype)
    return y


# ----------------------------------------------------------------------------- conv
def conv_init(key: jax.Array, window: tuple[int, ...], c_in: int, c_out: int, *, bias: bool = True) -> Params:
    """Convolution kernel [*window, c_in, c_out] (LeCun normal over fan-in prod(window)*c_in)."""
    params = {"kernel": _lecun_normal(key, (*window, c_in, c_out), jnp.float32)}
    if bias:
        params["bias"] = jnp.zeros((c_out,), jnp.float32)
    return params


def _dimension_numbers(ndim: int) -> tuple[str, str, str]:
    spatial = "WHD"[:ndim] if ndim == 1 else "HWD"[:ndim]
    return ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")


def conv(params: Params, x: jax.Array, *, strides: int | tuple[int, ...] = 1,
         padding: str | int | tuple[tuple[int, int], ...] = "SAME", dilation: int = 1) -> jax.Array:
    """Channels-last convolution. x: [B, *spatial, C_in] -> [B, *spatial', C_out]; `dilation`
    spaces the kernel's taps that many steps apart (atrous; Yu & Koltun 2016).

    `padding` is "SAME", "VALID", "CIRCULAR", an int (symmetric, PyTorch style) or explicit
    pairs. "CIRCULAR" wraps each spatial axis around by k - 1 in all ("SAME"'s split), so the
    layer commutes with circular shifts by multiples of the stride (when it divides the length).
    """
    kernel = params["kernel"].astype(x.dtype)
    ndim = kernel.ndim - 2
    if isinstance(strides, int):
        strides = (strides,) * ndim
    if isinstance(padding, int):
        padding = ((padding, padding),) * ndim
    if padding == "CIRCULAR":
        wrap = [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel.shape[:ndim]]
        x, padding = jnp.pad(x, [(0, 0), *wrap, (0, 0)], mode="wrap"), "VALID"
    y = jax.lax.conv_general_dilated(x, kernel, strides, padding, rhs_dilation=(dilation,) * ndim,
                                     dimension_numbers=_dimension_numbers(ndim))
    if "bias" in params:
        y = y + params["bias"].astype(x.dtype)
    return y


# ----------------------------------------------------------------------------- patches
def patch_embed_init(key: jax.Array, patch_size: int, c_in: int, d: int) -> Params:
    """The patch embedding of ViT and MLP-Mixer: a [P, P, C, D] kernel (LeCun normal over
    fan-in P*P*C, as flax's Conv in big_vision) and a [D] bias."""
    return conv_init(key, (patch_size, patch_size), c_in, d)


def patchify(x: jax.Array, patch_size: int) -> jax.Array:
    """x [B, H, W, C] -> [B, N, P*P*C]: the non-overlapping P x P patches in row-major order
    (N = H/P * W/P), each flattened (row, column, channel) as a conv kernel is."""
    b, h, w, c = x.shape
    if h % patch_size or w % patch_size:
        raise ConfigError(f"images of {h}x{w} pixels do not split into {patch_size}x{patch_size} patches; "
                          f"set model.patch_size to a divisor of both (or data.image_size to a multiple)")
    p = patch_size
    x = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def patch_embed(params: Params, x: jax.Array) -> jax.Array:
    """x [B, H, W, C] -> tokens [B, N, D]: each patch times the flattened kernel, plus the bias
    (Dosovitskiy et al. 2021, eq. 1): a convolution with kernel = stride = P, as a matmul."""
    kernel = params["kernel"]
    p, d = kernel.shape[0], kernel.shape[-1]
    return dense({"kernel": kernel.reshape(-1, d), "bias": params["bias"]}, patchify(x, p))


def head_init(key: jax.Array, d: int, num_outputs: int, *, zero: bool) -> Params:
    """A classifier head [D, K]: kernel zeros (big_vision's ViT and MlpMixer: the initial
    logits are zero) or LeCun normal; bias zeros."""
    params = dense_init(key, d, num_outputs)
    return {**params, "kernel": jnp.zeros_like(params["kernel"])} if zero else params


def with_image_channels(x: jax.Array) -> jax.Array:
    """[B, H, W] -> [B, H, W, 1]; [B, H, W, C] unchanged; other ranks fail naming the shape."""
    if x.ndim not in (3, 4):
        raise ConfigError(f"a patch model takes images [B, H, W(, C)], not {list(x.shape)}; "
                          "use image data (data.name=digits or image_folder)")
    return floating(x[..., None] if x.ndim == 3 else x)


def floating(x: jax.Array) -> jax.Array:
    """Model inputs as floats: in the precision they came in (the trainer casts them to
    train.precision, so bfloat16 reaches every matmul), float32 for integer inputs."""
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


# ----------------------------------------------------------------------------- pooling
def pool(x: jax.Array, kind: str, window: int, stride: int | None = None) -> jax.Array:
    """Max or average pooling over the spatial axes of x: [B, *spatial, C] ("VALID" windows)."""
    stride = stride or window
    ndim = x.ndim - 2
    dims, strides = (1, *(window,) * ndim, 1), (1, *(stride,) * ndim, 1)
    if kind == "max":
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, dims, strides, "VALID")
    if kind == "avg":
        return jax.lax.reduce_window(x, 0.0, jax.lax.add, dims, strides, "VALID") / window**ndim
    raise ConfigError(f"unknown pooling {kind!r}; valid: max, avg")


# ----------------------------------------------------------------------------- norms
def layernorm_init(d: int) -> Params:
    return {"scale": jnp.ones((d,), jnp.float32), "bias": jnp.zeros((d,), jnp.float32)}


def layernorm(params: Params, x: jax.Array, *, eps: float = 1e-6) -> jax.Array:
    """(x - mean) / sqrt(var + eps) * scale + bias over the last axis (Ba et al. 2016).

    Statistics are computed in float32 whatever the input dtype.
    """
    x32 = x.astype(jnp.float32)
    mean = x32.mean(-1, keepdims=True)
    var = jnp.square(x32 - mean).mean(-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + eps)
    return (y * params["scale"] + params["bias"]).astype(x.dtype)


def rmsnorm_init(d: int) -> Params:
    return {"scale": jnp.ones((d,), jnp.float32)}


def rmsnorm(params: Params, x: jax.Array, *, eps: float = 1e-6) -> jax.Array:
    """x / sqrt(mean(x^2) + eps) * scale over the last axis (Zhang & Sennrich 2019)."""
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.square(x32).mean(-1, keepdims=True) + eps)
    return (y * params["scale"]).astype(x.dtype)


def groupnorm(params: Params, x: jax.Array, *, num_groups: int, eps: float = 1e-6) -> jax.Array:
    """GroupNorm (Wu & He 2018): normalise each of `num_groups` channel groups over the
    spatial axes and the group's channels. x: [B, *spatial, C], C divisible by num_groups.
    Same parameters as layernorm (`scale`, `bias` of shape [C])."""
    c = x.shape[-1]
    x32 = x.astype(jnp.float32)
    grouped = x32.reshape(*x.shape[:-1], num_groups, c // num_groups)
    axes = tuple(range(1, x.ndim - 1)) + (x.ndim,)
    mean = grouped.mean(axes, keepdims=True)
    var = jnp.square(grouped - mean).mean(axes, keepdims=True)
    y = ((grouped - mean) * jax.lax.rsqrt(var + eps)).reshape(x.shape)
    return (y * params["scale"] + params["bias"]).astype(x.dtype)


def batchnorm_stats_init(d: int) -> Params:
    """BatchNorm's running statistics of d channels: mean 0, variance 1 (model state, not trained)."""
    return {"mean": jnp.zeros((d,), jnp.float32), "var": jnp.ones((d,), jnp.float32)}


def batchnorm(params: Params, stats: Params, x: jax.Array, *, train: bool, momentum: float = 0.99,
              eps: float = 1e-5) -> tuple[jax.Array, Params | None]:
    """BatchNorm (Ioffe & Szegedy 2015) over every axis but the last (batch and spatial):

        train:  y = (x - mean_B) / sqrt(var_B + eps) * scale + bias     the batch's statistics
                running <- momentum running + (1 - momentum) batch          (returned, not stored)
        eval:   y = (x - running mean) / sqrt(running var + eps) * scale + bias

    Returns (y, the updated running statistics in training, None in evaluation). `params` holds
    the trained `scale`, `bias` (as layernorm's), `stats` the running `mean`, `var` [C]
    (batchnorm_stats_init), a model's state (zoo.models.core). The variance is the biased one,
    as flax.linen.BatchNorm keeps it. Under jit over a sharded batch the mean is the global
    batch's (synchronised BatchNorm). Statistics are computed in float32."""
    x32 = x.astype(jnp.float32)
    axes = tuple(range(x.ndim - 1))
    if train:
        mean = x32.mean(axes)
        var = jnp.square(x32 - mean).mean(axes)
        new = {name: momentum * stats[name].astype(jnp.float32) + (1 - momentum) * jax.lax.stop_gradient(batch)
               for name, batch in (("mean", mean), ("var", var))}
    else:
        mean, var, new = stats["mean"], stats["var"], None
    y = (x32 - mean) * jax.lax.rsqrt(var + eps)
    return (y * params["scale"] + params["bias"]).astype(x.dtype), new


# ----------------------------------------------------------------------------- dropout
class SweptRate(NamedTuple):
    """A dropout rate that is a traced number, one per replica of a stacked run sweeping
    model.dropout_rate (zoo.replicas). It holds what a Python rate r gives, computed on the host
    in float64: the float32 keep probability 1 - r and the 16-bit keep threshold
    round((1 - r) 2^16) (zoo.models.gnn). Deriving them from a float32 r on the device would
    round apart for r = 0.6, 0.9 and most other rates, and the masks would differ from a
    separate run's. A SweptRate of 0 keeps every element (x / 1): the values of a skipped dropout."""
    keep: jax.Array      # float32, 1 - r
    keep16: jax.Array    # uint32, round((1 - r) 2^16)

    @classmethod
    def of(cls, rates) -> SweptRate:
        keep = 1.0 - np.asarray(rates, np.float64)
        return cls(jnp.asarray(keep.astype(np.float32)), jnp.asarray(np.round(keep * 2**16).astype(np.uint32)))


def dropout(key: jax.Array | None, x: jax.Array, rate: float | SweptRate, train: bool) -> jax.Array:
    """Inverted dropout: zero each element with probability `rate`, scale the rest by 1/(1-rate).

    Identity when not training or rate == 0; otherwise `key` is required. `rate` may be a
    SweptRate (one traced rate per replica of a stacked run).
    """
    swept = isinstance(rate, SweptRate)
    if not train or (not swept and rate == 0.0):
        return x
    if key is None:
        raise ValueError("dropout with train=True needs a PRNG key: call apply(..., key=key)")
    keep = jax.random.bernoulli(key, rate.keep if swept else 1.0 - rate, x.shape)
    scale = rate.keep.astype(x.dtype) if swept else 1.0 - rate
    return jnp.where(keep, x / scale, jnp.zeros_like(x))


def sample_token(key: jax.Array, logits: jax.Array, temperature: float = 1.0,
                 top_k: int | None = None) -> jax.Array:
    """A token per row of logits [B, V]: softmax(logits / temperature) over the top_k largest;
    temperature 0 takes the argmax. Both language-model families sample with it."""
    if temperature == 0.0:
        return jnp.argmax(logits, -1).astype(jnp.int32)
    logits = logits / temperature
    if top_k is not None:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return jax.random.categorical(key, logits, -1).astype(jnp.int32)


def split_key(key: jax.Array | None, num: int) -> list[jax.Array | None]:
    """`num` independent keys from `key`, or `num` Nones when there is no key (eval)."""
    return [None] * num if key is None else list(jax.random.split(key, num))


def fan_in_uniform(key: jax.Array, shape: tuple[int, ...], fan_in: int) -> jax.Array:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Linear/RNN weights."""
    bound = 1.0 / math.sqrt(fan_in)
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


REMAT_POLICIES = {"block": None, "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable}


def remat(fn, mode: str):
    """`fn` as is ("none"), or with its activations recomputed in the backward pass instead of
    stored (jax.checkpoint): all of them ("block"), or all but the outputs of matmuls without
    batch dimensions, which are kept ("dots"). Same values and gradients, less memory."""
    return fn if mode == "none" else jax.checkpoint(fn, policy=REMAT_POLICIES[mode])

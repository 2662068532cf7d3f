"""Deep Sets (Zaheer, Kottur, Ravanbakhsh, Poczos, Salakhutdinov & Smola 2017, "Deep Sets",
NeurIPS): a function of a set as a function of the sum of its elements' embeddings.

Axis legend: B batch (sets), T set size (padded), F features per element (an element's
trailing axes are flattened), D embedding width, K outputs.

Theorem 2 of the paper: every permutation-invariant f of a countable set X has the form

    f(X) = rho( sum_{x in X} phi(x) )

so the model is an element-wise network phi, a pooling over the set, and an MLP rho:

    e_t = phi(x_t)                              [B, T, D]   phi: phi_depth dense layers, act after each
    s   = sum_t m_t e_t        (pool="sum")     [B, D]      m_t = 1 for t < length, 0 for padding
    s   = sum_t m_t e_t / n    (pool="mean")                n = number of real elements
    y   = rho(s)                                [B, K]      rho: rho_depth hidden layers, then linear

Padding never reaches the sum (it is masked, not assumed zero), so a set gives the same output
at any padded width, and any reordering of its real elements gives the same output up to float
rounding. With rho_depth = 0, rho is linear and f(X) = sum_x w . phi(x) + b: a sum of
per-element scores, which extrapolates to sets of any size (the digit-sum experiment, section
4.1.2). Inputs: x [B, T, ...] (every element real) or {"x": [B, T, ...], "lengths": [B]}
(zoo.data.digit_sets). Initialisation: LeCun normal kernels, zero biases (zoo.models.layers).
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp

import zoo.models.layers as L
from zoo.errors import ConfigError
from zoo.models.core import Model, ModelEntry, every_element
from zoo.models.gnn import mlp, mlp_init


@dataclasses.dataclass(frozen=True)
class DeepSetsConfig:
    num_outputs: int | None = None       # None: taken from the dataset
    width: int = 128                     # D, and the width of rho's hidden layers
    phi_depth: int = 3                   # dense layers of phi (each followed by the activation)
    rho_depth: int = 0                   # hidden layers of rho; 0: rho is linear
    pool: Literal["sum", "mean"] = "sum"
    activation: str = "relu"


def set_inputs(x) -> tuple[jax.Array, jax.Array]:
    """(elements [B, T, F] float, mask [B, T] bool) of x [B, T, ...] or {"x", "lengths"}."""
    elements, lengths = (x["x"], x["lengths"]) if isinstance(x, dict) else (x, None)
    if elements.ndim < 3:
        raise ConfigError(f"deepsets takes sets [B, T, ...] (T elements each), not {list(elements.shape)}; "
                          "use set data (data.name=digit_sets) or data.shape=[T, F]")
    t = jnp.arange(elements.shape[1])
    mask = jnp.ones(elements.shape[:2], bool) if lengths is None else t[None, :] < lengths[:, None]
    return L.floating(elements.reshape(*elements.shape[:2], -1)), mask


def pool(e: jax.Array, mask: jax.Array, kind: str) -> jax.Array:
    """Masked sum (or mean) over the set axis: e [B, T, D], mask [B, T] -> [B, D]."""
    total = jnp.sum(jnp.where(mask[..., None], e, jnp.zeros_like(e)), axis=1)
    if kind == "sum":
        return total
    return total / jnp.maximum(mask.sum(1, keepdims=True), 1).astype(total.dtype)


def build(name: str, cfg: DeepSetsConfig) -> Model:
    if cfg.num_outputs is None:
        raise ConfigError("deepsets needs num_outputs (the trainer takes it from the dataset)")
    if cfg.phi_depth < 1:
        raise ConfigError(f"deepsets needs phi_depth >= 1, got {cfg.phi_depth}")
    act = L.activation(cfg.activation)

    def init(key, x):
        elements, _ = set_inputs(x)
        k_phi, k_rho, k_out = jax.random.split(key, 3)
        return {"phi": mlp_init(k_phi, elements.shape[-1], cfg.width, cfg.phi_depth),
                "rho": mlp_init(k_rho, cfg.width, cfg.width, cfg.rho_depth),
                "head": L.dense_init(k_out, cfg.width, cfg.num_outputs)}

    def apply(params, x, *, key=None, train=False):
        elements, mask = set_inputs(x)
        s = pool(mlp(params["phi"], elements, act), mask, cfg.pool)
        return L.dense(params["head"], mlp(params["rho"], s, act))

    return Model.of(init, apply)


MODELS = {"deepsets": ModelEntry(DeepSetsConfig, build, sequence=True, inputs=("arrays", "lengths"), symmetry="set",
                                  exact_symmetry=every_element(("set",)))}

"""Hamiltonian neural network (Greydanus, Dzamba & Yosinski 2019, "Hamiltonian Neural Networks",
NeurIPS), and its baseline: an MLP that outputs the time derivative directly.

Axis legend: B batch, D = 2d phase-space coordinates z = (q, p), q and p [B, d] each.
The network is a scalar function H_theta(q, p) (an MLP to 1 output); the vector field is its
symplectic gradient, computed with jax.grad of the scalar (summed over the batch, whose rows
are independent):

    dq/dt =  dH_theta/dp,      dp/dt = -dH_theta/dq          (eq. 2 of the paper; z' = J grad H)

so dH_theta/dt = grad H . J grad H = 0 along every flow of the field: the learned energy is
conserved by construction (time-translation symmetry, Noether). Baseline (`baseline: true`):
the same MLP with D outputs, z' = MLP(z). Both are trained on observed derivatives with the
squared error (eq. 3's L2 loss). Layout of z: [q_1..q_d, p_1..p_d], the paper's
(its two-body state is [q_x1, q_x2, q_y1, q_y2, p_x1, ...], one canonical pair per column).

Deviations: the paper's HNN has two scalar outputs and uses the second (the first feeds an
unused conservative field in its code); here one scalar. The MLP is zoo's (zoo.models.mlp's
layers, tanh, 200 wide, as the paper).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

import zoo.models.layers as L
from zoo.errors import ConfigError
from zoo.models.core import Model, ModelEntry
from zoo.models.gnn import mlp


@dataclasses.dataclass(frozen=True)
class HNNConfig:
    width: int = 200
    depth: int = 2                    # hidden layers
    activation: str = "tanh"
    baseline: bool = False            # True: an MLP for z' (the paper's baseline), no H


def symplectic_gradient(energy, z: jax.Array) -> jax.Array:
    """J grad H at z [B, 2d] for energy(z) -> [B] (rows independent): [dH/dp, -dH/dq]."""
    grad = jax.grad(lambda v: jnp.sum(energy(v)))(z)
    d = z.shape[-1] // 2
    return jnp.concatenate([grad[..., d:], -grad[..., :d]], axis=-1)


def hamiltonian(params: dict, z: jax.Array, cfg: HNNConfig) -> jax.Array:
    """H_theta(z) [B] of an HNN's params at states z [B, 2d]."""
    return mlp(params["layers"], z, L.activation(cfg.activation), activate_output=False)[..., 0]


def build_hnn(name: str, cfg: HNNConfig) -> Model:
    act = L.activation(cfg.activation)

    def init(key, z):
        if z.ndim != 2 or z.shape[-1] % 2:
            raise ConfigError(f"{name} needs phase-space states [B, 2d] (q and p); got shape {tuple(z.shape)}")
        widths = (z.shape[-1], *(cfg.width,) * cfg.depth, z.shape[-1] if cfg.baseline else 1)
        keys = jax.random.split(key, len(widths) - 1)
        last = len(widths) - 2   # H's output layer has no bias: a constant shift of H moves nothing
        return {"layers": [L.dense_init(k, a, b, bias=cfg.baseline or i < last)
                           for i, (k, a, b) in enumerate(zip(keys, widths[:-1], widths[1:]))]}

    def apply(params, z, *, key=None, train=False):
        if cfg.baseline:
            return mlp(params["layers"], z, act, activate_output=False)
        return symplectic_gradient(lambda v: hamiltonian(params, v, cfg), z)

    return Model.of(init, apply)


MODELS = {
    "hnn": ModelEntry(HNNConfig, build_hnn),
}

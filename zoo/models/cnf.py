"""Continuous normalising flow with the exact trace of the Jacobian (Chen et al. 2018, §4;
FFJORD, Grathwohl et al. 2019, without its stochastic trace estimator).

A time-dependent vector field f_θ(t, z) carries a data point x = z(0) to z(1); the
instantaneous change of variables gives its log-density:

    dz/dt = f_θ(t, z),    dΔ/dt = tr(∂f_θ/∂z (t, z)),    z(0) = x,  Δ(0) = 0
    log p(x) = log N(z(1); 0, I) + Δ(1)

The trace is exact: the D x D Jacobian of each example by forward-mode differentiation (D
JVPs), affordable for the 2-D toy densities. The field is the time-dependent MLP of
zoo.models.node; the batch is one ODE state [B, D] (with Δ: [B]). Samples: z(1) ~ N(0, I)
integrated back to t = 0.

Axis legend: B batch, D data dimensions. `apply(params, x)` returns (log p(x) [B], {"nfe"});
train it with the "density" task (zoo.tasks.density: loss = -log p(x), in nats).
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

import zoo.models.node as N
from zoo.models.core import Model, ModelEntry


@dataclasses.dataclass(frozen=True)
class CNFConfig(N.SolverConfig):
    width: int = 64
    depth: int = 3               # hidden layers of the MLP vector field
    activation: str = "tanh"     # smooth: the field's Jacobian enters the density
    rtol: float = 1e-5
    atol: float = 1e-5


def trace_dynamics(f: N.Field) -> N.Field:
    """The augmented field (z, Δ) -> (f(t, z), tr ∂f/∂z), exact trace per example."""
    def per_example(params, t, z):                                  # z: [D]
        return jnp.trace(jax.jacfwd(lambda z: f(params, t, z))(z))

    def augmented(params, t, state):
        z, _ = state
        return f(params, t, z), jax.vmap(per_example, in_axes=(None, None, 0))(params, t, z)

    return augmented


def standard_normal_logpdf(z: jax.Array) -> jax.Array:
    """log N(z; 0, I) summed over the last axis."""
    return -0.5 * jnp.sum(z ** 2, -1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)


def build(name: str, cfg: CNFConfig) -> Model:
    f = N.mlp_field(cfg.activation, 1, True)
    augmented = trace_dynamics(f)
    ts = jnp.array([0.0, 1.0])

    def init(key, x):
        return {"field": N.mlp_field_init(key, x.shape[-1], cfg.width, cfg.depth,
                                          time_dependent=True, init_std=None)}

    def apply_with_stats(params, x, *, key=None, train=False):
        state0 = (x, jnp.zeros(x.shape[:1], x.dtype))
        (zs, deltas), nfe = N.odeint(cfg, augmented, params["field"], state0, ts.astype(x.dtype))
        return standard_normal_logpdf(zs[-1]) + deltas[-1], {"nfe": nfe.astype(jnp.float32)}

    return Model.with_stats(init, apply_with_stats)


def sample(cfg: CNFConfig, params, key: jax.Array, num: int, dim: int = 2) -> jax.Array:
    """`num` samples [num, dim]: z(1) ~ N(0, I) integrated from t = 1 back to t = 0."""
    f = N.mlp_field(cfg.activation, 1, True)
    z1 = jax.random.normal(key, (num, dim))
    zs, _ = N.odeint(cfg, f, params["field"], z1, jnp.array([1.0, 0.0]))
    return zs[-1]


MODELS = {"cnf": ModelEntry(CNFConfig, build, figure="zoo.figures.ode:cnf_density")}

"""ODE-RNNs and Latent ODEs for irregularly sampled time series (Rubanova, Chen & Duvenaud 2019,
"Latent ODEs for Irregularly-Sampled Time Series", NeurIPS).

ODE-RNN (Algorithm 1): between observation times the hidden state follows an ODE; at an
observation a GRU cell (zoo.models.recurrent) updates it:

    h'_i = ODESolve(f_θ, h_{i-1}, (t_{i-1}, t_i))          h_i = GRUCell(h'_i, x_i) if observed_i else h'_i
    ode_rnn predicts x̂_i = W h'_i + b from the state before x_i is read, so at held-out and
    future times it is the ODE alone carrying the state forward.

Latent ODE (§3): a variational autoencoder whose decoder is an ODE in a latent space:

    encoder   an ODE-RNN run backwards in time over the observed points, h at t_0 -> (μ, log σ)
    z_0 = μ + σ ε  (ε ~ N(0, I) when training with a key; z_0 = μ otherwise)
    decoder   z(t_i) = ODESolve(g_φ, z_0, (t_0, t_i)),   x̂_i = W z(t_i) + b
    ELBO = Σ_i log N(x_i; x̂_i, σ_obs²) - KL(N(μ, σ²) || N(0, I))

Where z_0 sits (`z0_at`): "first", z_0 = z(t_0) as above (the paper's interpolation set-up);
"last_observed", z_0 = z(t_L) at the series' last observed time t_L: the decoder is solved
forward from t_L over the later points and backward over the earlier ones, and the encoder
reads forward in time up to t_L, so that it ends where z_0 sits as the backward one ends at t_0.
The paper's extrapolation set-up (its code: lib/latent_ode.py, split_data_extrap) also starts
the decoder after the observed half, at the first time to predict (a target's time, which the
model is not given here), with the backward encoder's state. ODE-RNN forecasts from its state
at t_L too; anchored at t_0, the decoder carries z over the whole observed half before it
reaches the extrapolated one, and extrapolated worse than ODE-RNN here (periodic_latent_ode's
header).

RNN-VAE (`rnn_vae`, the paper's baseline, its lib/rnn_baselines.py): the same ELBO with a GRU
encoder fed [x_i o_i, o_i, |Δt|] (o the observed flag) and a GRU decoder from z_0 that reads its
own previous prediction and the gap, x̂_i = W h_i + b; `z0_at` as above. Deviations: the
encoder reads every point with its flag instead of holding its state at unobserved ones, and
z_0 and x̂ are one linear layer each (the paper: 100-unit MLPs).

`latent_ode` and `rnn_vae` return {"y": x̂ [B, T, D], "kl": 2 σ_obs² KL [B]}: the "irregular" task
(zoo.tasks.irregular) adds kl / (T D) to the mean squared error, which is the negative ELBO
times 2 σ_obs² / (T D) up to a constant. Deviations: no KL annealing, no Poisson process of
observation times, one linear decoder layer, the likelihood over every point of a training
series (the paper's interpolation and extrapolation set-ups each train on their own targets).

Every series has its own times, so each gap (t_{i-1}, t_i) is solved as one batched ODE over
s in [0, 1]: dh/ds = Δt f(h) with Δt [B] per series, the same solution at s = 1 as h(t_i)
(autonomous fields, as the paper's). A zero gap leaves h unchanged; a negative one runs back
in time (the encoder, and the decoder before its anchor). Solver, steps (`dt0` in units of one
gap) and adjoint are the family's (zoo.models.node.SolverConfig); NFE is the sum over the gaps
of the forward solves.

Axis legend: B series, T time points, D values per point, H hidden units, Z latent dimensions.
Inputs x = {"t": [B, T], "values": [B, T, D] (zero where unobserved), "observed": [B, T]}.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp

import zoo.models.layers as L
import zoo.models.node as N
import zoo.models.recurrent as R
from zoo.errors import ConfigError
from zoo.models.core import Model, ModelEntry


@dataclasses.dataclass(frozen=True)
class ODERNNConfig(N.SolverConfig):
    num_outputs: int | None = None   # D; None: taken from the dataset
    solver: Literal["tsit5", "dopri5", "euler", "rk4"] = "rk4"
    dt0: float | None = 0.5          # in units of one gap: 2 RK4 steps per gap
    hidden_size: int = 20            # H, the ODE-RNN's state
    width: int = 32                  # the vector fields' hidden layers
    depth: int = 1
    activation: str = "tanh"


@dataclasses.dataclass(frozen=True)
class LatentODEConfig(ODERNNConfig):
    latent_dim: int = 6              # Z
    obs_std: float = 0.01            # σ_obs of the Gaussian likelihood (the paper's toy runs: 0.01)
    z0_at: Literal["first", "last_observed"] = "first"   # the time z0 is the state at (docstring)


@dataclasses.dataclass(frozen=True)
class RNNVAEConfig:
    """The RNN-VAE baseline: the latent ODE's encoder and decoder each a GRU fed the time gaps."""
    num_outputs: int | None = None   # D; None: taken from the dataset
    hidden_size: int = 20            # H, the encoder GRU's state
    latent_dim: int = 6              # Z, the decoder GRU's state
    obs_std: float = 0.01
    z0_at: Literal["first", "last_observed"] = "first"


def _inputs(name: str, x) -> tuple[jax.Array, jax.Array, jax.Array]:
    if not (isinstance(x, dict) and {"t", "values", "observed"} <= set(x)):
        raise ConfigError(f"{name} takes irregular series {{'t', 'values', 'observed'}} (data irregular_periodic)")
    return x["t"], x["values"], x["observed"]


def gap_field(f: N.Field) -> N.Field:
    """dh/ds = Δt f(h) over s in [0, 1]; args (field params, Δt [B])."""
    def g(args, s, h):
        params, dt = args
        return dt[:, None].astype(h.dtype) * f(params, s, h)
    return g


def evolve(cfg: ODERNNConfig, field: N.Field, params, h: jax.Array, dt: jax.Array):
    """h [B, H] carried over gaps dt [B]: (h at the gaps' ends, NFE)."""
    hs, nfe = N.odeint(cfg, field, (params, dt), h, jnp.array([0.0, 1.0], h.dtype))
    return hs[-1], nfe


def ode_rnn(cfg: ODERNNConfig, params: dict, t, values, observed, *, reverse: bool = False):
    """The ODE-RNN over [B, T] points (backwards in time when reverse). Returns (states before
    each update [B, T, H] in time order, the state after the last point read [B, H], NFE)."""
    field = gap_field(N.mlp_field(cfg.activation, 1, False))
    gru = R.make_cell("gru")
    xs = [jnp.swapaxes(a, 0, 1) for a in (t, values, observed)]          # time-major
    dts = jnp.diff(xs[0], axis=0, prepend=xs[0][:1])                       # [T, B], Δt_0 = 0
    if reverse:
        xs = [a[::-1] for a in xs]
        dts = -dts[::-1]
        dts = jnp.concatenate([jnp.zeros_like(dts[:1]), dts[:-1]])        # gaps to the next point back

    def step(carry, inputs):
        h, nfe = carry
        dt, x, seen = inputs
        h, n = evolve(cfg, field, params["field"], h, dt)
        new, _ = gru(params["cell"], h, x)
        return (jnp.where(seen[:, None] > 0, new, h), nfe + n), h

    h0 = jnp.zeros((t.shape[0], cfg.hidden_size), values.dtype)
    (h, nfe), before = jax.lax.scan(step, (h0, jnp.zeros((), jnp.int32)), (dts, xs[1], xs[2]))
    before = before[::-1] if reverse else before
    return jnp.swapaxes(before, 0, 1), h, nfe


def anchor_time(cfg: LatentODEConfig | RNNVAEConfig, t: jax.Array, observed: jax.Array) -> jax.Array:
    """[B]: the time z0 is the latent state at, t_0 or the series' last observed time."""
    if cfg.z0_at == "first":
        return t[:, 0]
    return jnp.max(jnp.where(observed > 0, t, t[:, :1]), axis=1)


def _scan_gaps(step, z0: jax.Array, times: jax.Array, anchor: jax.Array):
    """z carried by step(z, Δt [B]) -> (z, NFE) over times [B, T] in the order given, from
    z(anchor) = z0: (z at each time [B, T, Z], NFE)."""
    def body(carry, dt):
        z, nfe = carry
        z, n = step(z, dt)
        return (z, nfe + n), z

    dts = jnp.diff(times, axis=1, prepend=anchor[:, None]).T                 # [T, B]
    (_, nfe), zs = jax.lax.scan(body, (z0, jnp.zeros((), jnp.int32)), dts)
    return jnp.swapaxes(zs, 0, 1), nfe


def decode(step, z0: jax.Array, t: jax.Array, anchor: jax.Array, *, both_ways: bool):
    """z(t_i) [B, T, Z] from z(anchor) = z0 [B, Z], one gap at a time: forward over the times
    after the anchor and, when both_ways, backward over those before it; and the NFE. The times
    on the other side of the anchor are clamped to it (zero gaps: z stays z0 there)."""
    a = anchor[:, None]
    zs, nfe = _scan_gaps(step, z0, jnp.maximum(t, a), anchor)
    if not both_ways:
        return zs, nfe
    back, nfe_back = _scan_gaps(step, z0, jnp.minimum(t, a)[:, ::-1], anchor)
    return jnp.where((t >= a)[..., None], zs, back[:, ::-1]), nfe + nfe_back


def posterior(to_z0: dict, h: jax.Array, key, train: bool):
    """q(z0 | x) = N(μ, σ²) from the encoder's state h [B, H]: (z0 [B, Z], KL(q || N(0, I)) [B]);
    z0 sampled when training with a key, μ otherwise."""
    mu, log_sigma = jnp.split(L.dense(to_z0, h), 2, -1)                      # [B, Z] each
    z0 = mu + jnp.exp(log_sigma) * jax.random.normal(key, mu.shape) if train and key is not None else mu
    return z0, 0.5 * jnp.sum(mu ** 2 + jnp.exp(2 * log_sigma) - 1 - 2 * log_sigma, -1)


def rnn_encode(cell: dict, t: jax.Array, values: jax.Array, observed: jax.Array, read: jax.Array, *,
               reverse: bool) -> jax.Array:
    """The RNN-VAE's encoder: a GRU over the points where read [B, T] (last to first when
    reverse), each read as [x_i o_i, o_i, |Δt|] (o: observed; Δt the gap to the point before it
    in reading order, 0 at the first); its state held over the others. Returns [B, H]."""
    seen = observed[..., None].astype(values.dtype)
    xs, ts, keep = [jnp.swapaxes(a, 0, 1) for a in (jnp.concatenate([values * seen, seen], -1), t, read)]  # time-major
    if reverse:
        xs, ts, keep = xs[::-1], ts[::-1], keep[::-1]
    gaps = jnp.abs(jnp.diff(ts, axis=0, prepend=ts[:1]))[..., None].astype(values.dtype)
    h0 = R.zero_carry("gru", t.shape[0], cell["W_hh"].shape[0], values.dtype)
    h, _ = R.scan_layer("gru", cell, jnp.concatenate([xs, gaps], -1), h0, keep[..., None])
    return h


def rnn_step(decoder: dict):
    """The RNN-VAE's decoder step over a gap Δt [B]: the GRU reads [x̂, Δt], x̂ = W h + b its
    own prediction at the previous time (Rubanova et al.'s RNN-VAE feeds its output back). One
    step per point, the first from z0 over a zero gap."""
    gru = R.make_cell("gru")

    def step(h, dt):
        x = jnp.concatenate([L.dense(decoder["out"], h), dt[:, None].astype(h.dtype)], -1)
        return gru(decoder["cell"], h, x)[0], jnp.zeros((), jnp.int32)
    return step


def _checked(name: str, cfg: ODERNNConfig | RNNVAEConfig) -> None:
    if cfg.num_outputs is None:
        raise ConfigError(f"{name} needs num_outputs (the trainer takes it from the dataset)")


def _encoder_init(key, cfg: ODERNNConfig, d: int) -> dict:
    k_cell, k_field = jax.random.split(key)
    return {"cell": R.cell_init(k_cell, "gru", d, cfg.hidden_size),
            "field": N.mlp_field_init(k_field, cfg.hidden_size, cfg.width, cfg.depth, time_dependent=False,
                                      init_std=None)}


def build_ode_rnn(name: str, cfg: ODERNNConfig) -> Model:
    _checked(name, cfg)

    def init(key, x):
        _, values, _ = _inputs(name, x)
        k_enc, k_out = jax.random.split(key)
        return {**_encoder_init(k_enc, cfg, values.shape[-1]), "out": L.dense_init(k_out, cfg.hidden_size,
                                                                                   cfg.num_outputs)}

    def apply_with_stats(params, x, *, key=None, train=False):
        before, _, nfe = ode_rnn(cfg, params, *_inputs(name, x))
        return L.dense(params["out"], before), {"nfe": nfe.astype(jnp.float32)}

    return Model.with_stats(init, apply_with_stats)


def build_latent_ode(name: str, cfg: LatentODEConfig) -> Model:
    _checked(name, cfg)
    field = gap_field(N.mlp_field(cfg.activation, 1, False))

    def init(key, x):
        _, values, _ = _inputs(name, x)
        k_enc, k_z, k_dec, k_out = jax.random.split(key, 4)
        return {"encoder": {**_encoder_init(k_enc, cfg, values.shape[-1]),
                            "to_z0": L.dense_init(k_z, cfg.hidden_size, 2 * cfg.latent_dim)},
                "decoder": {"field": N.mlp_field_init(k_dec, cfg.latent_dim, cfg.width, cfg.depth,
                                                      time_dependent=False, init_std=None),
                            "out": L.dense_init(k_out, cfg.latent_dim, cfg.num_outputs)}}

    def apply_with_stats(params, x, *, key=None, train=False):
        t, values, observed = _inputs(name, x)
        anchor, forward = anchor_time(cfg, t, observed), cfg.z0_at != "first"
        # the encoder reads towards z0's time and ends there: times past it are clamped to it
        # (zero gaps, nothing observed), so its last state is the one at the anchor
        t_read = jnp.minimum(t, anchor[:, None]) if forward else t
        _, h, nfe_enc = ode_rnn(cfg, params["encoder"], t_read, values, observed, reverse=not forward)
        z0, kl = posterior(params["encoder"]["to_z0"], h, key, train)
        step = lambda z, dt: evolve(cfg, field, params["decoder"]["field"], z, dt)   # noqa: E731
        zs, nfe_dec = decode(step, z0, t, anchor, both_ways=forward)
        outputs = {"y": L.dense(params["decoder"]["out"], zs), "kl": 2 * cfg.obs_std ** 2 * kl}
        return outputs, {"nfe": (nfe_enc + nfe_dec).astype(jnp.float32), "kl": kl.mean()}

    return Model.with_stats(init, apply_with_stats)


def build_rnn_vae(name: str, cfg: RNNVAEConfig) -> Model:
    _checked(name, cfg)

    def init(key, x):
        _, values, _ = _inputs(name, x)
        d = values.shape[-1]
        k_enc, k_z, k_dec, k_out = jax.random.split(key, 4)
        return {"encoder": {"cell": R.cell_init(k_enc, "gru", d + 2, cfg.hidden_size),
                            "to_z0": L.dense_init(k_z, cfg.hidden_size, 2 * cfg.latent_dim)},
                "decoder": {"cell": R.cell_init(k_dec, "gru", d + 1, cfg.latent_dim),
                            "out": L.dense_init(k_out, cfg.latent_dim, cfg.num_outputs)}}

    def apply_with_stats(params, x, *, key=None, train=False):
        t, values, observed = _inputs(name, x)
        anchor, forward = anchor_time(cfg, t, observed), cfg.z0_at != "first"
        # as latent_ode's encoder, towards z0's time, ending there: no point past it is read
        read = t <= anchor[:, None] if forward else jnp.ones_like(t, bool)
        h = rnn_encode(params["encoder"]["cell"], t, values, observed, read, reverse=not forward)
        z0, kl = posterior(params["encoder"]["to_z0"], h, key, train)
        zs, _ = decode(rnn_step(params["decoder"]), z0, t, anchor, both_ways=forward)
        outputs = {"y": L.dense(params["decoder"]["out"], zs), "kl": 2 * cfg.obs_std ** 2 * kl}
        return outputs, {"kl": kl.mean()}

    return Model.with_stats(init, apply_with_stats)


MODELS = {
    "ode_rnn": ModelEntry(ODERNNConfig, build_ode_rnn, inputs=("irregular",)),
    "latent_ode": ModelEntry(LatentODEConfig, build_latent_ode, inputs=("irregular",)),
    "rnn_vae": ModelEntry(RNNVAEConfig, build_rnn_vae, inputs=("irregular",)),
}

"""Neural ordinary differential equations (Chen, Rubanova, Bettencourt & Duvenaud 2018),
solved with diffrax (Kidger 2021).

A vector field f_θ defines the dynamics of a hidden state y:

    dy/dt = f_θ(t, y),    y(t0) = y0,    y(t) = y0 + ∫_{t0}^{t} f_θ(s, y(s)) ds

Vector fields are pure functions `f(params, t, y)`:

    mlp:   f(t, y) = W_L σ(... σ(W_1 [y^p ; t] + b_1) ...) + b_L           y: [..., D]
           (p = `input_power`: torchdiffeq's spiral demo feeds y^3; t only if time_dependent)
    conv:  f(t, y) = GN(conv3([relu(GN(conv3([relu(GN(y)) ; t]))) ; t]))   y: [B, L, C]
           Chen et al.'s ODE-Net block: GroupNorm, ReLU and "ConcatConv" layers that see t
           as one more constant input channel.

Solvers (config `solver`): tsit5, dopri5 (adaptive: PID step-size control with `rtol`,
`atol`, first step `dt0` or picked automatically when None) and euler, rk4 (fixed step `dt0`).
Gradients (config `adjoint`):
    recursive_checkpoint: backpropagate through the solver's own operations (discretise then
        optimise) with binomial checkpointing of the steps: exact gradients of the computed
        solution, O(log(max_steps)) memory of checkpoints.
    backsolve: the adjoint method of Chen et al. (optimise then discretise): solve
        a(t) = ∂L/∂y(t) backwards, da/dt = -aᵀ ∂f/∂y, ∂L/∂θ = ∫ aᵀ ∂f/∂θ dt, re-solving y(t)
        backwards alongside: O(1) memory, gradients accurate to the solver tolerance.

Models:
    odenet  x [B, L] or [B, L, 1] -> conv encoder (second conv stride 2) -> h(0) [B, L/2, C]
            -> ODE block h(t1), t1 = 1 -> GroupNorm, ReLU, readout (flatten or mean) -> logits
            [B, K]. The batch is one ODE state, as in Chen et al.
    node    x = {"y0": [B, D], "t": [B, T]} -> y(t) [B, T, D], y(t[:, 0]) = y0. Each example
            is solved on its own time grid (vmap), so step-size control sees one trajectory.
            Or x [B, D] -> h(t1) of the batch as one ODE state (Dupont et al.'s toy tasks),
            read out by a linear layer to [B, K] (`num_outputs`) or projected onto its first D
            coordinates [B, D] (None: the flow itself must map x to the target).

Augmented Neural ODEs (Dupont, Doucet & Teh 2019, "Augmented Neural ODEs", NeurIPS):
`augment_dim` = A > 0 solves in R^(D+A) from h(0) = [y0 ; 0_A] and reads the first D
coordinates (or all D+A by the linear readout). Without it a flow is a homeomorphism of R^D
whose trajectories cannot cross, so a NODE cannot map x to -x in one dimension (the best
monotone fit of -x on U[-1, 1] is the constant 0, MSE 1/3) nor pull a ball out of the sphere
around it; the extra dimensions let them pass each other, and the simpler flow needs fewer
function evaluations.

`apply` returns `(outputs, {"nfe": nfe})`. NFE counts the vector-field evaluations of the
forward solve, from diffrax's step count: num_steps × evaluations per step (euler 1, rk4 4,
tsit5/dopri5 6, reusing the last stage of a step as the first of the next) + the first
stage of tsit5/dopri5 (1); this equals a count of the calls made (tested). Rejected steps are
included; not counted: the automatic first-step choice when dt0 is None (2 evaluations) and
the backward pass (about one more solve for backsolve).
For `node` it is the mean over the batch's trajectories.

Axis legend: B batch, L length, C channels, D state features, T time points, K outputs.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np

import zoo.models.layers as L
from zoo.errors import ConfigError
from zoo.models.core import Model, ModelEntry

Field = Callable[[dict, jax.Array, jax.Array], jax.Array]   # f(params, t, y) -> dy/dt


# ----------------------------------------------------------------------------- solvers
@functools.cache
def solvers() -> dict:
    """Solver name -> diffrax solver class. diffrax is imported on first use, so the other
    families never pay for it (about half a second of start-up)."""
    import diffrax

    class RK4(diffrax.AbstractERK):
        """The classic fourth-order Runge-Kutta method; no error estimate, so use a fixed step."""
        tableau: ClassVar[diffrax.ButcherTableau] = diffrax.ButcherTableau(
            a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
            b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]), b_error=np.zeros(4),
            c=np.array([0.5, 0.5, 1.0]))
        interpolation_cls: ClassVar[Callable] = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

        def order(self, terms):
            return 4

    return {"euler": diffrax.Euler, "rk4": RK4, "tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5}


EVALS_PER_STEP = {"euler": 1, "rk4": 4, "tsit5": 6, "dopri5": 6}
ADAPTIVE = ("tsit5", "dopri5")


@dataclasses.dataclass(frozen=True)
class SolverConfig:
    solver: Literal["tsit5", "dopri5", "euler", "rk4"] = "tsit5"
    rtol: float = 1e-3
    atol: float = 1e-6
    dt0: float | None = None  # first step (adaptive; None: automatic) or the step (euler, rk4)
    max_steps: int = 4096
    adjoint: Literal["recursive_checkpoint", "backsolve"] = "recursive_checkpoint"

    def __post_init__(self):
        if self.solver not in ADAPTIVE and self.dt0 is None:
            raise ConfigError(f"solver {self.solver!r} takes fixed steps: set dt0")


def odeint(cfg: SolverConfig, field: Field, params, y0, ts: jax.Array):
    """Solve dy/dt = field(params, t, y) from y(ts[0]) = y0; the states at `ts` and the NFE.

    ts: [T] increasing or decreasing. Returns (ys [T, *y0.shape], nfe int32 scalar).
    """
    import diffrax

    adaptive = cfg.solver in ADAPTIVE
    controller = (diffrax.PIDController(rtol=cfg.rtol, atol=cfg.atol) if adaptive
                  else diffrax.ConstantStepSize())
    adjoint = (diffrax.BacksolveAdjoint() if cfg.adjoint == "backsolve"
               else diffrax.RecursiveCheckpointAdjoint())
    dt0 = None if cfg.dt0 is None else jnp.where(ts[-1] >= ts[0], cfg.dt0, -cfg.dt0)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, args: field(args, t, y)), solvers()[cfg.solver](),
        t0=ts[0], t1=ts[-1], dt0=dt0, y0=y0, args=params, saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=controller, adjoint=adjoint, max_steps=cfg.max_steps)
    nfe = sol.stats["num_steps"] * EVALS_PER_STEP[cfg.solver] + int(adaptive)
    return sol.ys, nfe


# ----------------------------------------------------------------------------- vector fields
def with_time(h: jax.Array, t: jax.Array) -> jax.Array:
    """[..., F] -> [..., F + 1]: t appended as a constant feature/channel."""
    return jnp.concatenate([h, jnp.broadcast_to(t, h.shape[:-1] + (1,)).astype(h.dtype)], -1)


def mlp_field_init(key, d: int, width: int, depth: int, *, time_dependent: bool,
                   init_std: float | None) -> dict:
    """`depth` hidden layers of `width`; init_std: N(0, init_std²) weights and zero biases
    (torchdiffeq's demo, 0.1), or LeCun normal when None."""
    widths = [d + int(time_dependent)] + [width] * depth + [d]
    keys = jax.random.split(key, len(widths) - 1)
    layers = [L.dense_init(k, a, b) for k, a, b in zip(keys, widths[:-1], widths[1:])]
    if init_std is not None:
        for k, layer in zip(keys, layers):
            layer["kernel"] = init_std * jax.random.normal(k, layer["kernel"].shape)
    return {"layers": layers}


def mlp_field(activation: str, input_power: int, time_dependent: bool) -> Field:
    act = L.activation(activation)

    def f(params, t, y):
        h = y ** input_power if input_power != 1 else y
        for i, layer in enumerate(params["layers"]):
            if i == 0 and time_dependent:
                h = with_time(h, t)
            h = L.dense(layer, h if i == 0 else act(h))
        return h

    return f


def conv1d(params: dict, x: jax.Array) -> jax.Array:
    """"SAME" stride-1 convolution x: [B, L, C_in] -> [B, L, C_out] as one matmul over the
    k shifted copies of x (kernel [k, C_in, C_out], as zoo.models.layers.conv): XLA:CPU runs
    this several times faster than its convolution at ODE-Net sizes."""
    k, c_in, c_out = params["kernel"].shape
    left = (k - 1) // 2
    padded = jnp.pad(x, ((0, 0), (left, k - 1 - left), (0, 0)))
    shifted = jnp.concatenate([padded[:, i:i + x.shape[1]] for i in range(k)], -1)  # [B, L, k C_in]
    return L.dense({"kernel": params["kernel"].reshape(k * c_in, c_out), "bias": params["bias"]}, shifted)


def conv_field_init(key, channels: int, kernel_size: int, norm: bool) -> dict:
    k1, k2 = jax.random.split(key)
    params = {"conv1": L.conv_init(k1, (kernel_size,), channels + 1, channels),
              "conv2": L.conv_init(k2, (kernel_size,), channels + 1, channels)}
    if norm:
        params.update({f"norm{i}": L.layernorm_init(channels) for i in (1, 2, 3)})
    return params


def conv_field(num_groups: int) -> Field:
    def norm(params, name, h):
        return L.groupnorm(params[name], h, num_groups=num_groups) if name in params else h

    def f(params, t, y):
        h = jax.nn.relu(norm(params, "norm1", y))
        h = jax.nn.relu(norm(params, "norm2", conv1d(params["conv1"], with_time(h, t))))
        return norm(params, "norm3", conv1d(params["conv2"], with_time(h, t)))

    return f


# ----------------------------------------------------------------------------- odenet
@dataclasses.dataclass(frozen=True)
class ODENetConfig(SolverConfig):
    num_outputs: int | None = None  # None: taken from the dataset
    solver: Literal["tsit5", "dopri5", "euler", "rk4"] = "rk4"   # 2 RK4 steps: 8 evaluations
    dt0: float | None = 0.5
    channels: int = 32
    kernel_size: int = 3
    encoder_kernel_size: int = 5
    num_groups: int = 8
    field_norm: bool = True      # GroupNorm inside the vector field, as Chen et al.
    t1: float = 1.0
    readout: Literal["flatten", "mean"] = "flatten"


def build_odenet(name: str, cfg: ODENetConfig) -> Model:
    if cfg.num_outputs is None:
        raise ConfigError("odenet needs num_outputs (the trainer takes it from the dataset)")
    if cfg.channels % cfg.num_groups:
        raise ConfigError(f"odenet num_groups={cfg.num_groups} must divide channels={cfg.channels}")
    f = conv_field(cfg.num_groups)
    ts = jnp.array([0.0, cfg.t1])

    def norm(p, h):
        return L.groupnorm(p, h, num_groups=cfg.num_groups)

    def encode(params, x):
        h = x[..., None] if x.ndim == 2 else x                              # [B, L, 1]
        h = jax.nn.relu(norm(params["norm1"], L.conv(params["conv1"], h)))
        return L.conv(params["conv2"], h, strides=2)                        # [B, L/2, C]

    def features(params, h):
        h = jax.nn.relu(norm(params["norm"], h))
        return h.mean(1) if cfg.readout == "mean" else h.reshape(h.shape[0], -1)

    def init(key, x):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        c, c_in = cfg.channels, 1 if x.ndim == 2 else x.shape[-1]
        encoder = {"conv1": L.conv_init(k1, (cfg.encoder_kernel_size,), c_in, c),
                   "norm1": L.layernorm_init(c), "conv2": L.conv_init(k2, (cfg.kernel_size,), c, c)}
        h = jax.eval_shape(encode, encoder, x)
        head = {"norm": L.layernorm_init(c)}
        d = jax.eval_shape(features, head, h).shape[-1]
        head["dense"] = L.dense_init(k4, d, cfg.num_outputs)
        return {"encoder": encoder, "field": conv_field_init(k3, c, cfg.kernel_size, cfg.field_norm), "head": head}

    def apply_with_stats(params, x, *, key=None, train=False):
        h0 = encode(params["encoder"], x)
        hs, nfe = odeint(cfg, f, params["field"], h0, ts.astype(h0.dtype))
        logits = L.dense(params["head"]["dense"], features(params["head"], hs[-1]))
        return logits, {"nfe": nfe.astype(jnp.float32)}

    return Model.with_stats(init, apply_with_stats)


# ----------------------------------------------------------------------------- node
@dataclasses.dataclass(frozen=True)
class NODEConfig(SolverConfig):
    augment_dim: int = 0         # A: zeros appended to the state (ANODE; 0: a plain NODE)
    num_outputs: int | None = None  # x [B, D] only: a linear readout of h(t1); None: its first D coords
    t1: float = 1.0              # x [B, D] only: the flow runs over [0, t1]
    width: int = 50
    depth: int = 1               # hidden layers of the MLP vector field
    activation: str = "tanh"
    input_power: int = 1         # the field sees y ** input_power (torchdiffeq's spiral demo: 3)
    time_dependent: bool = False
    init_std: float | None = None  # N(0, init_std²) weights (torchdiffeq's demo: 0.1); None: LeCun


def augment(y0: jax.Array, augment_dim: int) -> jax.Array:
    """[..., D] -> [..., D + augment_dim]: ANODE's zeros appended to the initial state."""
    return jnp.pad(y0, [(0, 0)] * (y0.ndim - 1) + [(0, augment_dim)])


def build_node(name: str, cfg: NODEConfig) -> Model:
    f = mlp_field(cfg.activation, cfg.input_power, cfg.time_dependent)

    def init(key, x):
        d = (x["y0"] if isinstance(x, dict) else x).shape[-1]
        k_field, k_head = jax.random.split(key)
        params = {"field": mlp_field_init(k_field, d + cfg.augment_dim, cfg.width, cfg.depth,
                                          time_dependent=cfg.time_dependent, init_std=cfg.init_std)}
        if cfg.num_outputs is not None and not isinstance(x, dict):
            params["head"] = L.dense_init(k_head, d + cfg.augment_dim, cfg.num_outputs)
        return params

    def trajectories(params, x):
        d = x["y0"].shape[-1]
        solve = lambda y0, ts: odeint(cfg, f, params["field"], augment(y0, cfg.augment_dim), ts)
        hs, nfe = jax.vmap(solve)(x["y0"], x["t"].astype(x["y0"].dtype))   # [B, T, D + A], [B]
        return hs[..., :d], nfe.mean()

    def flow(params, x):
        ts = jnp.array([0.0, cfg.t1], x.dtype)
        hs, nfe = odeint(cfg, f, params["field"], augment(x, cfg.augment_dim), ts)   # [2, B, D + A]
        if "head" in params:
            return L.dense(params["head"], hs[-1]), nfe                            # [B, K]
        return hs[-1, :, :x.shape[-1]], nfe                                         # [B, D]

    def apply_with_stats(params, x, *, key=None, train=False):
        y, nfe = trajectories(params, x) if isinstance(x, dict) else flow(params, x)
        return y, {"nfe": nfe.astype(jnp.float32)}

    return Model.with_stats(init, apply_with_stats)


def node_path(cfg: NODEConfig, params: dict, x: jax.Array, ts: jax.Array) -> jax.Array:
    """The augmented state h(t) [T, B, D + A] of a flow-mode `node` (x [B, D]) at times ts [T]:
    what a figure of its trajectories draws."""
    f = mlp_field(cfg.activation, cfg.input_power, cfg.time_dependent)
    return odeint(cfg, f, params["field"], augment(x, cfg.augment_dim), ts)[0]


MODELS = {
    "odenet": ModelEntry(ODENetConfig, build_odenet, symmetry="shift"),
    "node": ModelEntry(NODEConfig, build_node, figure="zoo.figures.ode:node_figure"),
}

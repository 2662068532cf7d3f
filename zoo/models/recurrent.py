"""Recurrent networks: Elman RNN, LSTM and GRU cells as pure functions, driven by `lax.scan`.

Axis legend: B batch, T time, D input features, H hidden units, G = k*H gate pre-activations
(k = 1 RNN, 4 LSTM, 3 GRU), K directions (1, or 2 when bidirectional), V vocabulary.

Cells, `cell(params, carry, x_t) -> (carry, y_t)`, x_t: [B, D], y_t = h_t: [B, H]. Every cell
is `pointwise(carry, x_t W_ih + b, h_{t-1} W_hh + b_h)`: one fused matmul per side for all
gates (gate order as PyTorch), so the input side can be hoisted out of the time loop.

    Elman (1990)                      h_t = tanh(x_t W_ih + b + h_{t-1} W_hh)
    LSTM (Hochreiter & Schmidhuber 1997; forget gate: Gers et al. 2000), carry (h, c):
        [i, f, g, o] = x_t W_ih + b + h_{t-1} W_hh          W_ih: [D, 4H], W_hh: [H, 4H]
        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
        h_t = sigmoid(o) * tanh(c_t)
    GRU (Cho et al. 2014), reset gate applied after the hidden matmul (PyTorch, cuDNN, flax):
        [a_r, a_z, a_n] = x_t W_ih + b,   [u_r, u_z, u_n] = h_{t-1} W_hh
        r = sigmoid(a_r + u_r),  z = sigmoid(a_z + u_z)
        n = tanh(a_n + r * (u_n + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}

Conventions against the trusted implementations (tested to 1e-5 with copied weights):
- PyTorch stores weight_ih [G, D] and two biases; here W_ih = weight_ih.T, W_hh = weight_hh.T,
  b = b_ih + b_hh (LSTM, RNN; GRU r and z parts), GRU b_hn = b_hh[2H:]. PyTorch's LSTM
  state is (h, c) like ours; flax.linen's LSTMCell carry is (c, h).
- Initialisation is PyTorch's: every weight and bias U(-1/sqrt(H), 1/sqrt(H)).

Layers scan time-major [T, B, .]. Variable lengths: step t of example b is real when
t < lengths[b]; on padding steps the carry is held and y_t = 0, so padding never changes a
real step's output, the final state is the state after the last real step, and the reverse
direction starts from its initial state at the last real step. Stacked layers feed
concat(forward, reverse) outputs upward, with dropout between layers (not after the last).

Language models over these layers: zoo.models.recurrent_lm.

Two paths compute the same function: `impl="scan"` (the default) scans the cell itself
per direction with autodiff; `impl="fused"` (zoo.models.recurrent_scan) hoists x W_ih + b out
of the loop, runs all directions in one scan and has a hand-written backward pass. They agree
to float32 rounding (tested). On a 2-core CPU the scan path trains faster on every
benchmark row (bench_recurrent.py): a loop fusion that dynamic-slices a precomputed [T, B, G]
projection vectorises badly on XLA CPU, while x_t W_ih inside the loop is one more small
matmul.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp

import zoo.models.layers as L
import zoo.models.recurrent_scan as recurrent_scan
from zoo.errors import ConfigError
from zoo.models.core import Model, ModelEntry

# ----------------------------------------------------------------------------- cells
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def rnn_pointwise(h, a, u):
    """Elman: h_t = tanh(a + u); a = x_t W_ih + b, u = h_{t-1} W_hh, each a 1-tuple [B, H]."""
    h = jnp.tanh(a[0] + u[0])
    return h, h


def lstm_pointwise(carry, a, u):
    """LSTM gate math; a, u: 4-tuples (i, f, g, o) of [B, H] pre-activations; carry (h, c)."""
    _, c = carry
    i, f, g, o = (a_k + u_k for a_k, u_k in zip(a, u))
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h


def gru_pointwise(h, a, u):
    """GRU gate math; a, u: 3-tuples (r, z, n) of [B, H]; u_n already includes b_hn."""
    a_r, a_z, a_n = a
    u_r, u_z, u_n = u
    r, z = jax.nn.sigmoid(a_r + u_r), jax.nn.sigmoid(a_z + u_z)
    n = jnp.tanh(a_n + r * u_n)
    h = (1.0 - z) * n + z * h
    return h, h


POINTWISE = {"rnn": rnn_pointwise, "lstm": lstm_pointwise, "gru": gru_pointwise}


def gates(v, kind):
    """[..., G] -> tuple of GATES[kind] arrays [..., H] (the pointwise functions take tuples:
    XLA CPU vectorises a fusion badly when it reads several slices of one buffer)."""
    return tuple(jnp.split(v, GATES[kind], axis=-1))


def recurrent_bias(params):
    """b_h added to h W_hh: [0, 0, b_hn] for the GRU, None for the others."""
    if "b_hn" not in params:
        return None
    b_hn = params["b_hn"]
    return jnp.concatenate([jnp.zeros(2 * b_hn.shape[-1], b_hn.dtype), b_hn], -1)


def _broadcast(b, like):
    """b: [G] viewed as [1, ..., 1, G] to add to `like` (implicit rank promotion is an error)."""
    return b.reshape((1,) * (like.ndim - 1) + b.shape)


def project(params, x):
    """Input side of every gate, x W_ih + b: [..., D] -> [..., G]."""
    a = x @ params["W_ih"].astype(x.dtype)
    return a + _broadcast(params["b"].astype(x.dtype), a)


def recur(params, h):
    """Hidden side of every gate, h W_hh + b_h: [..., H] -> [..., G]."""
    u = h @ params["W_hh"].astype(h.dtype)
    b_h = recurrent_bias(params)
    return u if b_h is None else u + _broadcast(b_h.astype(h.dtype), u)


def hidden(carry):
    """The output h of a carry: h for RNN/GRU, h from (h, c) for the LSTM."""
    return carry[0] if isinstance(carry, tuple) else carry


def make_cell(kind: str) -> Callable:
    """`cell(params, carry, x_t) -> (carry, y_t)` of kind "rnn", "lstm" or "gru"."""
    pointwise = POINTWISE[kind]

    def cell(params, carry, x_t):
        return pointwise(carry, gates(project(params, x_t), kind), gates(recur(params, hidden(carry)), kind))

    cell.__doc__ = f"{kind} cell (equations in the module docstring)."
    return cell


REMEMBER_GATE = {"lstm": 1, "gru": 1}  # the gate whose opening keeps the carry: LSTM f, GRU z


def cell_init(key, kind: str, d_in: int, d_hidden: int, remember_bias: float = 0.0) -> dict:
    """PyTorch's initialisation: U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias, plus
    `remember_bias` on the LSTM forget gate / GRU update gate (Jozefowicz et al. 2015: 1.0)."""
    g = GATES[kind] * d_hidden
    k_ih, k_hh, k_b, k_bhn = jax.random.split(key, 4)
    params = {"W_ih": L.fan_in_uniform(k_ih, (d_in, g), d_hidden),
              "W_hh": L.fan_in_uniform(k_hh, (d_hidden, g), d_hidden),
              "b": L.fan_in_uniform(k_b, (g,), d_hidden)}
    if kind in REMEMBER_GATE and remember_bias:
        gate = REMEMBER_GATE[kind]
        params["b"] = params["b"].at[gate * d_hidden:(gate + 1) * d_hidden].add(remember_bias)
    if kind == "gru":
        params["b_hn"] = L.fan_in_uniform(k_bhn, (d_hidden,), d_hidden)
    return params


def zero_carry(kind: str, batch: int, d_hidden: int, dtype=jnp.float32):
    h = jnp.zeros((batch, d_hidden), dtype)
    return (h, h) if kind == "lstm" else h


# ----------------------------------------------------------------------------- layers
def masked(step):
    """`step(carry, *inputs) -> (carry, y)` as `(carry, *inputs, m) -> (carry, y)` that holds the
    carry and emits zeros on padding steps (m = 0); m: [B, 1] or None."""
    def masked_step(carry, *inputs):
        *inputs, m = inputs
        new, y = step(carry, *inputs)
        if m is None:
            return new, y
        new = jax.tree.map(lambda n, o: jnp.where(m, n, o), new, carry)
        return new, jnp.where(m, y, jnp.zeros_like(y))
    return masked_step


def scan_layer(kind, params, xs, carry, mask=None, *, reverse=False, unroll=1):
    """One direction, scan path: the cell scanned over time. xs: [T, B, D], mask:
    [T, B, 1] bool or None. Returns (final carry, ys: [T, B, H])."""
    cell = make_cell(kind)
    step = masked(lambda carry, x_t: cell(params, carry, x_t))
    return jax.lax.scan(lambda carry, inputs: step(carry, *inputs), carry, (xs, mask),
                        reverse=reverse, unroll=unroll)


def directions_layer(kind, dirs, xs, carries, mask, *, impl, unroll):
    """All directions of one layer. dirs: list of K cell params, carries: list of K carries.

    Returns (list of K final carries, ys: [T, B, K*H]); direction 1 runs backwards in time.
    """
    if impl == "scan":
        outs = [scan_layer(kind, p, xs, c, mask, reverse=k == 1, unroll=unroll)
                for k, (p, c) in enumerate(zip(dirs, carries))]
        return [c for c, _ in outs], jnp.concatenate([y for _, y in outs], -1)
    return recurrent_scan.directions_layer(masked(POINTWISE[kind]), GATES[kind], dirs, xs, carries,
                                           mask, recurrent_bias=recurrent_bias, unroll=unroll)


def stack(kind, layers, x, *, lengths=None, initial_state=None, dropout_rate=0.0,
          key=None, train=False, impl="scan", unroll=1, remat="none"):
    """Stacked (optionally bidirectional) recurrent layers over x: [B, T, D].

    layers: list of {"fwd": cell params[, "bwd": cell params]}; lengths: [B] int or None;
    initial_state: None (zeros) or list per layer of list per direction of carries.
    Returns (ys: [B, T, K*H], final state with the structure of initial_state).
    remat ("none", "block", "dots"; zoo.models.layers.remat): recompute each layer's
    activations in the backward pass instead of storing them for every time step.
    """
    xs = jnp.swapaxes(x, 0, 1)
    t, b = xs.shape[:2]
    mask = None if lengths is None else (jnp.arange(t)[:, None] < lengths[None, :])[..., None]
    keys = L.split_key(key, len(layers))
    final = []
    run_layer = L.remat(lambda dirs, xs, carries, mask: directions_layer(kind, dirs, xs, carries, mask, impl=impl,
                                                                          unroll=unroll), remat)
    for i, layer in enumerate(layers):
        dirs = [layer[d] for d in ("fwd", "bwd") if d in layer]
        h_size = dirs[0]["W_hh"].shape[0]
        carries = ([zero_carry(kind, b, h_size, xs.dtype)] * len(dirs) if initial_state is None
                   else initial_state[i])
        if i > 0:
            xs = L.dropout(keys[i], xs, dropout_rate, train)
        carries, xs = run_layer(dirs, xs, carries, mask)
        final.append(carries)
    return jnp.swapaxes(xs, 0, 1), final


def stack_init(key, kind, d_in, d_hidden, num_layers, bidirectional, remember_bias=0.0):
    dirs = ("fwd", "bwd") if bidirectional else ("fwd",)
    keys = jax.random.split(key, (num_layers, len(dirs)))
    layers = []
    for i in range(num_layers):
        d = d_in if i == 0 else d_hidden * len(dirs)
        layers.append({name: cell_init(keys[i, k], kind, d, d_hidden, remember_bias)
                       for k, name in enumerate(dirs)})
    return layers


# ----------------------------------------------------------------------------- models
@dataclasses.dataclass(frozen=True)
class RecurrentConfig:
    """Sequence classifier: x [B, T, D] (or [B, T]), or {"x": [B, T, D], "lengths": [B]}."""
    num_outputs: int | None = None  # None: taken from the dataset
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = False
    dropout_rate: float = 0.0       # between stacked layers
    readout: Literal["last", "mean", "flatten", "steps"] = "last"  # flatten: all steps (fixed T); steps: [B, T, K]
    remember_bias: float = 0.0      # init bias of the LSTM forget / GRU update gate
    impl: Literal["scan", "fused"] = "scan"  # scan: the cell under lax.scan, measured faster (bench/README.md)
    unroll: int = 1                 # lax.scan unroll factor
    remat: Literal["none", "block", "dots"] = "none"  # recompute activations per layer (stack)


def _sequence(x):
    """(inputs [B, T, D], lengths [B] or None) from an array or {"x", "lengths"}."""
    if isinstance(x, dict):
        inputs, lengths = x["x"], x.get("lengths")
    else:
        inputs, lengths = x, None
    if inputs.ndim not in (2, 3):
        raise ConfigError(f"a recurrent network takes sequences [B, T] or [B, T, D], not {inputs.ndim - 1}-D rows "
                          f"{list(inputs.shape[1:])}; reshape each row with data.shape=[T, D]")
    return (inputs[..., None] if inputs.ndim == 2 else inputs), lengths


def _readout(cfg, ys, final, lengths):
    """[B, T, K*H] outputs -> [B, F] features ([B, T, K*H] for readout "steps")."""
    if cfg.readout == "flatten":
        return ys.reshape(ys.shape[0], -1)
    if cfg.readout == "steps":   # the head on every step's outputs: [B, T, K*H]
        return ys
    if cfg.readout == "mean":
        if lengths is None:
            return ys.mean(1)
        return ys.sum(1) / jnp.maximum(lengths, 1)[:, None].astype(ys.dtype)
    return jnp.concatenate([hidden(c) for c in final[-1]], -1)  # last real step of each direction


def build_classifier(kind: str, cfg: RecurrentConfig) -> Model:
    """`kind` is the registry name: rnn, lstm or gru."""
    if cfg.num_outputs is None:
        raise ConfigError(f"{kind} needs num_outputs (the trainer takes it from the dataset)")
    k = 2 if cfg.bidirectional else 1

    def init(key, x):
        inputs, _ = _sequence(x)
        k_rnn, k_head = jax.random.split(key)
        feat = k * cfg.hidden_size * (inputs.shape[1] if cfg.readout == "flatten" else 1)
        return {"rnn": stack_init(k_rnn, kind, inputs.shape[-1], cfg.hidden_size, cfg.num_layers,
                                  cfg.bidirectional, cfg.remember_bias),
                "head": L.dense_init(k_head, feat, cfg.num_outputs)}

    def apply(params, x, *, key=None, train=False):
        inputs, lengths = _sequence(x)
        ys, final = stack(kind, params["rnn"], inputs, lengths=lengths, dropout_rate=cfg.dropout_rate,
                          key=key, train=train, impl=cfg.impl, unroll=cfg.unroll, remat=cfg.remat)
        return L.dense(params["head"], _readout(cfg, ys, final, lengths))

    return Model.of(init, apply)


@dataclasses.dataclass(frozen=True)
class TimeGapsConfig:
    """GRU over an irregular series {"t", "values", "observed"} (zoo.data.irregular), predicting
    every point: the RNN baseline of Rubanova et al. 2019 (their "RNN Δt")."""
    num_outputs: int | None = None  # D; None: taken from the dataset
    hidden_size: int = 20
    num_layers: int = 1


def build_time_gaps(name: str, cfg: TimeGapsConfig) -> Model:
    """Step i reads [x_{i-1} o_{i-1}, o_{i-1}, t_i - t_{i-1}] (o: observed, 0/1; zeros before
    the first point) and predicts x_i from its output: the time gap is an input feature, and a
    point is predicted before it is read, as ode_rnn does (zoo.models.latent_ode)."""
    if cfg.num_outputs is None:
        raise ConfigError(f"{name} needs num_outputs (the trainer takes it from the dataset)")

    def features(x):
        if not (isinstance(x, dict) and {"t", "values", "observed"} <= set(x)):
            raise ConfigError(f"{name} takes irregular series {{'t', 'values', 'observed'}} (data irregular_periodic)")
        seen = x["observed"][..., None].astype(x["values"].dtype)
        previous = jnp.concatenate([x["values"] * seen, seen], -1)                       # [B, T, D + 1]
        previous = jnp.pad(previous, ((0, 0), (1, 0), (0, 0)))[:, :-1]
        gaps = jnp.diff(x["t"], axis=1, prepend=x["t"][:, :1])[..., None].astype(previous.dtype)
        return jnp.concatenate([previous, gaps], -1)                                      # [B, T, D + 2]

    def init(key, x):
        k_rnn, k_out = jax.random.split(key)
        return {"rnn": stack_init(k_rnn, "gru", features(x).shape[-1], cfg.hidden_size, cfg.num_layers, False),
                "out": L.dense_init(k_out, cfg.hidden_size, cfg.num_outputs)}

    def apply(params, x, *, key=None, train=False):
        ys, _ = stack("gru", params["rnn"], features(x))
        return L.dense(params["out"], ys)

    return Model.of(init, apply)


MODELS = {
    "gru_gaps": ModelEntry(TimeGapsConfig, build_time_gaps, inputs=("irregular",)),
    **{name: ModelEntry(RecurrentConfig, build_classifier, sequence=True, inputs=("arrays", "lengths"), symmetry="shift",
                        probe_points="time")
       for name in ("rnn", "lstm", "gru")},
}

"""Gradient flow through depth and through time: the norm of the loss gradient at each layer's
activations (Glorot & Bengio 2010), and at each input step of a recurrent net (Bengio et al.
1994; Pascanu et al. 2013).

Axis legend: B batch, T time (or tokens), C channels / units, L layers.

Through depth, delta_l = d L_b / d z_l for example b at layer l's output z_l, measured without
touching the model code: a layer whose output is z_l = (...) + bias_l gets its bias replaced by
bias_l + e_l, e_l = 0 of z_l's whole shape [B, ..., C] (broadcasting adds it unchanged), and
d L / d e_l = delta_l, example by example and position by position. L is the *summed* loss,
so row b of delta_l is example b's own gradient. Which z_l each family offers:
- MLP, CNN: the dense / conv output before norm and activation (the "backpropagated error" of
  backprop; with residual=True it still enters the residual stream through this layer);
- Transformer encoder: the residual stream after the embedding and after every block (through
  the bias of the MLP's down projection: h_l = h + m + bias, so d L / d bias = d L / d h_l),
  and after every attention sub-layer (its output projection's bias).

Through time (the recurrent family), ||d L / d x_t|| at every input step t: for the Elman RNN
d h_T / d h_t is a product of T - t Jacobians diag(1 - h^2) W_hh^T, at most
sigma_max(W_hh)^(T-t) in norm, so the gradient decays geometrically when sigma_max < 1; the
LSTM's cell path carries prod f_k (Hochreiter & Schmidhuber 1997) and the GRU's prod z_k,
which keep it alive with the remember gates open.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from zoo import models
from zoo.models import layers as L

Point = tuple[str, tuple, tuple[int, ...]]   # (label, path of a bias leaf, shape of z_l)


def replace_leaf(tree: Any, path: Sequence, fn: Callable) -> Any:
    """A copy of a nested dict/list tree with the leaf at `path` replaced by fn(leaf)."""
    if not path:
        return fn(tree)
    head, rest = path[0], path[1:]
    if isinstance(tree, list):
        return [replace_leaf(t, rest, fn) if i == head else t for i, t in enumerate(tree)]
    return {k: replace_leaf(v, rest, fn) if k == head else v for k, v in tree.items()}


def activation_gradients(loss_sum: Callable, params: Any, points: Sequence[Point]) -> dict[str, jax.Array]:
    """{label: d loss_sum / d z_l [B, ..., C]} for every probe point (label, bias path, z_l shape).

    loss_sum(params) -> the loss summed over the batch's examples.
    """
    def loss(perturbations):
        p = params
        for label, path, _ in points:
            p = replace_leaf(p, path, lambda b, e=perturbations[label]: b + e)
        return loss_sum(p)

    grads = jax.grad(loss)({label: jnp.zeros(shape, jnp.float32) for label, _, shape in points})
    return {label: grads[label] for label, _, _ in points}   # network order (pytrees sort keys)


def per_example_norms(gradients: dict[str, jax.Array], weights: jax.Array) -> dict[str, float]:
    """{label: weighted mean over the batch of ||delta_l[b]||_2} (weights [B], 0 for padding)."""
    w = jnp.asarray(weights, jnp.float32)
    return {label: float(jnp.sum(w * jnp.linalg.norm(g.reshape(g.shape[0], -1), axis=-1)) / jnp.sum(w))
            for label, g in gradients.items()}


def input_gradient_norms(loss_sum_of_x: Callable, x: jax.Array) -> np.ndarray:
    """Mean over the batch of ||d loss_sum / d x_t||_2 for every t. x: [B, T, D] -> [T]."""
    g = jax.jit(jax.grad(loss_sum_of_x))(x)
    return np.asarray(jnp.linalg.norm(g.reshape(*g.shape[:2], -1), axis=-1).mean(0))


# ----------------------------------------------------------------------------- probe points
# Each model's points are named by its registry entry (ModelEntry.probe_points): (cfg, params, x)
def mlp_points(cfg: Any, params: dict, x: jax.Array) -> list[Point]:
    """The pre-activation of every hidden layer: [B, width]."""
    return [(f"layer {i + 1}", ("blocks", i, "dense", "bias"), (x.shape[0], block["dense"]["bias"].shape[0]))
            for i, block in enumerate(params["blocks"])]


def cnn_points(cfg: Any, params: dict, x: jax.Array) -> list[Point]:
    """The conv output of every layer [B, *spatial_l, C_l], shapes traced through zoo's own
    conv and pooling (zoo.models.cnn's layer order: conv, ..., pool)."""
    strides = cfg.per_layer(cfg.strides, "strides")
    padding = cfg.padding.upper() if isinstance(cfg.padding, str) else cfg.padding
    h = jax.ShapeDtypeStruct(x.shape if x.ndim == cfg.dims + 2 else (*x.shape, 1), jnp.float32)
    points = []
    for i, block in enumerate(params["blocks"]):
        z = jax.eval_shape(lambda p, h, s=strides[i]: L.conv(p, h, strides=s, padding=padding), block["conv"], h)
        points.append((f"conv {i + 1}", ("blocks", i, "conv", "bias"), z.shape))
        h = jax.eval_shape(lambda z: L.pool(z, cfg.pool, cfg.pool_size), z) if cfg.pool != "none" else z
    return points


def transformer_points(cfg: Any, params: dict, x: jax.Array) -> list[Point]:
    """The encoder's residual stream [B, T', D] after the embedding, each attention sub-layer
    and each block (T' = T + 1 with a CLS token); x [B, T] or [B, T, F]."""
    x = x if x.ndim == 3 else x[..., None]
    if "bias" not in params["embed"] or "bias" not in params["blocks"][0]["mlp"]["down"]:
        raise ValueError("gradflow reads a transformer's residual stream through its biases: "
                         "it needs model.bias=true and the standard MLP")
    b, t, d = x.shape[0], x.shape[1], params["embed"]["kernel"].shape[1]
    t_blocks = t + (1 if "cls" in params else 0)
    points = [("embedding", ("embed", "bias"), (b, t, d))]
    for i in range(len(params["blocks"])):
        points.append((f"block {i + 1} attention", ("blocks", i, "attention", "out", "bias"), (b, t_blocks, d)))
        points.append((f"block {i + 1}", ("blocks", i, "mlp", "down", "bias"), (b, t_blocks, d)))
    return points


# ----------------------------------------------------------------------------- on a run
def axis(name: str) -> str:
    """"depth" or "time": how model `name`'s registry entry says gradflow measures it."""
    from zoo.errors import ConfigError
    where = models.entry(name).probe_points
    if where is None:
        measured = ", ".join(n for n in models.REGISTRY if models.entry(n).probe_points)
        raise ConfigError(f"gradflow measures {measured} runs, not {name!r}")
    return "time" if where == "time" else "depth"


def points_for(name: str, cfg: Any, params: dict, x: jax.Array) -> list[Point]:
    """The probe points of model `name` at inputs x (its ModelEntry.probe_points)."""
    module, function = models.entry(name).probe_points.split(":")
    return getattr(importlib.import_module(module), function)(cfg, params, x)


def depth_profile(name: str, cfg: Any, loss_sums: Callable, params: dict, batch: dict) -> dict[str, float]:
    """{layer label: mean over the batch of ||d L / d z_l||} in network order.

    loss_sums(params, batch) -> (loss_sum, count)."""
    points = points_for(name, cfg, params, batch["x"])
    grads = activation_gradients(lambda p: loss_sums(p, batch)[0], params, points)
    return per_example_norms(grads, batch["mask"])


def time_profile(loss_sums: Callable, params: dict, batch: dict) -> np.ndarray:
    """[T]: mean over the batch of ||d L / d x_t|| (a recurrent run)."""
    x = jnp.asarray(batch["x"], jnp.float32)
    x = x if x.ndim == 3 else x[..., None]
    return input_gradient_norms(lambda v: loss_sums(params, {**batch, "x": v})[0], x)


def run(run: Any, *, examples: int = 256) -> dict:
    """Gradient norms through depth (mlp, cnn, transformer) or time (rnn, lstm, gru) at the
    run's initial and trained parameters on `examples` evaluation examples; writes
    run_dir/probes/gradflow.{json,png}."""
    from zoo.probes import rundata

    exp, name = run.exp, run.exp.cfg.model_name
    loss_sums = rundata.loss_fn(exp)
    batch = {k: v[:examples] for k, v in rundata.batches(exp, "eval", examples)[0].items()}
    numbers = {"model": name, "axis": axis(name)}
    for when, params in (("init", rundata.initial_params(exp)), ("trained", run.params)):
        if numbers["axis"] == "time":
            numbers[when] = time_profile(loss_sums, params, batch)
        else:
            numbers[when] = depth_profile(name, exp.cfg.model, loss_sums, params, batch)
    return rundata.write(run.run_dir, "gradflow", numbers, plot({name: numbers}, f"{name} on {exp.cfg.data_name}"))


def plot(profiles: dict[str, dict], title: str) -> Any:
    """One line per (profile, init/trained): norms against layer (or input step)."""
    from zoo.probes import rundata

    fig, axes = rundata.figure(1, width=7)
    ax = axes[0]
    for i, (label, numbers) in enumerate(profiles.items()):
        for when, style in (("init", "--"), ("trained", "-")):
            if when not in numbers:
                continue
            values = numbers[when]
            ys = list(values.values()) if isinstance(values, dict) else values
            ax.semilogy(range(len(ys)), ys, style, color=f"C{i}", marker=".", label=f"{label} ({when})")
            if isinstance(values, dict):
                ax.set_xticks(range(len(ys)), list(values), rotation=60, ha="right", fontsize=7)
    time = next(iter(profiles.values()))["axis"] == "time"
    ax.set(xlabel="input step t (loss at the end)" if time else "layer", title=title,
           ylabel="||dL/dx_t||" if time else "||dL/dz_l|| per example")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig

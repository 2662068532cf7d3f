"""Losses and metrics, as sums over a batch so that evaluation can add batches up.

Each task maps (outputs, batch) to a dict of sums: `loss` (sum of per-example losses),
`count` (sum of mask weights) and task metrics (`correct`, ...). The training loss is
loss / count; eval_<metric> is the metric's sum over the eval set divided by count.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax


def _weights(mask: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Broadcast a mask [B] (or [B, ...]) over target shape [B, ...]."""
    mask = mask.astype(jnp.float32)
    return jnp.broadcast_to(mask.reshape(mask.shape + (1,) * (len(shape) - mask.ndim)), shape)


def classification(logits: jax.Array, batch: dict) -> dict[str, jax.Array]:
    """Softmax cross-entropy. logits [..., K] (float32 for the softmax), labels [...] int."""
    labels = batch["y"]
    w = _weights(batch["mask"], labels.shape)
    logits = logits.astype(jnp.float32)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    return {"loss": jnp.sum(w * nll), "correct": jnp.sum(w * correct), "count": jnp.sum(w)}


def regression(outputs: jax.Array, batch: dict) -> dict[str, jax.Array]:
    """Mean squared error per example, averaged over its trailing axes."""
    target = batch["y"]
    err = jnp.square(outputs.astype(jnp.float32) - target).reshape(target.shape[0], -1).mean(-1)
    w = batch["mask"].astype(jnp.float32)
    return {"loss": jnp.sum(w * err), "count": jnp.sum(w)}


def integer_regression(outputs: jax.Array, batch: dict) -> dict[str, jax.Array]:
    """Regression onto integer targets (a count, a sum): the squared error, and `correct` when the
    rounded output equals the target. outputs, y [B, 1]."""
    sums = regression(outputs, batch)
    hit = jnp.all(jnp.round(outputs.astype(jnp.float32)) == batch["y"], axis=-1).astype(jnp.float32)
    return {**sums, "correct": jnp.sum(batch["mask"].astype(jnp.float32) * hit)}


def density(log_px: jax.Array, batch: dict) -> dict[str, jax.Array]:
    """Density estimation: the loss is -log p(x) per example (nats); outputs are log p(x) [B]."""
    w = batch["mask"].astype(jnp.float32)
    return {"loss": -jnp.sum(w * log_px.astype(jnp.float32)), "count": jnp.sum(w)}


def irregular(outputs: jax.Array | dict, batch: dict) -> dict[str, jax.Array]:
    """Series at irregular times (zoo.data.irregular): outputs [B, T, D] predicted at every time,
    or {"y": [B, T, D], "kl": [B]} from a latent-variable model. Per series, the mean squared
    error over all its real points (its training loss) plus kl / (T D), and the mean squared errors
    over its interpolation and extrapolation points, `interp_mse` and `extrap_mse`.

    A latent ODE's kl is 2σ² KL(q(z0|x) || p(z0)) (σ its fixed observation noise), so that this
    loss is 2σ² / (T D) times its negative ELBO, up to a constant: the same objective, in MSE units.
    """
    pred, kl = (outputs["y"], outputs["kl"]) if isinstance(outputs, dict) else (outputs, 0.0)
    target = batch["y"]
    sq = jnp.square(pred.astype(jnp.float32) - target["values"]).mean(-1)          # [B, T]
    w = batch["mask"].astype(jnp.float32)

    def mean_over(points):
        return jnp.sum(sq * points, -1) / jnp.maximum(jnp.sum(points, -1), 1.0)

    # the three sets are disjoint and cover a series' real points: padding (a shorter series of a
    # timestamped file, zoo.data.timestamped) is in none, so it never counts
    real = batch["x"]["observed"] + target["interp"] + target["extrap"]
    loss = mean_over(real) + kl / pred[0].size
    return {"loss": jnp.sum(w * loss), "count": jnp.sum(w), "interp_mse": jnp.sum(w * mean_over(target["interp"])),
            "extrap_mse": jnp.sum(w * mean_over(target["extrap"]))}
LABEL_SMOOTHING = 0.1   # epsilon_ls of Vaswani et al. 2017, section 5.4
PAD = 0                 # a target id that is no token (zoo.data.translation)


def translation(logits: jax.Array, batch: dict) -> dict[str, jax.Array]:
    """Sequence to sequence: logits [B, T, V], targets y [B, T] (PAD after the end), mask [B].

    The loss is the label-smoothed cross-entropy (the target distribution (1 - eps) one-hot +
    eps / V) averaged over each sentence's tokens, then over sentences; `nll` is the same
    without smoothing. `correct` is the fraction of a sentence's tokens predicted right under
    teacher forcing; `exact_match` counts sentences with every token right, which is exactly
    the sentences greedy decoding reproduces (each step's input is then the argmax it took).
    """
    y, w = batch["y"], batch["mask"].astype(jnp.float32)
    logits = logits.astype(jnp.float32)
    real = (y != PAD).astype(jnp.float32)

    def per_sentence(a):
        return jnp.sum(w * jnp.sum(a * real, -1) / jnp.maximum(jnp.sum(real, -1), 1.0))
    targets = optax.smooth_labels(jax.nn.one_hot(y, logits.shape[-1]), LABEL_SMOOTHING)
    right = jnp.argmax(logits, -1) == y
    return {"loss": per_sentence(optax.softmax_cross_entropy(logits, targets)),
            "nll": per_sentence(optax.softmax_cross_entropy_with_integer_labels(logits, y)),
            "correct": per_sentence(right.astype(jnp.float32)),
            "exact_match": jnp.sum(w * jnp.all(right | (real == 0), -1)), "count": jnp.sum(w)}


TASKS: dict[str, Callable[[jax.Array, dict], dict[str, jax.Array]]] = {
    "classification": classification,
    "language_model": classification,
    "regression": regression,
    "integer_regression": integer_regression,
    "density": density,
    "irregular": irregular,
    "translation": translation,
}


def summarize(task: str, sums: dict[str, float], prefix: str) -> dict[str, float]:
    """Turn summed metrics into means: {prefix_loss, prefix_accuracy, prefix_bpc, ...}."""
    count = max(float(sums["count"]), 1e-12)
    out = {f"{prefix}_loss": float(sums["loss"]) / count}
    if "correct" in sums:
        out[f"{prefix}_accuracy"] = float(sums["correct"]) / count
    if task == "language_model":
        out[f"{prefix}_bpc"] = out[f"{prefix}_loss"] / math.log(2)
    if task in ("regression", "integer_regression"):
        out[f"{prefix}_mse"] = out[f"{prefix}_loss"]
    for k, v in sums.items():
        if k not in ("loss", "correct", "count"):
            out[f"{prefix}_{k}"] = float(v) / count
    return out

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


TASKS: dict[str, Callable[[jax.Array, dict], dict[str, jax.Array]]] = {
    "classification": classification,
    "language_model": classification,
    "regression": regression,
    "integer_regression": integer_regression,
    "density": density,
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

"""Calibration of a classifier: the reliability diagram, the expected calibration error and
temperature scaling.

Axis legend: N examples (every position of a sequence model counts as one), K classes,
M confidence bins.

A classifier is calibrated when its confidence c = max_k softmax(z)_k equals its accuracy
among the examples given that confidence: P(correct | c) = c. With M equal-width bins B_m of
confidence (Naeini et al. 2015; Guo et al. 2017),

    ECE = sum_m |B_m| / N * |acc(B_m) - conf(B_m)|

and the reliability diagram draws acc(B_m) against conf(B_m). Temperature scaling (Guo et
al. 2017) divides the logits by one T > 0 fitted to minimise the negative log-likelihood on
held-out data; it changes confidences, never the predicted class. The NLL is convex in
beta = 1/T (logsumexp of a linear function of beta), so its derivative is increasing and
bisection on log beta finds the minimum.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax


def confidences(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidence [N], correct [N] in {0, 1}) of logits [N, K] against labels [N]."""
    probs = np.asarray(jax.nn.softmax(jnp.asarray(logits, jnp.float32), -1), np.float64)
    return probs.max(-1), (probs.argmax(-1) == np.asarray(labels)).astype(np.float64)


def reliability(confidence: np.ndarray, correct: np.ndarray, num_bins: int = 15,
                weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per bin [M]: "confidence" (mean), "accuracy", "count" (weight); bins (m/M, (m+1)/M],
    the first also holding 0. Empty bins hold confidence and accuracy 0."""
    w = np.ones_like(confidence) if weights is None else np.asarray(weights, np.float64)
    index = np.clip(np.ceil(confidence * num_bins).astype(int) - 1, 0, num_bins - 1)
    count = np.bincount(index, w, num_bins)
    safe = np.maximum(count, 1e-300)
    return {"confidence": np.bincount(index, w * confidence, num_bins) / safe,
            "accuracy": np.bincount(index, w * correct, num_bins) / safe, "count": count}


def expected_calibration_error(bins: dict[str, np.ndarray]) -> float:
    """ECE = sum_m |B_m| / N |acc(B_m) - conf(B_m)| from `reliability`'s bins."""
    count = bins["count"]
    return float(np.sum(count * np.abs(bins["accuracy"] - bins["confidence"])) / np.sum(count))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float, weights: np.ndarray | None = None) -> float:
    """Mean negative log-likelihood of softmax(logits / T)."""
    losses = optax.softmax_cross_entropy_with_integer_labels(
        jnp.asarray(logits, jnp.float32) / temperature, jnp.asarray(labels))
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, np.float64)
    return float(np.sum(w * np.asarray(losses, np.float64)) / np.sum(w))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None,
                    bounds: tuple[float, float] = (1e-2, 1e2), steps: int = 60) -> float:
    """T minimising the mean NLL of softmax(logits / T), by bisection on log(1/T) within
    `bounds` for T (the end of the range if the minimum lies beyond it)."""
    z = jnp.asarray(logits, jnp.float32)
    y = jnp.asarray(labels)
    w = jnp.ones(len(labels)) if weights is None else jnp.asarray(weights, jnp.float32)
    slope = jax.jit(jax.grad(lambda beta: jnp.sum(
        w * optax.softmax_cross_entropy_with_integer_labels(z * beta, y)) / jnp.sum(w)))
    lo, hi = np.log(1 / bounds[1]), np.log(1 / bounds[0])   # log beta
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        if slope(jnp.float32(np.exp(mid))) > 0:
            hi = mid
        else:
            lo = mid
    return float(1 / np.exp(0.5 * (lo + hi)))

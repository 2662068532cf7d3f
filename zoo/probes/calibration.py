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

from typing import Any

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


# ----------------------------------------------------------------------------- on a run
def predictions(run: Any, split: str, examples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(logits [N, K], labels [N], weights [N]) of a split; a sequence model's positions are
    examples of their own."""
    from zoo.probes import rundata

    f = jax.jit(lambda x: run.exp.model.apply(run.params, x))
    logits, labels, weights = [], [], []
    for batch in rundata.batches(run.exp, split, examples):
        z = np.asarray(f(batch["x"]), np.float32)
        y = np.asarray(batch["y"])
        w = np.broadcast_to(np.asarray(batch["mask"], np.float32).reshape(
            batch["mask"].shape + (1,) * (y.ndim - batch["mask"].ndim)), y.shape)
        logits.append(z.reshape(-1, z.shape[-1]))
        labels.append(y.reshape(-1))
        weights.append(w.reshape(-1))
    return np.concatenate(logits), np.concatenate(labels), np.concatenate(weights)


def measure(logits: np.ndarray, labels: np.ndarray, weights: np.ndarray, temperature: float, num_bins: int) -> dict:
    confidence, correct = confidences(logits / temperature, labels)
    bins = reliability(confidence, correct, num_bins, weights)
    return {"ece": expected_calibration_error(bins), "nll": nll(logits, labels, temperature, weights),
            "accuracy": float(np.sum(weights * correct) / np.sum(weights)), "bins": bins}


def run(run: Any, *, num_bins: int = 15, examples: int = 100_000) -> dict:
    """Reliability and ECE on the evaluation split before and after temperature scaling, T
    fitted on the validation split (the evaluation split when there is none, which then
    measures the best a single temperature can do); writes run_dir/probes/calibration.*."""
    from zoo.errors import ConfigError
    from zoo.probes import rundata

    exp = run.exp
    if exp.dataset.task not in ("classification", "language_model"):
        raise ConfigError(f"calibration needs a classifier; {exp.cfg.data_name!r} is a {exp.dataset.task} task")
    fit_split = rundata.held_out_split(exp)
    fit_logits, fit_labels, fit_weights = predictions(run, fit_split, examples)
    t = fit_temperature(fit_logits, fit_labels, fit_weights)
    logits, labels, weights = predictions(run, "eval", examples)
    numbers = {"temperature": t, "fitted_on": fit_split, "num_bins": num_bins,
               "before": measure(logits, labels, weights, 1.0, num_bins),
               "after": measure(logits, labels, weights, t, num_bins)}
    return rundata.write(run.run_dir, "calibration", numbers, plot(numbers, f"{exp.cfg.model_name} on {exp.cfg.data_name}"))


def plot(numbers: dict, title: str) -> Any:
    """Reliability diagrams before and after temperature scaling."""
    from zoo.probes import rundata

    fig, axes = rundata.figure(2, width=4.2, height=4.2)
    edges = np.linspace(0, 1, numbers["num_bins"] + 1)
    for ax, when in zip(axes, ("before", "after")):
        m = numbers[when]
        ax.bar(edges[:-1], m["bins"]["accuracy"], width=np.diff(edges), align="edge", edgecolor="k",
               alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
        t = 1.0 if when == "before" else numbers["temperature"]
        ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
               title=f"T = {t:.2f}: ECE {100 * m['ece']:.2f}%, NLL {m['nll']:.3f}")
        ax.legend(loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig

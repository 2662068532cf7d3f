"""Curvature of the loss: the top Hessian eigenvalues, the Hessian trace, and the sharpness
against the edge of stability.

Axis legend: P parameters (flattened with ravel_pytree), m Lanczos steps, k probe vectors.

The Hessian H = d^2 L / d theta^2 of the mean loss L is never formed. A Hessian-vector product
is one forward-over-reverse pass (Pearlmutter 1994):

    H v = d/de grad L(theta + e v) |_{e=0}          jax.jvp(jax.grad(L), (theta,), (v,))

- Top eigenvalues: Lanczos (1950) with full reorthogonalisation. m products give a
  tridiagonal T_m whose eigenvalues (Ritz values) converge first at the ends of the spectrum;
  with the squared first components of T_m's eigenvectors as weights they are also a
  quadrature estimate of the spectral density (Ghorbani et al. 2019).
- Trace: Hutchinson (1989), tr H = E[z^T H z] over Rademacher z, whose error falls as
  1/sqrt(k); Hutch++ (Meyer et al. 2021) takes the trace on an approximate top subspace Q
  exactly and leaves Hutchinson only the rest, (I - QQ^T) H (I - QQ^T), where a net's
  spectrum has little mass: error O(1/k) instead of O(1/sqrt(k)).
- Edge of stability (Cohen et al. 2021): gradient descent with step size eta diverges along
  any direction whose curvature exceeds 2 / eta, and full-batch GD drives lambda_max up to
  2 / eta and hovers there. For adaptive optimizers (Adam) 2 / eta is a reference line only:
  their stability limit is on the preconditioned Hessian (Cohen et al. 2022).
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

Matvec = Callable[[np.ndarray], np.ndarray]   # v [P] or a block [P, k] -> H v


@functools.partial(jax.jit, static_argnums=0)
def _hvp(loss_fn: Callable, params: Any, v: jax.Array, batch: Any) -> jax.Array:
    """H_b v [P] for the summed loss of one batch. Jitted with loss_fn static, so every point
    of one loss shares a compilation (columns go one by one: on CPU a vmapped block is no
    faster, and one shape compiles once)."""
    flat, unravel = ravel_pytree(params)
    grad = jax.grad(lambda f: loss_fn(unravel(f), batch)[0])
    return jax.jvp(grad, (flat,), (v,))[1]


def hessian_matvec(loss_fn: Callable, params: Any, batches: Sequence[Any]) -> tuple[Matvec, int]:
    """(v [P] or [P, k] -> H v, P) for L = sum_b loss_sum_b / sum_b count_b.

    loss_fn(params, batch) -> (loss_sum, count); the products are summed batch by batch, so
    the Hessian is that of the mean loss over all the batches' examples.
    """
    flat, _ = ravel_pytree(params)
    count = sum(float(loss_fn(params, b)[1]) for b in batches)

    def column(c):
        return np.asarray(sum(_hvp(loss_fn, params, jnp.asarray(c, flat.dtype), b) for b in batches), np.float64)

    def matvec(v):
        columns = np.asarray(v).reshape(flat.size, -1).T
        return np.stack([column(c) for c in columns], -1).reshape(np.shape(v)) / count

    return matvec, flat.size


def lanczos(matvec: Matvec, dim: int, num_steps: int, key: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """(alpha [m], beta [m-1]): the tridiagonal T_m of `num_steps` Lanczos steps from a random
    unit vector, with full reorthogonalisation (float64 basis). Stops early, with a smaller m,
    when the Krylov space is invariant (beta ~ 0)."""
    m = min(num_steps, dim)
    basis = np.zeros((m, dim))
    v = np.asarray(jax.random.normal(key, (dim,)), np.float64)
    basis[0] = v / np.linalg.norm(v)
    alphas, betas = [], []
    for j in range(m):
        w = matvec(basis[j])
        alphas.append(float(basis[j] @ w))
        for _ in range(2):   # twice is enough (Parlett's "twice is enough")
            w = w - basis[:j + 1].T @ (basis[:j + 1] @ w)
        beta = float(np.linalg.norm(w))
        if j == m - 1 or beta < 1e-10 * max(abs(a) for a in alphas):
            break
        betas.append(beta)
        basis[j + 1] = w / beta
    return np.array(alphas), np.array(betas)


def ritz(alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Ritz values ascending [m], their quadrature weights [m], summing to 1)."""
    t = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
    values, vectors = np.linalg.eigh(t)
    return values, vectors[0] ** 2


def top_eigenvalues(matvec: Matvec, dim: int, k: int, key: jax.Array, num_steps: int = 40) -> np.ndarray:
    """The k largest eigenvalues of the operator, descending [k] (Lanczos Ritz values)."""
    values, _ = ritz(*lanczos(matvec, dim, max(num_steps, k), key))
    return values[::-1][:k]


def rademacher(key: jax.Array, dim: int, k: int) -> np.ndarray:
    """[dim, k] of independent +-1."""
    return np.asarray(jax.random.rademacher(key, (dim, k), jnp.float32), np.float64)


def hutchpp(matvec: Matvec, dim: int, num_matvecs: int, key: jax.Array) -> float:
    """Hutch++: tr(Q^T H Q) + Hutchinson on (I - QQ^T) H (I - QQ^T), Q = orth(H S), with
    num_matvecs // 3 columns each for S, Q and the remainder's probes."""
    k = max(num_matvecs // 3, 1)
    k_s, k_g = jax.random.split(key)
    q, _ = np.linalg.qr(matvec(rademacher(k_s, dim, k)))
    g = rademacher(k_g, dim, k)
    g = g - q @ (q.T @ g)
    return float(np.sum(q * matvec(q)) + np.sum(g * matvec(g)) / k)


def edge_of_stability(sharpness: float, learning_rate: float) -> dict[str, float]:
    """Sharpness lambda_max against gradient descent's stability threshold 2 / eta."""
    threshold = 2.0 / learning_rate if learning_rate > 0 else float("inf")
    return {"sharpness": sharpness, "learning_rate": learning_rate, "threshold_2_over_lr": threshold,
            "sharpness_over_threshold": sharpness / threshold}


# ----------------------------------------------------------------------------- on a run
def spectrum(loss_fn: Callable, params: Any, batches: Sequence[Any], key: jax.Array, *,
             k: int, lanczos_steps: int, trace_matvecs: int) -> dict:
    """Top-k eigenvalues, the Ritz values and weights, and the Hutch++ trace of one point."""
    matvec, dim = hessian_matvec(loss_fn, params, batches)
    k_lanczos, k_trace = jax.random.split(key)
    values, weights = ritz(*lanczos(matvec, dim, max(lanczos_steps, k), k_lanczos))
    return {"top": values[::-1][:k], "ritz_values": values, "ritz_weights": weights,
            "trace": hutchpp(matvec, dim, trace_matvecs, k_trace), "params": dim}


def run(run: Any, *, examples: int = 256, k: int = 5, lanczos_steps: int = 20,
        trace_matvecs: int = 30, at_init: bool = False, seed: int = 0) -> dict:
    """Hessian spectrum of the training loss on the run's first `examples` training
    examples, at the trained parameters (and, at_init, at initialisation), with the sharpness against
    2 / peak learning rate; writes run_dir/probes/curvature.{json,png}."""
    from zoo.probes import rundata

    exp, loss_fn = run.exp, rundata.loss_fn(run.exp)
    data = rundata.batches(exp, "train", examples)
    key = jax.random.key(seed)
    points = {"trained": run.params, **({"init": rundata.initial_params(exp)} if at_init else {})}
    numbers = {name: spectrum(loss_fn, p, data, key, k=k, lanczos_steps=lanczos_steps,
                              trace_matvecs=trace_matvecs) for name, p in points.items()}
    peak = float(exp.cfg.optimizer.learning_rate)
    numbers["edge_of_stability"] = edge_of_stability(float(numbers["trained"]["top"][0]), peak)
    numbers["optimizer"] = exp.cfg.optimizer.name
    numbers["final_learning_rate"] = float(exp.lr(max(run.step - 1, 0)))
    numbers["examples"] = sum(int(np.sum(b["mask"])) for b in data)
    return rundata.write(run.run_dir, "curvature", numbers, plot(numbers, f"{exp.cfg.model_name} on {exp.cfg.data_name}"))


def plot(numbers: dict, title: str) -> Any:
    """Ritz values weighted by their quadrature weights (a spectral density estimate), with
    the 2 / eta line."""
    from zoo.probes import rundata

    fig, axes = rundata.figure(1, width=7)
    ax = axes[0]
    for name, marker in (("init", "o"), ("trained", "s")):
        if name in numbers:
            s = numbers[name]
            ax.stem(s["ritz_values"], s["ritz_weights"], linefmt=f"C{int(name == 'trained')}-",
                    markerfmt=f"C{int(name == 'trained')}{marker}", basefmt=" ",
                    label=f"{name}: lambda_max {s['top'][0]:.3g}, trace {s['trace']:.3g}")
    eos = numbers["edge_of_stability"]
    ax.axvline(eos["threshold_2_over_lr"], color="k", ls="--", label=f"2 / peak lr = {eos['threshold_2_over_lr']:.3g}")
    ax.set(xscale="symlog", yscale="log", xlabel="Hessian eigenvalue (Lanczos Ritz values)",
           ylabel="quadrature weight", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig

"""The loss landscape: along the straight line from initialisation to the trained parameters,
and on a plane through the trained parameters.

Axis legend: P grid points, k directions (1 for the line, 2 for the plane), R grid resolution.

- Linear interpolation (Goodfellow, Vinyals & Saxe 2015): L((1 - a) theta_0 + a theta_1) for
  a in [-0.5, 1.5]; a monotone, convex-looking descent along this line says the optimizer
  met no barrier that this path does not already avoid.
- Filter-normalised plane (Li et al. 2018): L(theta + a d_1 + b d_2), d_i Gaussian with each
  filter rescaled to the norm of the same filter of theta, so that the plot's scale means the
  same thing for every layer and for nets whose weights differ in scale. A filter is one
  output unit: all axes of a kernel but the last (zoo stores kernels [..., in, out]). As Li
  et al.'s default, directions are zero on one-axis parameters (biases, norm scales).

Grid points are evaluated `chunk` at a time by one jitted `vmap` over the coordinates.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def filter_normalized_direction(key: jax.Array, params: Any, eps: float = 1e-10) -> Any:
    """A Gaussian direction shaped like params, each filter scaled to theta's filter norm."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))

    def direction(k, theta):
        if theta.ndim < 2:
            return jnp.zeros_like(theta)
        d = jax.random.normal(k, theta.shape, theta.dtype)
        axes = tuple(range(theta.ndim - 1))
        norm = lambda a: jnp.sqrt(jnp.sum(jnp.square(a), axes, keepdims=True))  # noqa: E731
        return d * norm(theta) / (norm(d) + eps)

    return jax.tree.unflatten(treedef, [direction(k, t) for k, t in zip(keys, leaves)])


def plane_losses(loss_fn: Callable, origin: Any, directions: Sequence[Any], coords: np.ndarray,
                 batches: Sequence[Any], chunk: int = 16) -> np.ndarray:
    """Mean loss at origin + sum_i coords[p, i] directions[i] for every point p -> [P].

    loss_fn(params, batch) -> (loss_sum, count); the mean is over all the batches' examples.
    """
    def at(c):
        return jax.tree.map(lambda o, *d: o + sum(ci * di for ci, di in zip(c, d)), origin, *directions)

    sums = jax.jit(jax.vmap(lambda c, batch: loss_fn(at(c), batch), in_axes=(0, None)))
    coords = np.asarray(coords, np.float32)
    losses = []
    for start in range(0, len(coords), chunk):
        block = coords[start:start + chunk]
        padded = np.concatenate([block, np.repeat(block[-1:], chunk - len(block), 0)])
        totals = [sums(padded, b) for b in batches]
        loss = sum(t[0] for t in totals) / sum(t[1] for t in totals)
        losses.append(np.asarray(loss)[:len(block)])
    return np.concatenate(losses)


def linear_path(loss_fn: Callable, theta_0: Any, theta_1: Any, alphas: np.ndarray,
                batches: Sequence[Any], chunk: int = 16) -> np.ndarray:
    """L(theta_0 + a (theta_1 - theta_0)) for each a in alphas [P] -> [P]."""
    delta = jax.tree.map(jnp.subtract, theta_1, theta_0)
    return plane_losses(loss_fn, theta_0, [delta], np.asarray(alphas)[:, None], batches, chunk)


def surface(loss_fn: Callable, params: Any, key: jax.Array, batches: Sequence[Any], *,
            extent: float = 1.0, resolution: int = 21, chunk: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(coordinates [R], losses [R, R]) on the plane params + a d_1 + b d_2 with a, b in
    [-extent, extent] and d_1, d_2 filter-normalised (losses[i, j] at a = c[i], b = c[j])."""
    k_1, k_2 = jax.random.split(key)
    directions = [filter_normalized_direction(k_1, params), filter_normalized_direction(k_2, params)]
    c = np.linspace(-extent, extent, resolution)
    grid = np.stack(np.meshgrid(c, c, indexing="ij"), -1).reshape(-1, 2)
    losses = plane_losses(loss_fn, params, directions, grid, batches, chunk)
    return c, losses.reshape(resolution, resolution)


# ----------------------------------------------------------------------------- on a run
def run(run: Any, *, examples: int = 256, line_points: int = 21, resolution: int = 11,
        extent: float = 1.0, chunk: int = 16, seed: int = 0) -> dict:
    """The line from the run's initial to its trained parameters (a in [-0.5, 1.5]) and the
    filter-normalised plane around the trained ones, on `examples` training and evaluation
    examples; writes run_dir/probes/landscape.{json,png}."""
    from zoo.probes import rundata

    exp, loss_fn = run.exp, rundata.loss_fn(run.exp)
    theta_0 = rundata.initial_params(exp)
    alphas = np.linspace(-0.5, 1.5, line_points)
    numbers = {"alphas": alphas, "examples": examples, "extent": extent}
    for split in ("train", "eval"):
        data = rundata.batches(exp, split, examples)
        numbers[f"line_{split}"] = linear_path(loss_fn, theta_0, run.params, alphas, data, chunk)
        coords, numbers[f"surface_{split}"] = surface(loss_fn, run.params, jax.random.key(seed), data,
                                                      extent=extent, resolution=resolution, chunk=chunk)
    numbers["coords"] = coords
    return rundata.write(run.run_dir, "landscape", numbers, plot(numbers, f"{exp.cfg.model_name} on {exp.cfg.data_name}"))


def plot(numbers: dict, title: str) -> Any:
    """Line (train, eval) and the two planes' contours."""
    from zoo.probes import rundata

    fig, axes = rundata.figure(3)
    for split in ("train", "eval"):
        axes[0].plot(numbers["alphas"], numbers[f"line_{split}"], label=split)
    for a in (0, 1):
        axes[0].axvline(a, color="grey", lw=0.5)
    axes[0].set(xlabel="a: (1 - a) theta_init + a theta_trained", ylabel="loss", yscale="log",
                title="init -> trained (Goodfellow et al. 2015)")
    axes[0].legend()
    c = numbers["coords"]
    for ax, split in zip(axes[1:], ("train", "eval")):
        z = np.log10(np.asarray(numbers[f"surface_{split}"]).T)
        contour = ax.contourf(c, c, z, levels=20, cmap="viridis")
        ax.plot(0, 0, "r+")
        fig.colorbar(contour, ax=ax, label="log10 loss")
        ax.set(xlabel="d1 (filter-normalised)", ylabel="d2", title=f"{split} loss around theta (Li et al. 2018)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig

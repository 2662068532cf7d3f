"""Figures of trained ODE models, written into their run directory.

    python -m zoo.figures.ode RUN_DIR      # redraws a run's figure from its checkpoint
    phase_portrait(run), cnf_density(run)  # post-training hooks: fit hands them its Run

- `node` on a trajectory dataset ("spiral"): RUN_DIR/phase_portrait.png, true vs learned
  trajectory (integrated from y(0) over the whole evaluation horizon, as for eval_mse) and
  the learned vector field.
- `node` on g1d (a flow, Augmented Neural ODEs): RUN_DIR/trajectories.png (zoo.figures.anode).
- `cnf` on a 2-D density ("toy2d"): RUN_DIR/density.png, data, model density, model samples.

"""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

FILENAME = "phase_portrait.png"
DENSITY_FILENAME = "density.png"


def _field_panel(ax, field: Callable[[np.ndarray], np.ndarray], limits: tuple[float, float]) -> None:
    grid = np.linspace(*limits, 21)
    y1, y2 = np.meshgrid(grid, grid)
    dy = np.asarray(field(np.stack([y1.ravel(), y2.ravel()], -1).astype(np.float32)))
    speed = np.hypot(dy[:, 0], dy[:, 1]).reshape(y1.shape)
    ax.streamplot(y1, y2, dy[:, 0].reshape(y1.shape), dy[:, 1].reshape(y1.shape),
                  color=np.log1p(speed), cmap="viridis", density=1.2, linewidth=0.8)
    ax.set(title="learned vector field", xlabel="y1", ylabel="y2", xlim=limits, ylim=limits)


def plot_trajectories(path: Path | str, t: np.ndarray, true_ys: np.ndarray,
                      learned: dict[str, np.ndarray], *,
                      field: Callable[[np.ndarray], np.ndarray] | None = None) -> Path:
    """Time series and phase portrait of the true trajectory [T, 2] against each learned one
    (label -> [T, 2], its MSE in the legend), plus the learned field's streamlines if given."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if field is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.6))
    axes[0].plot(t, true_ys[:, 0], "k-", lw=1.5, label="true y1")
    axes[0].plot(t, true_ys[:, 1], "k--", lw=1.5, label="true y2")
    axes[1].plot(true_ys[:, 0], true_ys[:, 1], "k-", lw=2.0, label="true")
    for (label, ys), color in zip(learned.items(), ("tab:red", "tab:blue", "tab:green")):
        mse = float(np.mean((ys - true_ys) ** 2))
        axes[0].plot(t, ys[:, 0], "-", color=color, lw=1.0, label=f"{label} y1")
        axes[0].plot(t, ys[:, 1], "--", color=color, lw=1.0, label=f"{label} y2")
        axes[1].plot(ys[:, 0], ys[:, 1], "-", color=color, lw=1.0, label=f"{label} (MSE {mse:.2e})")
    axes[0].set(title="trajectories", xlabel="t", ylabel="y")
    axes[0].legend(fontsize=7, loc="upper right")
    axes[1].set(title="phase portrait", xlabel="y1", ylabel="y2", aspect="equal")
    axes[1].legend(fontsize=8, loc="lower left")
    if field is not None:
        limit = 1.1 * float(np.abs(true_ys).max())
        _field_panel(axes[2], field, (-limit, limit))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_density(path: Path | str, log_density: Callable[[np.ndarray], np.ndarray],
                 data: np.ndarray, samples: np.ndarray, *, limit: float = 4.0) -> Path:
    """Three panels: data samples, the model's density exp(log_density) on a grid over
    [-limit, limit]^2 (its integral over the grid in the title: near 1 for a proper density)
    and samples drawn from the model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(-limit, limit, 120)
    x1, x2 = np.meshgrid(grid, grid)
    points = np.stack([x1.ravel(), x2.ravel()], -1).astype(np.float32)
    p = np.exp(np.asarray(log_density(points))).reshape(x1.shape)
    mass = float(p.sum() * (grid[1] - grid[0]) ** 2)
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.5))
    axes[0].hist2d(data[:, 0], data[:, 1], bins=100, range=[[-limit, limit]] * 2, cmap="magma")
    axes[0].set_title("data")
    axes[1].pcolormesh(x1, x2, p, cmap="magma", shading="auto")
    axes[1].set_title(f"model density (mass on grid {mass:.3f})")
    axes[2].hist2d(samples[:, 0], samples[:, 1], bins=100, range=[[-limit, limit]] * 2, cmap="magma")
    axes[2].set_title("model samples")
    for ax in axes:
        ax.set(aspect="equal", xlabel="x1", ylabel="x2")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def phase_portrait(run) -> Path:
    """Write phase_portrait.png into a trained `node` run's directory; returns its path."""
    import jax

    dataset, params = run.exp.dataset, run.params
    x = {"y0": dataset.y[None, 0], "t": dataset.t[None]}
    ys = jax.jit(run.model.apply)(params, x)
    field_params, cfg = params["field"], run.cfg.model
    from zoo.models.node import mlp_field
    f = mlp_field(cfg.activation, cfg.input_power, cfg.time_dependent)
    field = jax.jit(lambda y: f(field_params, 0.0, y))
    return plot_trajectories(run.run_dir / FILENAME, dataset.t, dataset.y,
                             {"learned": np.asarray(ys[0])}, field=field)


def cnf_density(run) -> Path:
    """Write density.png into a trained `cnf` run's directory (a toy2d density)."""
    import jax

    from zoo.data.toy2d import draw
    from zoo.models.cnf import sample

    params = run.params
    log_density = jax.jit(lambda x: run.model.apply(params, x))
    samples = jax.jit(lambda key: sample(run.cfg.model, params, key, 5000))(jax.random.PRNGKey(0))
    data = draw(run.exp.dataset.density_name, np.random.default_rng(0), 5000)
    return plot_density(run.run_dir / DENSITY_FILENAME, log_density, data, np.asarray(samples))


def node_figure(run) -> Path | None:
    """A `node` run's figure: the phase portrait of a trajectory fit, the paths of a g1d flow
    (zoo.figures.anode), none for other flows."""
    from zoo.data.ode import TrajectoryDataset
    from zoo.figures import anode

    if isinstance(run.exp.dataset, TrajectoryDataset):
        return phase_portrait(run)
    return anode.trajectories(run) if run.cfg.data_name == "g1d" else None


if __name__ == "__main__":
    from zoo.experiment import load_run

    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m zoo.figures.ode RUN_DIR")
    from zoo.figures import model_figure
    run = load_run(sys.argv[1])
    draw_figure = model_figure(run.cfg.model_name)
    print(draw_figure(run) if draw_figure else "no figure for this run's model")

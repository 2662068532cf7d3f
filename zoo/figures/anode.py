"""Figures of Augmented Neural ODEs (Dupont et al. 2019, Figs. 1, 5 and 8): trajectories that
cannot cross (a NODE on g(x) = -x) against ones that pass each other in an extra dimension
(ANODE), and the number of function evaluations over training.

    python -m zoo.figures.anode NODE_RUN ANODE_RUN [--out docs/anode_g1d.png]

draws, for two trained `node` runs on the g1d dataset (a stacked run: its first replica), the
first coordinate h_1(t) of each flow from 15 starts x in [-1, 1] over t in [0, t1] (the target
-x dotted at t1), ANODE's paths in the (h_1, h_2) plane, and the training NFE of both runs
(metrics.jsonl; every replica of a stacked run). `trajectories(run)` is the post-training hook
of a single run: RUN_DIR/trajectories.png.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

FILENAME = "trajectories.png"
STARTS = np.linspace(-1.0, 1.0, 15, dtype=np.float32)[:, None]   # [N, 1]


def paths(run, num_times: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """(t [T], h(t) [T, N, 1 + A]) of a flow-mode `node` run from STARTS."""
    import jax
    import jax.numpy as jnp

    from zoo.models.node import node_path
    cfg = run.cfg.model
    ts = np.linspace(0.0, cfg.t1, num_times, dtype=np.float32)
    hs = jax.jit(lambda p: node_path(cfg, p, jnp.asarray(STARTS), jnp.asarray(ts)))(run.params)
    return ts, np.asarray(hs)


def nfe_curves(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps [S], training NFE [S, R]) from a run's metrics.jsonl (R replicas, 1 for a single run)."""
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line]
    rows = [r for r in rows if "nfe" in r]
    values = [r.get("per_replica", {}).get("nfe", [r["nfe"]]) for r in rows]
    return np.array([r["step"] for r in rows]), np.array(values, float)


def _draw_paths(ax, ts: np.ndarray, hs: np.ndarray, title: str) -> None:
    import matplotlib.pyplot as plt
    colors = plt.cm.coolwarm((STARTS[:, 0] + 1) / 2)
    for i, color in enumerate(colors):
        ax.plot(ts, hs[:, i, 0], color=color, lw=1.2)
        ax.plot([ts[-1]], [-STARTS[i, 0]], "k.", ms=4)
    ax.set(title=title, xlabel="t", ylabel="h_1(t)")


def plot(path: Path | str, node: tuple, anode: tuple, nfe: dict[str, tuple]) -> Path:
    """node, anode: (t, h) of `paths`; nfe: label -> (steps, NFE [S, R]) of `nfe_curves`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(19, 4.3))
    _draw_paths(axes[0], *node, "NODE: h_1(t), cannot cross (dots: -x)")
    _draw_paths(axes[1], *anode, "ANODE: h_1(t) crosses")
    hs = anode[1]
    for i, color in enumerate(plt.cm.coolwarm((STARTS[:, 0] + 1) / 2)):
        axes[2].plot(hs[:, i, 0], hs[:, i, 1], color=color, lw=1.2)
        axes[2].plot(hs[0, i, 0], hs[0, i, 1], "o", color=color, ms=3)
    axes[2].set(title="ANODE in (h_1, h_2): around each other", xlabel="h_1", ylabel="h_2")
    for (label, (steps, values)), color in zip(nfe.items(), ("tab:red", "tab:blue")):
        axes[3].plot(steps, values, color=color, lw=0.8, alpha=0.5)
        axes[3].plot(steps, values.mean(1), color=color, lw=1.8, label=f"{label} (mean of {values.shape[1]})")
    axes[3].set(title="NFE per training step", xlabel="step", ylabel="NFE")
    axes[3].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def trajectories(run) -> Path:
    """Write trajectories.png (h_1(t) from STARTS) into a flow-mode `node` run's directory."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.3))
    _draw_paths(ax, *paths(run), f"augment_dim={run.cfg.model.augment_dim}: h_1(t)")
    fig.tight_layout()
    fig.savefig(run.run_dir / FILENAME, dpi=100)
    plt.close(fig)
    return run.run_dir / FILENAME


def main(argv: list[str] | None = None) -> int:
    from zoo.experiment import load_one
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("node_run")
    p.add_argument("anode_run")
    p.add_argument("--out", default="docs/anode_g1d.png")
    args = p.parse_args(argv)
    runs = [load_one(args.node_run), load_one(args.anode_run)]
    if any(run.cfg.data_name != "g1d" for run in runs) or runs[1].cfg.model.augment_dim < 1:
        p.error("give two node runs on data g1d, the second with model.augment_dim >= 1 (e.g. g1d_node, g1d_anode)")
    nfe = {"NODE": nfe_curves(args.node_run), "ANODE": nfe_curves(args.anode_run)}
    print(plot(args.out, paths(runs[0]), paths(runs[1]), nfe))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Training curves of a run: loss.png from its metrics.jsonl."""
from __future__ import annotations

import json
from pathlib import Path


def plot_curves(path: Path) -> None:
    """loss.png: training loss (and eval loss) against step, from metrics.jsonl."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines() if line]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("loss", "eval_loss"):
        pts = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), label=key, marker="." if key == "eval_loss" else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path / "loss.png", dpi=100)
    plt.close(fig)

"""Training curves from metrics.jsonl: curves.png of one run, and several runs overlaid.

Panels: loss (training line, evaluation points), accuracy where the task has one, and the
learning rate. The step axis turns logarithmic for long runs (so the first hundred steps of
100k stay visible), and points get markers when there are few of them (a 10-step run).
"""
from __future__ import annotations

import json
from pathlib import Path

LONG_RUN = 1000      # steps past which the step axis is logarithmic
FEW_POINTS = 30      # series with at most this many points are drawn with markers
PANELS = {"loss": ("loss", "eval_loss", "val_loss"),
          "accuracy": ("accuracy", "eval_accuracy", "val_accuracy"),
          "learning rate": ("learning_rate",)}


def read_records(run_dir: Path) -> list[dict]:
    """metrics.jsonl's records by step; a step logged twice (a resumed run) keeps its last."""
    by_step = {}
    for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            by_step[record["step"]] = record
    return [by_step[s] for s in sorted(by_step)]


def series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of `key` over the records that have a finite value of it."""
    points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
    return [s for s, _ in points], [v for _, v in points]


def _panels(runs: list[list[dict]]) -> list[str]:
    return [name for name, keys in PANELS.items() if any(series(r, k)[0] for r in runs for k in keys)]


def _draw(ax, records: list[dict], keys: tuple[str, ...], color=None, label: str = "") -> None:
    for key in keys:
        steps, values = series(records, key)
        if not steps:
            continue
        train = key in ("loss", "accuracy", "learning_rate")
        marker = "o" if len(steps) <= FEW_POINTS or not train else None
        ax.plot(steps, values, color=color, marker=marker, markersize=3 if train else 4,
                linestyle="-" if train else "--", label=f"{label}{key}")


def _style(ax, panel: str, last_step: int) -> None:
    ax.set_ylabel(panel)
    ax.set_xlabel("step")
    if last_step > LONG_RUN:
        ax.set_xscale("log")
    values = [v for line in ax.get_lines() for v in line.get_ydata()]
    if panel == "loss" and values and min(values) > 0 and max(values) > 10 * min(values):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def figure(runs: dict[str, list[dict]], title: str):
    """A matplotlib figure of the runs' records (name -> records), one panel per PANELS entry
    any run has, one colour per run when there are several."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(list(runs.values()))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    last = max((r[-1]["step"] for r in runs.values() if r), default=0)
    for ax, panel in zip(axes[0], panels):
        for i, (name, records) in enumerate(runs.items()):
            color = colors[i % len(colors)] if len(runs) > 1 else None
            _draw(ax, records, PANELS[panel], color, f"{name}: " if len(runs) > 1 else "")
        _style(ax, panel, last)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _save(fig, output: Path) -> Path:
    import matplotlib.pyplot as plt
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output


def plot_curves(run_dir: Path) -> Path:
    """RUN/curves.png: the run's loss, accuracy and learning rate against step, titled with
    the run's name."""
    run_dir = Path(run_dir)
    return _save(figure({run_dir.name: read_records(run_dir)}, run_dir.name), run_dir / "curves.png")


def compare_curves(run_dirs: list[Path], output: Path) -> Path:
    """One PNG with the curves of several runs overlaid, one colour per run."""
    names = [Path(d).name for d in run_dirs]
    labels = [n if names.count(n) == 1 else str(d) for n, d in zip(names, run_dirs)]  # same name, other dir
    runs = {label: read_records(Path(d)) for label, d in zip(labels, run_dirs)}
    return _save(figure(runs, " vs ".join(runs)), Path(output))

"""Training curves from metrics.jsonl: curves.png of one run, and several runs overlaid.

Panels: loss (training line, evaluation points), accuracy where the task has one, and the
learning rate. The step axis turns logarithmic for long runs (so the first hundred steps of
100k stay visible), and points get markers when there are few of them (a 10-step run).
"""
from __future__ import annotations

import json
import math
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
        train = _kind(key) == ""
        marker = "o" if len(steps) <= FEW_POINTS or not train else None
        ax.plot(steps, values, color=color, marker=marker, markersize=3 if train else 4,
                linestyle=STYLES[_kind(key)][0], label=f"{label}{key}")


def _short(x: float, _=None) -> str:
    """A tick label: 500, 2k, 10k, 1M; 0.5 below 1."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:g}{suffix}"
    return f"{x:g}"


def _log_ticks(axis, low: float, high: float) -> None:
    """A logarithmic axis labelled in plain numbers at 1, 2 and 5 times powers of ten (only the
    powers past two decades), never the crowded minor labels ("2x10^3 3x10^3 4x10^3" overlap)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    decades = math.log10(max(high, 1e-300) / max(low, 1e-300))
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 2 else (1.0,)))
    axis.set_major_formatter(FuncFormatter(_short))
    axis.set_minor_formatter(NullFormatter())


def _style(ax, panel: str, last_step: int, legend: bool) -> None:
    ax.set_ylabel(panel)
    ax.set_xlabel("step")
    if last_step > LONG_RUN:
        ax.set_xscale("log")
        _log_ticks(ax.xaxis, *sorted(ax.get_xlim()))
    values = [v for line in ax.get_lines() for v in line.get_ydata()]
    if panel == "loss" and values and min(values) > 0 and max(values) > 10 * min(values):
        ax.set_yscale("log")
        _log_ticks(ax.yaxis, min(values), max(values))
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=7)


# how a key is drawn: training lines solid, test (eval_*) dashed, validation (val_*) dotted
STYLES = {"": ("-", "training"), "eval_": ("--", "test (eval_*)"), "val_": (":", "validation (val_*)")}


def _kind(key: str) -> str:
    return next((prefix for prefix in ("eval_", "val_") if key.startswith(prefix)), "")


def _runs_legend(fig, runs: dict[str, list[dict]], colors: list[str]) -> float:
    """One legend below the panels for several runs (colour: run; line style: split), so no
    curve is covered; returns the height (a fraction of the figure) it takes."""
    from matplotlib.lines import Line2D
    kinds = {_kind(k) for records in runs.values() for r in records for k in r
             if any(k in keys for keys in PANELS.values())}
    handles = [Line2D([], [], color=colors[i % len(colors)], label=name) for i, name in enumerate(runs)]
    handles += [Line2D([], [], color="grey", linestyle=STYLES[k][0], label=STYLES[k][1]) for k in STYLES if k in kinds]
    columns = min(len(handles), 4)
    rows = math.ceil(len(handles) / columns)
    fig.legend(handles=handles, loc="lower center", ncol=columns, fontsize=8, frameon=False)
    return 0.08 * rows  # of the 3.6-inch-high figure


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
        _style(ax, panel, last, legend=len(runs) == 1)
    fig.suptitle(title)
    bottom = _runs_legend(fig, runs, colors) if len(runs) > 1 else 0.0
    fig.tight_layout(rect=(0, bottom, 1, 1))
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

"""Accuracy against set size (Zaheer et al. 2017, Fig. 2): trained runs on `digit_sets`
evaluated on fresh test sets of each size, drawn from the held-out images, one line per run
(mean over its replicas, their range shaded).

    python -m zoo.figures.sets RUN [RUN ...] --output docs/deepsets/accuracy_by_size.png

writes the PNG and, beside it, the numbers as .json and a markdown table (.md).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from zoo import steps
from zoo.errors import ConfigError
from zoo.experiment import Run

SIZES = (1, 2, 5, 10, 15, 20, 30, 40, 50)


def accuracy_at(run: Run, size: int, count: int, seed: int = 0) -> float:
    """The run's accuracy on `count` test sets of `size` digits."""
    data = run.exp.dataset
    if not hasattr(data, "sets"):
        raise ConfigError(f"{run.run_dir} was not trained on set data (data.name=digit_sets)")
    exp = dataclasses.replace(run.exp, dataset=dataclasses.replace(data, test=data.sets(size, count, seed)))
    return steps.evaluate(exp, steps.make_eval_step(exp), run.params, "eval")["eval_accuracy"]


def accuracies(run_dir: str, sizes: tuple[int, ...], count: int) -> dict:
    """{"model", "train_max_size", "sizes", "accuracy": [replica][size]} of a run's replicas."""
    from zoo.experiment import load_runs

    runs = load_runs(run_dir)
    return {"model": runs[0].cfg.model_name, "train_max_size": runs[0].cfg.data.max_size, "sizes": list(sizes),
            "accuracy": [[accuracy_at(run, n, count) for n in sizes] for run in runs]}


def plot(results: dict[str, dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for name, r in results.items():
        acc = 100 * np.asarray(r["accuracy"])
        line, = ax.plot(r["sizes"], acc.mean(0), "o-", label=f"{r['model']} ({name}, {len(acc)} seeds)")
        ax.fill_between(r["sizes"], acc.min(0), acc.max(0), color=line.get_color(), alpha=0.2)
    trained = max(r["train_max_size"] for r in results.values())
    ax.axvspan(0, trained, color="grey", alpha=0.1, label=f"set sizes seen in training (<= {trained})")
    ax.set(xlabel="set size (digits summed)", ylabel="test accuracy (%)", ylim=(0, 101), xlim=(0, None),
           title="sum of a set of digits: accuracy against set size")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(results: dict[str, dict]) -> str:
    """Markdown: one row per run, mean accuracy (%) over its replicas at each size."""
    sizes = next(iter(results.values()))["sizes"]
    lines = ["| run | model | seeds | " + " | ".join(f"n={n}" for n in sizes) + " |",
             "|---|---|---|" + "---|" * len(sizes)]
    for name, r in results.items():
        acc = 100 * np.asarray(r["accuracy"])
        lines.append(f"| {name} | {r['model']} | {len(acc)} | " + " | ".join(f"{a:.1f}" for a in acc.mean(0)) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m zoo.figures.sets", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run directories trained on digit_sets")
    p.add_argument("--output", required=True, help="the PNG to write (.json and .md beside it)")
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    p.add_argument("--count", type=int, default=1000, help="test sets per size")
    args = p.parse_args(argv)
    results = {Path(r).name: accuracies(r, tuple(args.sizes), args.count) for r in args.runs}
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(results, out)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    out.with_suffix(".md").write_text(table(results))
    print(table(results) + f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

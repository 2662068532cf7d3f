"""`zoo compare RUN [RUN ...] [--output FILE]`: the runs' summaries side by side in a table, and
their training curves overlaid in one PNG (default compare.png)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from zoo.errors import ConfigError

COLUMNS = ("model", "data", "steps", "params", "eval_loss", "eval_accuracy", "selected_step", "steps_per_s",
           "tokens_per_s", "mfu", "wall_time_s")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("compare", help="compare runs: a table of their summaries and overlaid curves",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run directories, e.g. runs/mnist1d_cnn runs/mnist1d_mlp")
    p.add_argument("--output", default="compare.png", help="PNG of the overlaid curves (default: compare.png)")
    p.set_defaults(run=run)
    return p


def load_summary(run_dir: Path) -> dict:
    """A run's summary.json; ConfigError when the directory holds no finished run."""
    file = run_dir / "summary.json"
    if not file.is_file() or not (run_dir / "metrics.jsonl").is_file():
        raise ConfigError(f"{run_dir} has no summary.json and metrics.jsonl: not a finished run; give directories "
                          f"that training wrote, e.g. runs/mnist1d_cnn")
    return json.loads(file.read_text())


def table(names: list[str], summaries: list[dict]) -> list[str]:
    """Aligned rows: one per run, the COLUMNS any run has."""
    columns = [c for c in COLUMNS if any(s.get(c) is not None for s in summaries)]
    cell = lambda v: "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
    rows = [[name, *(cell(s.get(c)) for c in columns)] for name, s in zip(names, summaries)]
    header = ["run", *columns]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return [line(header), line(["-" * w for w in widths]), *map(line, rows)]


def run(args: argparse.Namespace) -> int:
    from zoo.figures.curves import compare_curves

    run_dirs = [Path(r) for r in args.runs]
    summaries = [load_summary(d) for d in run_dirs]
    print("\n".join(table([str(d) for d in run_dirs], summaries)))
    print(f"curves: {compare_curves(run_dirs, Path(args.output))}")
    return 0

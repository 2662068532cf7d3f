"""Sweeps (train.sweep): which stacked programs a sweep trains, and its table (RUN/sweep.md).

Keys of schema.TRACED_SWEEP_KEYS are traced numbers inside one program (zoo.replicas); every
combination of the other keys (shapes, Python constants of the model) is a program of its own.
"""
from __future__ import annotations

import itertools

from zoo import ensemble, schema
from zoo.schema import TRACED_SWEEP_KEYS, Config


def program_configs(cfg: Config) -> list[tuple[str, Config]]:
    """[(label, config)]: one stacked program per combination of the swept keys that change the
    program, each sweeping only the traced keys (schema.TRACED_SWEEP_KEYS)."""
    other = {k: v for k, v in cfg.train.sweep.items() if k not in TRACED_SWEEP_KEYS}
    if not other:
        return [("", cfg)]
    traced = {k: v for k, v in cfg.train.sweep.items() if k in TRACED_SWEEP_KEYS}
    out = []
    for point in itertools.product(*other.values()):
        tree = cfg.to_dict()
        tree["train"]["sweep"] = traced
        for key, value in zip(other, point):
            schema.set_dotted(tree, key, value)
        label = ",".join(f"{k.split('.')[-1]}={v}" for k, v in zip(other, point))
        out.append((label, schema.from_tree(tree, cfg.source)))
    return out


def sweep_table(rows: list[dict]) -> str:
    """A Markdown table of a sweep: one row per point (a program, and within it each combination
    of the traced values), the mean and std over its seeds of every eval metric."""
    points = {}
    for row in rows:
        for replica in row["replicas"]:
            traced = [f"{k.split('.')[-1]}={replica[k]:g}" for k in TRACED_SWEEP_KEYS if k in replica]
            points.setdefault(", ".join(p for p in [row["program"], *traced] if p), []).append(replica)
    keys = sorted({k for group in points.values() for r in group for k in r if k.startswith("eval_")})
    lines = ["| point | " + " | ".join(keys) + " | seeds |", "|---" * (len(keys) + 2) + "|"]
    for label, group in points.items():
        values = {k: [r[k] for r in group if k in r] for k in keys}
        cells = ["{:.4f} ± {:.4f}".format(*ensemble.mean_std(v)) if v else "" for v in values.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {len(group)} |")
    return "\n".join(lines) + "\n"

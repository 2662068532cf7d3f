"""`zoo list models|datasets|optimizers|configs`: what zoo has, one line each.

`zoo list model gpt` (or `dataset text`, `section train`) lists that entry's config fields with
their types, defaults and the comments beside them in the code; `zoo train --help-config
model=gpt` prints the same.
"""
from __future__ import annotations

import argparse
import inspect
import re

from zoo.errors import ConfigError

KINDS = ("models", "datasets", "optimizers", "configs", "model", "dataset", "section")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("list", help="list models, datasets, optimizers or shipped configs",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=KINDS)
    p.add_argument("name", nargs="?", help="with model, dataset or section: the one to describe")
    p.set_defaults(run=run)
    return p


def _rows(pairs) -> list[str]:
    pairs = list(pairs)
    width = max(len(name) for name, _ in pairs)
    return [f"{name:<{width}}  {text}" for name, text in pairs]


def optimizers() -> list[str]:
    from zoo.schema import optax_optimizers
    return _rows((name, (inspect.getdoc(fn) or "").split("\n")[0]) for name, fn in sorted(optax_optimizers().items()))


def _title(line: str) -> str:
    """A header's first line up to its first colon outside parentheses."""
    depth = 0
    for i, c in enumerate(line):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if c == ":" and depth == 0:
            return line[:i]
    return line.rstrip(",.")


def config_header(path) -> tuple[str, str]:
    """(what a shipped config trains, what it is expected to reach) from its header comment."""
    comments = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        comments.append(line.lstrip("#").strip())
    what = _title(comments[0]) if comments else ""
    text = " ".join(comments)
    expected = re.search(r"Expected:\s*(.*?)(?:\s+(?:Command|Sample|CiteSeer|Note):|$)", text)
    return what, expected.group(1) if expected else ""


def configs() -> list[str]:
    from zoo.config import shipped_configs
    rows = []
    for name, path in shipped_configs().items():
        what, expected = config_header(path)
        rows.append((name, f"{what}. Expected: {expected}" if expected else what))
    return _rows(rows)


def fields(kind: str, name: str | None) -> list[str]:
    """Every config field of one model, dataset or section: type, default and comment."""
    from zoo import schema
    from zoo.data import DATASETS
    from zoo.models import REGISTRY, description
    from zoo.typed_yaml import closest, describe

    registries = {"model": REGISTRY, "dataset": DATASETS}
    if kind == "section":
        sections = {"optimizer": schema.OptimizerConfig, "train": schema.TrainConfig,
                    "run": schema.RunConfig, "mesh": schema.MeshConfig}
        if name not in sections:
            raise ConfigError(f"section {name!r} has no fields to list{closest(str(name), list(sections))}")
        return describe(sections[name], name)
    registry = registries[kind]
    if name not in registry:
        raise ConfigError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(registry))}")
    section = "data" if kind == "dataset" else "model"
    what = registry[name].description if kind == "dataset" else description(name)
    return [f"{section}.name: {name!r}  # {what}", *describe(registry[name].config, section)]


def lines(kind: str, name: str | None = None) -> list[str]:
    from zoo.data import DATASETS
    from zoo.models import NAMES, description

    if kind in ("model", "dataset", "section"):
        return fields(kind, name)
    if kind == "models":
        return _rows((n, description(n)) for n in sorted(NAMES))
    if kind == "datasets":
        return _rows((n, e.description) for n, e in sorted(DATASETS.items()))
    return optimizers() if kind == "optimizers" else configs()


def run(args: argparse.Namespace) -> int:
    print("\n".join(lines(args.kind, args.name)))
    return 0

"""The model registry: every architecture by name, each a `Model(init, apply, apply_with_stats)`
of pure functions (zoo.models.core).

    model = zoo.models.build("cnn", channels=(25, 25, 25), num_outputs=10)
    params = model.init(key, x)                       # x: example batch, only shapes matter
    y = model.apply(params, x, key=None, train=False)

Each family module holds frozen config dataclasses and `MODELS = {name: ModelEntry(...)}`;
REGISTRY below is the one list of names that tests and the command line iterate over.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from zoo.models import cnf, cnn, gnn, mlp, node, recurrent, recurrent_lm, transformer, vit
from zoo.models.core import Model, ModelEntry

REGISTRY: dict[str, ModelEntry] = {
    **mlp.MODELS,
    **cnn.MODELS,
    **recurrent.MODELS,
    **recurrent_lm.MODELS,
    **transformer.MODELS,
    **vit.MODELS,
    **gnn.MODELS,
    **node.MODELS,
    **cnf.MODELS,
}


def entry(name: str) -> ModelEntry:
    """The registry entry of model `name`; unknown names list the valid ones."""
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown model {name!r}{hint}; valid: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def build(name: str, config: Any = None, **hyper: Any) -> Model:
    """Build model `name` from hyperparameters, or from its config dataclass (plus changes)."""
    e = entry(name)
    cfg = e.config(**hyper) if config is None else dataclasses.replace(config, **hyper)
    return e.build(name, cfg)


__all__ = ["REGISTRY", "Model", "ModelEntry", "build", "entry"]

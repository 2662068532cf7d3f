"""The model registry: every architecture by name, each a `Model(init, apply)` of pure functions.

    model = zoo.models.build("cnn", channels=(25, 25, 25), num_outputs=10)
    params = model.init(key, x)                       # x: example batch, only shapes matter
    y = model.apply(params, x, key=None, train=False)

`build` takes a name plus hyperparameters, or a family config dataclass. Each family module
holds frozen config dataclasses and `MODELS = {name: (ConfigClass, build_fn)}`, one config
class per name (subclass to share fields); REGISTRY below is the one list of names that tests
and the CLI iterate over.

`apply` returns the outputs, or `(outputs, stats)` where `stats` is a dict of scalar
diagnostics (e.g. number of ODE function evaluations) that the trainer logs.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Callable, NamedTuple


class Model(NamedTuple):
    init: Callable[..., Any]   # (key, x) -> params
    apply: Callable[..., Any]  # (params, x, *, key=None, train=False) -> y | (y, stats)


from zoo.models import cnf, cnn, gnn, mlp, node, recurrent, recurrent_lm, transformer  # noqa: E402  (the modules import Model from here)

REGISTRY: dict[str, tuple[type, Callable[[Any], Model]]] = {
    **mlp.MODELS,
    **cnn.MODELS,
    **recurrent.MODELS,
    **recurrent_lm.MODELS,
    **transformer.MODELS,
    **gnn.MODELS,
    **node.MODELS,
    **cnf.MODELS,
}


def config_class(name: str) -> type:
    """The frozen config dataclass of model `name`; unknown names list the valid ones."""
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown model {name!r}{hint}; valid: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name][0]


def build(name_or_config: Any, **hyper: Any) -> Model:
    """Build a model from its registry name and hyperparameters, or from a config dataclass."""
    if isinstance(name_or_config, str):
        cfg = config_class(name_or_config)(**hyper)
        name = name_or_config
    else:
        cfg = dataclasses.replace(name_or_config, **hyper) if hyper else name_or_config
        name = next(n for n, (cls, _) in REGISTRY.items() if type(cfg) is cls)
    return REGISTRY[name][1](cfg)

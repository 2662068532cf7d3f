"""Which models take which data: a one-line ConfigError, before anything is built, when a model
and the data it is given do not fit, naming the models that take that data (or the data the
model takes), instead of a failure inside the model's code.

Two checks. The task: data that trains a language model or a translation model meets only a
model with ModelEntry.sample or .translate, and such a model only such data. The input kind
(ModelEntry.inputs, `input_kind`): arrays, examples of unequal lengths, graphs, irregular series.
"""
from __future__ import annotations

from typing import Any

from zoo.errors import ConfigError
from zoo.graphs import GraphsTuple
from zoo.models import REGISTRY, entry

KINDS = {"arrays": "arrays of one shape", "lengths": "examples of unequal lengths (padded, with their lengths)",
         "graphs": "graphs", "irregular": "irregular series {t, values, observed}"}
TASKS = (("language_model", "sample", "a language model", "data.name=text"),
         ("translation", "translate", "a translation model", "data.name=translation or parallel_text"))


def input_kind(x: Any) -> str | None:
    """Which of ModelEntry.inputs' kinds the model input `x` is; None for a family's own
    structure (sequence pairs, an ODE's initial values), which its task or its model checks."""
    if isinstance(x, GraphsTuple):
        return "graphs"
    if isinstance(x, dict):
        if set(x) == {"x", "lengths"}:
            return "lengths"
        return "irregular" if {"t", "values", "observed"} <= set(x) else None
    return "arrays"


def check_task(model: str, data: str, task: str) -> None:
    """Model `model` can learn data `data`'s task; called before the model is built, which would
    ask for a size the data does not give (num_outputs, vocab_size)."""
    family = entry(model)
    for name, attribute, what, hint in TASKS:
        fits = getattr(family, attribute) is not None
        if task == name and not fits:
            takers = " or ".join(sorted(n for n, e in REGISTRY.items() if getattr(e, attribute) is not None))
            raise ConfigError(f"model {model!r} is not {what}, and data {data!r} trains one: use model.name={takers}")
        if fits and task != name:
            raise ConfigError(f"model {model!r} is {what}, and data {data!r} trains {task}: give it {hint}, or "
                              f"choose a model for {data}")


def check_inputs(model: str, data: str, x: Any) -> None:
    """Model `model` takes the kind of input `x` (one batch's, or its shapes) that data `data` gives."""
    kind, takes = input_kind(x), entry(model).inputs
    # arrays given to a family that takes none: the family's own check names the data it takes
    if kind in (None, "arrays") or kind in takes:
        return
    takers = " or ".join(sorted(n for n, e in REGISTRY.items() if kind in e.inputs))
    hint = ", or cut or pad every example to one length in the file" if kind == "lengths" else ""
    raise ConfigError(f"model {model!r} takes {' or '.join(KINDS[k] for k in takes)}, but data {data!r} gives "
                      f"{KINDS[kind]}: train a model that takes them (model.name={takers}){hint}")

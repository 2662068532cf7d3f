"""Datasets from the user's own code: `data.name: "package.module:function"`.

Only a function marked as a zoo dataset is ever called: one decorated with `@zoo.data.dataset`,
or one an installed package registers under the `zoo.datasets` entry-point group. A config
names code to run, so anything else (`os:system`, `subprocess:run`, any unmarked function) is
refused in one line before it is called, and a standard-library module before it is imported.

The function's parameters are the data section's other keys, checked like a built-in dataset's
config fields: each parameter's annotation (str, int, float, bool, Literal[...], X | None,
tuple[X, ...] or list[X] (passed as a tuple), dict, or none for any YAML value) and default; a
parameter without a default must be set. It returns a zoo.data.Dataset (the contract is in
zoo/data/base.py), whose `task` is a key of zoo.tasks.TASKS. The config file stores the name and
the keys, so `--resume`, evaluation and prediction load the dataset the same way.

The module is imported as `python -m` would: from sys.path with the current directory first.
A module that cannot be found or has a syntax error, a missing function, a parameter of
another type and a wrong return value are one-line ConfigErrors; an exception raised while
the user's module runs keeps its traceback (it is a bug to fix there, not a config mistake).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import json
import operator
import os
import sys
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

from zoo.errors import ConfigError

SCALARS = (str, int, float, bool, dict, type(None))
MARK = "__zoo_dataset__"
ENTRY_POINTS = "zoo.datasets"


def dataset(function: Callable) -> Callable:
    """Mark `function` as a zoo dataset, which `data.name: "module:function"` may call:

        @zoo.data.dataset
        def sensors(path: str, window: int = 64): ...
    """
    setattr(function, MARK, True)
    return function


def is_plugin(name: str) -> bool:
    return ":" in name


def _registered(name: str) -> bool:
    """Whether an installed package registers `name` under the zoo.datasets entry points."""
    from importlib.metadata import entry_points
    return any(ep.value.replace(" ", "") == name for ep in entry_points(group=ENTRY_POINTS))


def _unmarked(name: str, why: str) -> ConfigError:
    return ConfigError(f"data.name={name!r}: {why}; zoo calls only functions marked as datasets "
                       f"(decorate it with @zoo.data.dataset, or register it under the {ENTRY_POINTS!r} "
                       f"entry points), so a config cannot run other code")


def _function(name: str) -> Callable:
    module_name, _, function_name = name.partition(":")
    if not all(part.isidentifier() for part in module_name.split(".")) or not function_name.isidentifier():
        raise ConfigError(f"data.name={name!r}: write a dataset of your own as 'package.module:function'")
    registered = _registered(name)
    if module_name.split(".")[0] in sys.stdlib_module_names and not registered:
        raise _unmarked(name, f"{module_name!r} is a standard-library module, not a dataset")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except (ImportError, SyntaxError) as e:
        raise ConfigError(f"data.name={name!r}: cannot import {module_name!r} ({type(e).__name__}: {e}); "
                          f"run from the folder that holds it or add that folder to PYTHONPATH") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"data.name={name!r}: module {module_name!r} has no function {function_name!r}")
    if not (getattr(function, MARK, False) is True or registered):
        raise _unmarked(name, f"{function_name!r} is not marked as a zoo dataset")
    return function


def _field_type(tp: Any, where: str) -> Any:
    """The config type of an annotation: list[X] reads as tuple[X, ...]; others must be config types."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp in SCALARS or origin is Literal or origin is dict:
        return dict if origin is dict else tp
    if origin in (list, tuple) and args and tp is not tuple:
        return tuple[_field_type(args[0], where), ...]
    if origin in (typing.Union, types.UnionType):
        return functools.reduce(operator.or_, (_field_type(a, where) for a in args))
    raise ConfigError(f"{where}: annotation {tp!r} is not a config type; use str, int, float, bool, Literal[...], "
                      f"tuple[...], list[...], dict, X | None, or no annotation")


def _field_spec(default: Any, empty: Any) -> Any:
    """A dataclass field with the parameter's default: lists as tuples, dicts copied per config."""
    if default is empty:
        return dataclasses.field()
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default))
    return dataclasses.field(default=tuple(default) if isinstance(default, list) else default)


def config_class(name: str, function: Callable) -> type:
    """A frozen dataclass of the function's parameters (types and defaults)."""
    hints = typing.get_type_hints(function)
    fields = []
    for p in inspect.signature(function).parameters.values():
        where = f"data.name={name!r}: parameter {p.name!r}"
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY) or p.name == "name":
            raise ConfigError(f"{where}: give the function named parameters only, none called 'name' "
                              f"(data.name holds the function's path)")
        fields.append((p.name, _field_type(hints.get(p.name, Any), where), _field_spec(p.default, p.empty)))
    return dataclasses.make_dataclass(f"{function.__name__}_config", fields, frozen=True, kw_only=True)


def _checked(name: str, ds: Any) -> Any:
    import zoo.data.validate as validate
    from zoo.data.base import Dataset
    from zoo.tasks import TASKS

    if not isinstance(ds, Dataset):
        raise ConfigError(f"data.name={name!r} returned {type(ds).__name__}, not a zoo.data.Dataset; "
                          f"return one (the contract is in zoo/data/base.py)")
    if ds.task not in TASKS:
        raise ConfigError(f"data.name={name!r} returned a dataset with task {ds.task!r}; "
                          f"valid tasks: {', '.join(TASKS)}")
    try:
        json.dumps(ds.preprocessing)
    except TypeError as e:
        raise ConfigError(f"data.name={name!r}: the dataset's preprocessing is not JSON-able ({e}); "
                          f"store lists and numbers, not arrays") from None
    validate.dataset(ds, f"data.name={name!r}")
    return ds


@functools.cache
def resolve(name: str) -> tuple[type, Callable[[Any], Any], str]:
    """(config class, load(cfg) -> Dataset, description) for "package.module:function"; one
    config class per name and process, so configs of one plugin compare equal."""
    function = _function(name)
    config = config_class(name, function)

    def load(cfg: Any) -> Any:
        return _checked(name, function(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}))

    doc = (inspect.getdoc(function) or "").strip().splitlines()
    return config, load, doc[0] if doc else f"your dataset {name}"

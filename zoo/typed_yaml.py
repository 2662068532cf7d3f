"""Typed YAML: parse YAML with each plain scalar's text kept, then convert values to the declared
types of frozen dataclasses, every key checked.

    section = build_section(TrainConfig, parse(text, "train.yaml")["train"], "train")

The declared type of a field wins over YAML 1.1's guesses: a `str` field keeps `yes` or `1.10`
as written, a `float` field reads `1e-3` (which YAML 1.1 calls a string) as 0.001. Every
mistake raises ConfigError with one line naming the key, what was expected and the closest
valid key. Nothing here knows zoo's sections: zoo.config holds that schema.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal

import yaml

from zoo.errors import ConfigError


class Raw(str):
    """A plain YAML scalar: the text as written, plus YAML's own reading of it in `.value`."""
    value: Any


class _Loader(yaml.SafeLoader):
    def construct_object(self, node, deep=False):
        value = super().construct_object(node, deep)
        if isinstance(node, yaml.ScalarNode) and node.style is None:
            raw = Raw(node.value)
            raw.value = value
            return raw
        return value


def parse(text: str, where: str) -> Any:
    try:
        loader = _Loader(text)  # what yaml.safe_load does, with raw scalars kept
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.constructor.ConstructorError as e:
        tag = getattr(e.problem_mark, "line", None)
        line = f" line {tag + 1}" if tag is not None else ""
        raise ConfigError(f"{where}{line}: {e.problem}; configs hold plain values only "
                          f"(numbers, strings, lists, mappings), no YAML object tags") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{where}{line}: not valid YAML ({getattr(e, 'problem', e)})") from None


def plain_value(x: Any) -> Any:
    """YAML's own reading of a parsed tree (raw scalars unwrapped)."""
    if isinstance(x, Raw):
        return x.value
    if isinstance(x, dict):
        return {str(plain_value(k)): plain_value(v) for k, v in x.items()}
    if isinstance(x, list):
        return [plain_value(v) for v in x]
    return x


# ----------------------------------------------------------------------------- typed conversion
def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"list of {type_name(typing.get_args(tp)[0])}"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def convert(x: Any, tp: Any, key: str) -> Any:
    """`x` (parsed YAML, raw scalars kept) as type `tp`, or ConfigError naming `key`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if type(None) in typing.get_args(tp) and plain_value(x) is None:
            return None
        for arg in typing.get_args(tp):
            try:
                return convert(x, arg, key)
            except ConfigError:
                pass
        return _fail(x, tp, key)
    if origin is Literal:
        for choice in typing.get_args(tp):
            try:
                if convert(x, type(choice), key) == choice:
                    return choice
            except ConfigError:
                pass
        return _fail(x, tp, key)
    if origin is tuple:
        items = x if isinstance(x, list) else [x]
        return tuple(convert(v, typing.get_args(tp)[0], key) for v in items)
    if tp is type(None):
        return None if plain_value(x) is None else _fail(x, tp, key)
    if tp is str:
        return str(x) if isinstance(x, str) else _fail(x, tp, key)
    if tp in (dict, Any):
        v = plain_value(x)
        return v if tp is Any or isinstance(v, dict) else _fail(x, tp, key)
    v = plain_value(x)
    if tp is bool:
        return v if isinstance(v, bool) else _fail(x, tp, key)
    if tp is int:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        number = _number(v)
        return int(number) if number is not None and number.is_integer() else _fail(x, tp, key)
    if tp is float:
        number = None if isinstance(v, bool) else _number(v)
        return number if number is not None else _fail(x, tp, key)
    raise TypeError(f"config field {key} has unsupported type {tp}")


def _number(v: Any) -> float | None:
    try:
        return float(v) if isinstance(v, (int, float, str)) else None
    except ValueError:
        return None


def _fail(x: Any, tp: Any, key: str):
    raise ConfigError(f"{key}: expected {type_name(tp)}, got {plain_value(x)!r}")


def closest(name: str, valid: list[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    return f"; did you mean {prefix + close[0]!r}?" if close else f"; valid keys: {', '.join(valid)}"


def build_section(cls: type, values: dict, section: str, owner: str = "") -> Any:
    """An instance of dataclass `cls` from parsed YAML `values`, every key checked.
    `owner` names whose keys these are in messages (e.g. "model 'lstm'")."""
    if not isinstance(values, dict):
        raise ConfigError(f"{section}: expected a mapping of keys to values, got {plain_value(values)!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in values:
        if key not in fields:
            what = f"unknown key for {owner}" if owner else "unknown key"
            raise ConfigError(f"{section}.{key}: {what}{closest(str(key), list(fields), section + '.')}")
    kwargs = {k: convert(v, hints[k], f"{section}.{k}") for k, v in values.items()}
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{section}.{name} is required ({type_name(hints[name])}); "
                              f"set it in the config or with {section}.{name}=...")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{section}: {e}") from None


# ----------------------------------------------------------------------------- field help
def field_comments(cls: type) -> dict[str, str]:
    """The comment beside each field of dataclass `cls` in its source (and its bases'), with
    comment-only lines right below a field joined on: {field: comment}."""
    import inspect
    import io
    import tokenize

    out: dict[str, str] = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):  # defined where no source is kept (an interactive session)
            continue
        current = None
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.line.lstrip().startswith(f"{tok.string}:"):
                current = tok.string
            elif tok.type == tokenize.COMMENT and current is not None:
                text = tok.string.lstrip("#").strip()
                out[current] = f"{out[current]} {text}" if tok.line.lstrip().startswith("#") and current in out else text
            elif tok.type == tokenize.NAME and tok.start[1] == 4 and tok.string in ("def", "class"):
                current = None
    return out


def describe(cls: type, section: str) -> list[str]:
    """One line per field of dataclass `cls`: `section.name: type = default  # comment`."""
    comments, hints = field_comments(cls), typing.get_type_hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f" = {f.default!r}"
        elif f.default_factory is not dataclasses.MISSING:
            default = f" = {f.default_factory()!r}"
        else:
            default = " (required)"
        comment = f"  # {comments[f.name]}" if f.name in comments else ""
        lines.append(f"{section}.{f.name}: {type_name(hints[f.name])}{default}{comment}")
    return lines

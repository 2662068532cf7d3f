"""Typed YAML: parse YAML with each plain scalar's text kept, then convert values to the declared
types of frozen dataclasses, every key checked.

    section = build_section(TrainConfig, parse(text, "train.yaml")["train"], "train")

The declared type of a field wins over YAML 1.1's guesses: a `str` field keeps `yes` or `1.10`
as written, a `float` field reads `1e-3` (which YAML 1.1 calls a string) as 0.001. Every
mistake raises ConfigError with one line naming the key, what was expected and the closest
valid key. Nothing here knows zoo's sections: zoo.schema holds that schema.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import yaml

from zoo.errors import ConfigError


class Raw(str):
    """A plain YAML scalar: the text as written, plus YAML's own reading of it in `.value`."""
    value: Any = None


# Bounds on a config's text: a config is a page of settings, not a data file, and YAML's
# aliases can expand a small text into an exponentially large tree (a "billion laughs").
MAX_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_ALIASES = 64
# The tags a plain value may carry, explicitly or not: no binary, sets, ordered maps or objects.
PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float", "str", "seq", "map",
                                                  "timestamp", "merge")}


class _Loader(yaml.SafeLoader):
    """yaml.safe_load with raw scalars kept, plain tags only, duplicate keys refused and the
    nesting depth and alias count bounded."""

    def __init__(self, text: str):
        super().__init__(text)
        self.depth, self.aliases = 0, 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _Limit(f"more than {MAX_ALIASES} aliases (*name); write the values out")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Limit(f"nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node, deep=False):
        if node.tag not in PLAIN_TAGS:
            raise yaml.constructor.ConstructorError(None, None, f"the tag {node.tag!r} is not a plain value",
                                                    node.start_mark)
        value = super().construct_object(node, deep)
        implicit = isinstance(node, yaml.ScalarNode) and node.tag == self.resolve(yaml.ScalarNode, node.value, (True, False))
        if implicit and node.style is None:
            raw = Raw(node.value)
            raw.value = value
            return raw
        return value

    def construct_mapping(self, node, deep=False):
        first: dict[str, int] = {}
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                line = key.start_mark.line + 1
                if key.value in first:
                    raise _Duplicate(f"duplicate key {key.value!r} at lines {first[key.value]} and {line}; "
                                     f"keep one of them (YAML would silently keep the last)", line)
                first[key.value] = line
        return super().construct_mapping(node, deep)


class _Limit(Exception):
    """A config over the size bounds."""


class _Duplicate(Exception):
    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.line = line


def parse(text: str, where: str) -> Any:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_BYTES >> 20} MiB; a config holds settings, "
                          f"put data in a file and give its path")
    try:
        loader = _Loader(text)  # what yaml.safe_load does, with raw scalars kept
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except (_Limit, _Duplicate) as e:
        raise ConfigError(f"{where}: {e}") from None
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
    if tp is bool:
        return _bool(x, key)
    if tp is int:
        return _int(x, key)
    if tp is float:
        return _float(x, key)
    raise TypeError(f"config field {key} has unsupported type {tp}")


# Numbers as a person writes them in decimal. YAML 1.1 also reads 010 as octal 8, 1:20 as
# sexagesimal 80, 0x1f as hex and `on`/`yes` as true; zoo refuses those for typed fields
# instead of guessing, and reads 1e3 (a string to YAML 1.1) as the number it is.
_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?((0|[1-9][0-9]*)(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?")
_SPECIAL = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}


def _bool(x: Any, key: str) -> bool:
    if isinstance(x, Raw):
        if x.lower() in ("true", "false"):
            return x.lower() == "true"
        return _fail(x, bool, key, "write true or false")
    return x if isinstance(x, bool) else _fail(x, bool, key)


def _int(x: Any, key: str) -> int:
    if isinstance(x, Raw):
        if _INT.fullmatch(x):
            return int(x)
        if _FLOAT.fullmatch(x):
            number = float(x)
            return int(number) if number.is_integer() and abs(number) < 2 ** 53 else _fail(x, int, key)
        return _fail(x, int, key, _yaml_hint(x))
    return x if isinstance(x, int) and not isinstance(x, bool) else _fail(x, int, key)


def _float(x: Any, key: str) -> float:
    if isinstance(x, Raw):
        if _FLOAT.fullmatch(x):
            return float(x)
        if x.lower() in _SPECIAL:
            return _SPECIAL[x.lower()]
        return _fail(x, float, key, _yaml_hint(x))
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else _fail(x, float, key)


def _yaml_hint(x: Raw) -> str:
    """Why a text that YAML 1.1 reads as a number or a bool is refused."""
    if isinstance(x.value, bool):
        return f"YAML 1.1 reads {str(x)!r} as {str(x.value).lower()}, not a number; write the number"
    if isinstance(x.value, (int, float)):
        return f"YAML 1.1 reads {str(x)!r} as {x.value!r}; write the number in plain decimal"
    return ""


def _fail(x: Any, tp: Any, key: str, hint: str = ""):
    if isinstance(x, Raw):
        shown = repr(str(x))
    elif isinstance(x, str):
        shown = f"{x!r} (a quoted string)"
    else:
        shown = repr(plain_value(x))
    raise ConfigError(f"{key}: expected {type_name(tp)}, got {shown}" + (f"; {hint}" if hint else ""))


# ----------------------------------------------------------------------------- valid ranges
@dataclasses.dataclass(frozen=True)
class Range:
    """The valid values of a numeric field: finite, in [low, high] (either end open, or
    missing), or one of `also` (sentinels such as -1 for "all")."""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    also: tuple = ()

    def __contains__(self, v: float) -> bool:
        if v in self.also:
            return True
        if not math.isfinite(v):
            return False
        above = self.low is None or (v > self.low if self.low_open else v >= self.low)
        below = self.high is None or (v < self.high if self.high_open else v <= self.high)
        return above and below

    def __str__(self) -> str:
        ends = []
        if self.low is not None:
            ends.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            ends.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return " and ".join(["a finite number", *ends]).replace("number and", "number", 1) + \
            "".join(f" (or {a})" for a in self.also)


def check_ranges(section: Any, where: str, rule: Callable[[str, Any], Range | None]) -> None:
    """ConfigError for the first numeric field of dataclass instance `section` (or number
    inside a tuple field) outside `rule(field name, value)`; None means any value."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                valid = rule(f.name, v)
                if valid is not None and v not in valid:
                    noun = "an integer" if isinstance(v, int) else "a finite number"
                    raise ConfigError(f"{where}.{f.name}={v!r}: must be {str(valid).replace('a finite number', noun)}")


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

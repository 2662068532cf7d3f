"""Experiment configs: YAML sections validated against typed, frozen dataclasses.

    cfg = load("configs/mnist1d_cnn.yaml", ["train.steps=2000", "optimizer.learning_rate=3e-3"])

Sections: `model` and `data` (a `name` from the registries plus that entry's own fields),
`optimizer`, `train`, `run`, `mesh`. Overrides are dotted `key=value`, read with YAML typing.
The declared type of a field wins over YAML 1.1's guesses: a `str` field keeps `yes` or
`1.10` as written, a `float` field reads `1e-3` (which YAML 1.1 calls a string) as 0.001.
Every mistake raises ConfigError with one line naming the key, what was expected and the
closest valid key; nothing has been built or compiled when it is raised.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A user mistake in a config or on the command line; the CLI prints it and exits 2."""


# ----------------------------------------------------------------------------- sections
@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    name: str = "adam"                   # any optax optimizer taking `learning_rate`
    learning_rate: float = 1e-3          # peak learning rate
    schedule: Literal["constant", "cosine", "linear", "warmup_cosine", "warmup_linear"] = "constant"
    warmup_steps: int = 0                # linear warmup from 0 (any schedule)
    end_learning_rate: float = 0.0       # where cosine/linear decay ends, at train.steps
    clip_norm: float | None = None       # clip gradients by global norm
    weight_decay: float = 0.0
    weight_decay_mask: str | None = None  # regex over "a/b/kernel" paths; None: params with ndim >= 2
    accumulate_steps: int = 1            # micro-batches per optimizer step
    kwargs: dict = dataclasses.field(default_factory=dict)  # the optax function's other arguments


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 100                # global batch, over all devices and hosts
    eval_every: int = 0                  # 0: evaluate at the end only
    eval_batch_size: int = 1000
    eval_batches: int = 0                # 0: the whole evaluation set; N: its first N batches only
    select: Literal["last", "val_loss", "val_accuracy", "val_loss_and_accuracy"] = "last"
                                         # the params evaluated at the end: the last, or the best
                                         # validation evaluation's (zoo.selection)
    patience: int = 0                    # with select: stop after this many evaluations without
                                         # improvement; 0: train all steps
    log_every: int = 100
    seed: int = 0                        # seeds init, shuffling, dropout: everything
    precision: Literal["float32", "bfloat16"] = "float32"  # compute dtype; params stay float32
    checkpoint_every: int = 0            # 0: checkpoint at the end (and on SIGINT/SIGTERM) only
    keep_checkpoints: int = 3


@dataclasses.dataclass(frozen=True)
class RunConfig:
    dir: str = "runs"
    name: str | None = None              # default: the config file's stem
    resume: bool = False                 # continue runs/<name> from its latest checkpoint
    plots: bool = True                   # write loss curves (PNG) into the run directory


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    data: int = -1                       # devices on the data axis; -1: all not used by fsdp
    fsdp: int = 1                        # devices params are sharded over (FSDP); 1: replicated
    coordinator_address: str | None = None  # multi-host: "host:port" of process 0
    num_processes: int | None = None    # -1: discover from the environment (TPU pods, SLURM)
    process_id: int | None = None


@dataclasses.dataclass(frozen=True)
class Config:
    model_name: str
    model: Any                           # the family's frozen config
    data_name: str
    data: Any                            # the dataset's frozen config
    optimizer: OptimizerConfig
    train: TrainConfig
    run: RunConfig
    mesh: MeshConfig
    source: str | None = None            # the YAML file it came from

    def to_dict(self) -> dict:
        return {"model": {"name": self.model_name, **_plain(self.model)},
                "data": {"name": self.data_name, **_plain(self.data)},
                **{s: _plain(getattr(self, s)) for s in ("optimizer", "train", "run", "mesh")}}

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)


def _plain(section: Any) -> dict:
    d = dataclasses.asdict(section)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def dump(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


# ----------------------------------------------------------------------------- YAML with raw text
class _Raw(str):
    """A plain YAML scalar: the text as written, plus YAML's own reading of it in `.value`."""
    value: Any


class _Loader(yaml.SafeLoader):
    def construct_object(self, node, deep=False):
        value = super().construct_object(node, deep)
        if isinstance(node, yaml.ScalarNode) and node.style is None:
            raw = _Raw(node.value)
            raw.value = value
            return raw
        return value


def _parse(text: str, where: str) -> Any:
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


def _value(x: Any) -> Any:
    """YAML's own reading of a parsed tree (raw scalars unwrapped)."""
    if isinstance(x, _Raw):
        return x.value
    if isinstance(x, dict):
        return {str(_value(k)): _value(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_value(v) for v in x]
    return x


# ----------------------------------------------------------------------------- typed conversion
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _convert(x: Any, tp: Any, key: str) -> Any:
    """`x` (parsed YAML, raw scalars kept) as type `tp`, or ConfigError naming `key`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if type(None) in typing.get_args(tp) and _value(x) is None:
            return None
        for arg in typing.get_args(tp):
            try:
                return _convert(x, arg, key)
            except ConfigError:
                pass
        return _fail(x, tp, key)
    if origin is Literal:
        for choice in typing.get_args(tp):
            try:
                if _convert(x, type(choice), key) == choice:
                    return choice
            except ConfigError:
                pass
        return _fail(x, tp, key)
    if origin is tuple:
        items = x if isinstance(x, list) else [x]
        return tuple(_convert(v, typing.get_args(tp)[0], key) for v in items)
    if tp is type(None):
        return None if _value(x) is None else _fail(x, tp, key)
    if tp is str:
        return str(x) if isinstance(x, str) else _fail(x, tp, key)
    if tp in (dict, Any):
        v = _value(x)
        return v if tp is Any or isinstance(v, dict) else _fail(x, tp, key)
    v = _value(x)
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
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {_value(x)!r}")


def _closest(name: str, valid: list[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    return f"; did you mean {prefix + close[0]!r}?" if close else f"; valid keys: {', '.join(valid)}"


def build_section(cls: type, values: dict, section: str, owner: str = "") -> Any:
    """An instance of dataclass `cls` from parsed YAML `values`, every key checked.
    `owner` names whose keys these are in messages (e.g. "model 'lstm'")."""
    if not isinstance(values, dict):
        raise ConfigError(f"{section}: expected a mapping of keys to values, got {_value(values)!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in values:
        if key not in fields:
            what = f"unknown key for {owner}" if owner else "unknown key"
            raise ConfigError(f"{section}.{key}: {what}{_closest(str(key), list(fields), section + '.')}")
    kwargs = {k: _convert(v, hints[k], f"{section}.{k}") for k, v in values.items()}
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{section}.{name} is required ({_type_name(hints[name])}); "
                              f"set it in the config or with {section}.{name}=...")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{section}: {e}") from None


# ----------------------------------------------------------------------------- registries
def _named(values: dict, section: str, registry: dict, what: str, entry=None) -> tuple[str, Any]:
    """(name, config) of a section that picks a registry entry by name; `entry(name)`, when
    given, also resolves names outside the registry (data plugins "package.module:function")."""
    if not isinstance(values, dict) or "name" not in values:
        raise ConfigError(f"{section}.name is required; valid {what}s: {', '.join(sorted(registry))}")
    name = str(values["name"])
    found = registry.get(name) if entry is None else entry(name)
    if found is None:
        close = difflib.get_close_matches(name, list(registry), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        own = ", or 'package.module:function' for your own" if entry is not None else ""
        raise ConfigError(f"{section}.name: unknown {what} {name!r}{hint}; valid: {', '.join(sorted(registry))}{own}")
    rest = {k: v for k, v in values.items() if k != "name"}
    return name, build_section(found.config, rest, section, f"{what} {name!r}")


def optax_optimizers() -> dict[str, Any]:
    """Every optax optimizer factory: the public callables that take a `learning_rate`."""
    import optax
    out = {}
    for name in dir(optax):
        fn = getattr(optax, name)
        if name.startswith(("_", "scale_by")) or not inspect.isfunction(fn):
            continue
        try:
            if "learning_rate" in inspect.signature(fn).parameters:
                out[name] = fn
        except (TypeError, ValueError):
            continue
    return out


def _check_optimizer(opt: OptimizerConfig) -> None:
    optimizers = optax_optimizers()
    if opt.name not in optimizers:
        close = difflib.get_close_matches(opt.name, list(optimizers), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"optimizer.name: unknown optax optimizer {opt.name!r}{hint}; "
                          f"valid: {', '.join(sorted(optimizers))}")
    params = inspect.signature(optimizers[opt.name]).parameters
    for key in opt.kwargs:
        if key not in params or key == "learning_rate":
            valid = [p for p in params if p != "learning_rate"]
            raise ConfigError(f"optimizer.kwargs.{key}: optax.{opt.name} takes no argument {key!r}"
                              f"{_closest(key, valid)}")
    if opt.schedule.startswith("warmup_") and opt.warmup_steps <= 0:
        raise ConfigError(f"optimizer.schedule={opt.schedule} needs optimizer.warmup_steps > 0")
    if opt.weight_decay_mask is not None:
        import re
        try:
            re.compile(opt.weight_decay_mask)
        except re.error as e:
            raise ConfigError(f"optimizer.weight_decay_mask: not a valid regular expression ({e})") from None


def _check_train(train: TrainConfig, opt: OptimizerConfig) -> None:
    positive = {"steps": train.steps, "batch_size": train.batch_size, "log_every": train.log_every,
                "eval_batch_size": train.eval_batch_size, "keep_checkpoints": train.keep_checkpoints}
    for key, v in positive.items():
        if v <= 0:
            raise ConfigError(f"train.{key} must be positive, got {v}")
    if opt.accumulate_steps <= 0 or train.batch_size % opt.accumulate_steps:
        raise ConfigError(f"optimizer.accumulate_steps={opt.accumulate_steps} must be positive and "
                          f"divide train.batch_size={train.batch_size}")
    if train.patience < 0:
        raise ConfigError(f"train.patience={train.patience} must be >= 0 (0: never stop early)")
    if train.select == "last" and train.patience:
        raise ConfigError("train.patience needs a validation metric to watch: set train.select="
                          "val_loss, val_accuracy or val_loss_and_accuracy")
    if train.select != "last" and not train.eval_every:
        raise ConfigError(f"train.select={train.select} compares periodic evaluations: set train.eval_every "
                          f"(e.g. train.eval_every=1)")


# ----------------------------------------------------------------------------- loading
SECTIONS = ("model", "data", "optimizer", "train", "run", "mesh")


def read_yaml(path: str | Path) -> dict:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {str(path)!r} not found; give the path of a YAML file "
                          f"such as configs/mnist1d_cnn.yaml")
    tree = _parse(file.read_text(encoding="utf-8"), str(path))
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping with sections {', '.join(SECTIONS)}")
    return tree


def apply_override(tree: dict, override: str) -> None:
    """Set `a.b.c=value` in the parsed tree; the value is read as YAML."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r} is not key=value; write e.g. train.steps=2000")
    parts = key.strip().split(".")
    if parts[0] not in SECTIONS:
        raise ConfigError(f"override {key!r}: unknown section {parts[0]!r}{_closest(parts[0], list(SECTIONS))}")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {part} is not a section")
    node[parts[-1]] = _parse(text, f"override {key}") if text.strip() else _Raw("")


def from_tree(tree: dict, source: str | None = None) -> Config:
    from zoo.data import DATASETS, entry
    from zoo.models import REGISTRY

    for section in tree:
        if section not in SECTIONS:
            raise ConfigError(f"{section}: unknown section{_closest(str(section), list(SECTIONS))}")
    model_name, model = _named(tree.get("model"), "model", REGISTRY, "model")
    data_name, data = _named(tree.get("data"), "data", DATASETS, "dataset", entry)
    sections = {s: build_section(cls, tree.get(s) or {}, s) for s, cls in
                (("optimizer", OptimizerConfig), ("train", TrainConfig), ("run", RunConfig), ("mesh", MeshConfig))}
    _check_optimizer(sections["optimizer"])
    _check_train(sections["train"], sections["optimizer"])
    return Config(model_name=model_name, model=model, data_name=data_name, data=data,
                  source=source, **sections)


def load(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML config, apply dotted overrides, validate every section. An override that
    changes model.name (data.name) starts that section afresh from the new model's defaults."""
    tree = read_yaml(path) if path is not None else {}
    names = {key.strip(): value.strip() for key, _, value in (o.partition("=") for o in overrides)}
    for section in ("model", "data"):
        # `model.name=gru` on a CNN config: the file's other model keys belong to the CNN, drop them
        file_section = tree.get(section)
        renamed = names.get(f"{section}.name")
        if renamed is not None and isinstance(file_section, dict) and str(file_section.get("name")) != renamed:
            tree[section] = {}
    for override in overrides:
        apply_override(tree, override)
    cfg = from_tree(tree, str(path) if path is not None else None)
    if cfg.run.name is None:
        cfg = cfg.replace(run=dataclasses.replace(cfg.run, name=Path(path).stem if path else cfg.model_name))
    return cfg

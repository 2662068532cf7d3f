"""zoo's config schema: the typed, frozen sections of an experiment (`model` and `data` from the
registries, `optimizer`, `train`, `run`, `mesh`), their checks, and the replicas a stacked run
trains.

`from_tree(tree)` turns a parsed YAML tree into a validated Config; zoo.config reads the tree
from a file and its overrides. Every mistake raises ConfigError with one line naming the key,
what was expected and the closest valid key; nothing has been built or compiled when it is
raised.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
from typing import Any, Literal

import yaml

from zoo.errors import ConfigError
from zoo.typed_yaml import Range, build_section, check_ranges, closest


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
    freeze: str | None = None            # regex over "a/b/kernel" paths kept fixed (fine-tuning)
    kwargs: dict = dataclasses.field(default_factory=dict)  # the optax function's other arguments


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000                    # optimizer steps to train for
    batch_size: int = 100                # global batch, over all devices and hosts
    eval_every: int = 0                  # 0: evaluate at the end only
    eval_batch_size: int = 1000          # also the batch predict pads its inputs into
    eval_batches: int = 0                # 0: the whole evaluation set; N: its first N batches only
    select: Literal["last", "val_loss", "val_accuracy", "val_loss_and_accuracy"] = "last"
                                         # the params evaluated at the end: the last, or the best
                                         # validation evaluation's (zoo.selection)
    patience: int = 0                    # with select: stop after this many evaluations without
                                         # improvement; 0: train all steps
    log_every: int | None = None         # steps between metrics.jsonl records; None: train.steps / LOG_POINTS
    seed: int = 0                        # seeds init, shuffling, dropout: everything
    precision: Literal["float32", "bfloat16"] = "float32"  # compute dtype; params stay float32
    checkpoint_every: int = 0            # 0: checkpoint at the end (and on SIGINT/SIGTERM) only
    keep_checkpoints: int = 3            # the newest N checkpoints are kept
    init_from: str | None = None         # a run directory: start from its params (fine-tuning)
    init_step: int | None = None         # init_from's checkpoint step; None: the latest
    init_exclude: str | None = None      # regex over param paths left at their fresh init (a new head)
    profile_steps: tuple[int, ...] = ()  # [a, b]: a jax.profiler trace of steps a..b into RUN/profile/
    seeds: int | tuple[int, ...] = 1     # N: seeds seed..seed+N-1, or a list; N > 1 (or any list) trains
                                         # the replicas as one vmapped program (zoo.replicas)
    sweep: dict = dataclasses.field(default_factory=dict)  # {"optimizer.learning_rate": [1e-3, 1e-2]}:
                                         # one replica per value (per seed); zoo.replicas
    steps_per_execution: int = 1         # K: train K steps per call of one compiled program (a scan over K
                                         # batches sent in one transfer), as Keras' steps_per_execution:
                                         # pays on small dense models, whose steps are shorter than a
                                         # dispatch; measure: XLA's CPU convolutions run slower in a scan
    max_bad_steps: int = 10              # stop after this many consecutive steps with a non-finite
                                         # loss or gradient (each one is skipped: params unchanged)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    dir: str = "runs"
    name: str | None = None              # default: the config file's stem
    resume: bool = False                 # continue runs/<name> from its latest checkpoint
    plots: bool = True                   # write training curves (PNG) into the run directory
    tensorboard: bool = False            # also write metrics as TensorBoard events into RUN/tensorboard/
    allow_changes: bool = False          # resume with a changed model, optimizer, data or data order
                                         # (batch_size, seed, precision, select); exactness is lost
    compilation_cache: bool = True       # keep compiled programs between runs (zoo train; $ZOO_COMPILATION_CACHE)


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    data: int = -1                       # devices on the data axis; -1: all not used by fsdp
    fsdp: int = 1                        # devices params are sharded over (FSDP); 1: replicated
    coordinator_address: str | None = None  # multi-host: "host:port" of process 0
    num_processes: int | None = None    # -1: discover from the environment (TPU pods, SLURM)
    process_id: int | None = None
    seeds: int = 1                       # devices the replicas of train.seeds/sweep are spread over


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

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


def _plain(section: Any) -> dict:
    d = dataclasses.asdict(section)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def dump(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


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
                              f"{closest(key, valid)}")
    if opt.schedule.startswith("warmup_") and opt.warmup_steps <= 0:
        raise ConfigError(f"optimizer.schedule={opt.schedule} needs optimizer.warmup_steps > 0")
    _check_regex("optimizer.weight_decay_mask", opt.weight_decay_mask)
    _check_regex("optimizer.freeze", opt.freeze)


def _check_regex(key: str, pattern: str | None) -> None:
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as e:
            raise ConfigError(f"{key}: not a valid regular expression ({e})") from None


def _check_train(train: TrainConfig, opt: OptimizerConfig) -> None:
    if train.batch_size % opt.accumulate_steps:  # both >= 1 (RANGES)
        raise ConfigError(f"optimizer.accumulate_steps={opt.accumulate_steps} must divide "
                          f"train.batch_size={train.batch_size}")
    if train.select == "last" and train.patience:
        raise ConfigError("train.patience needs a validation metric to watch: set train.select="
                          "val_loss, val_accuracy or val_loss_and_accuracy")
    _check_regex("train.init_exclude", train.init_exclude)
    if train.init_from is None and (train.init_step is not None or train.init_exclude is not None):
        raise ConfigError("train.init_step and train.init_exclude need train.init_from=RUN_DIR")
    _check_profile_steps(train)
    if train.select != "last" and not train.eval_every:
        raise ConfigError(f"train.select={train.select} compares periodic evaluations: set train.eval_every "
                          f"(e.g. train.eval_every=1)")


LOG_POINTS = 50  # records per run by default: a curve, not two points


def _log_every(train: TrainConfig) -> TrainConfig:
    """train.log_every=None: LOG_POINTS records over the run (every step in a run that short)."""
    if train.log_every is not None:
        return train
    return dataclasses.replace(train, log_every=max(1, train.steps // LOG_POINTS))


def _check_profile_steps(train: TrainConfig) -> None:
    steps = train.profile_steps
    if steps and not (len(steps) == 2 and 1 <= steps[0] <= steps[1] <= train.steps):
        raise ConfigError(f"train.profile_steps={list(steps)} must be [first, last] with 1 <= first <= last <= "
                          f"train.steps={train.steps}, e.g. train.profile_steps=[10,12]")


# ----------------------------------------------------------------------------- replicas
# Swept keys whose values a stacked program takes as traced numbers (zoo.replicas); any other
# key changes the program (shapes, or constants in a model's closure such as a kernel size).
TRACED_SWEEP_KEYS = ("optimizer.learning_rate", "optimizer.end_learning_rate", "optimizer.weight_decay",
                     "model.dropout_rate")


def seed_list(train: TrainConfig) -> tuple[int, ...]:
    """The seeds of train.seeds: N -> train.seed .. train.seed+N-1; a list as given."""
    return tuple(train.seeds) if isinstance(train.seeds, tuple) else tuple(range(train.seed, train.seed + train.seeds))


def is_stacked(cfg: Config) -> bool:
    """Whether `cfg` trains several replicas (train.seeds other than 1, or train.sweep)."""
    return cfg.train.seeds != 1 or bool(cfg.train.sweep)


def sweep_points(cfg: Config) -> list[dict[str, Any]]:
    """Every combination of train.sweep's values, as [{key: value}], in the order given."""
    import itertools
    keys = list(cfg.train.sweep)
    for key, values in cfg.train.sweep.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"train.sweep.{key}: expected a non-empty list of values, got {values!r}; "
                              f"write e.g. train.sweep={{{key}: [0.001, 0.01]}}")
        if key.split(".")[0] not in ("model", "data", "optimizer") or key.startswith(("model.name", "data.name")):
            raise ConfigError(f"train.sweep.{key}: sweep a key of model, data or optimizer (not a name); "
                              f"e.g. optimizer.learning_rate")
    return [dict(zip(keys, point)) for point in itertools.product(*cfg.train.sweep.values())]


def _check_replicas(cfg: Config) -> None:
    if cfg.mesh.seeds < 1 or (cfg.mesh.seeds > 1 and not is_stacked(cfg)):
        raise ConfigError(f"mesh.seeds={cfg.mesh.seeds} spreads replicas over devices: it must be >= 1, and "
                          f"> 1 only with train.seeds=N or train.sweep")
    if not is_stacked(cfg):
        return
    count = len(replica_configs(cfg))  # every replica's config is valid, or ConfigError now
    if count % cfg.mesh.seeds:
        raise ConfigError(f"mesh.seeds={cfg.mesh.seeds} must divide the {count} replicas (train.seeds x "
                          f"train.sweep); try mesh.seeds=1")


def replica_configs(cfg: Config) -> list[Config]:
    """The config of each replica: one per seed x sweep point (seeds vary fastest), each a plain
    single run (train.seeds=1, no sweep); ConfigError for a seed or swept value that is invalid."""
    seeds = seed_list(cfg.train)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"train.seeds={list(seeds)}: give a count >= 1 or a list of distinct seeds")
    out = []
    for point in sweep_points(cfg):
        for seed in seeds:
            tree = cfg.to_dict()
            tree["train"].update(seed=seed, seeds=1, sweep={})
            tree["mesh"]["seeds"] = 1
            for key, value in point.items():
                set_dotted(tree, key, value)
            out.append(from_tree(tree, cfg.source))
    return out


# Valid values by field name, for every section and every model and dataset config (first match
# wins; fnmatch patterns). A field no pattern names is a size or a count: an int >= 1, or a
# float > 0 (tolerances, times, ratios). Every value is finite.
NONNEGATIVE = Range(0)
RANGES = [
    ("*learning_rate", NONNEGATIVE),     # 0 is allowed: a frozen control run
    ("*_rate", Range(0, 1, high_open=True)),
    ("*momentum", Range(0, 1, high_open=True)),   # a running average's decay (BatchNorm)
    ("*_fraction", Range(0, 1, low_open=True, high_open=True)),
    ("remember_bias", Range()), ("negative_slope", Range()),
    ("data", Range(1, also=(-1,))), ("num_processes", Range(1, also=(-1,))),
    ("*seed", NONNEGATIVE), ("seeds", NONNEGATIVE), ("process_id", NONNEGATIVE), ("weight_decay", NONNEGATIVE),
    ("warmup_steps", NONNEGATIVE), ("init_step", NONNEGATIVE), ("eval_every", NONNEGATIVE),
    ("eval_batches", NONNEGATIVE), ("patience", NONNEGATIVE), ("checkpoint_every", NONNEGATIVE),
    ("val_size", NONNEGATIVE), ("max_cycles", NONNEGATIVE), ("padding", NONNEGATIVE),
    ("depth", NONNEGATIVE), ("rho_depth", NONNEGATIVE), ("augment_dim", NONNEGATIVE), ("label_map", NONNEGATIVE),
    ("train_nodes", NONNEGATIVE),
]


def valid_range(name: str, value: float) -> Range:
    """The valid values of field `name` (RANGES, else the default for sizes and counts)."""
    import fnmatch
    for pattern, valid in RANGES:
        if fnmatch.fnmatchcase(name, pattern):
            return valid
    return Range(1) if isinstance(value, int) else Range(0, low_open=True)


def _check_run(run: RunConfig) -> None:
    name = run.name
    if name is not None and (name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name):
        raise ConfigError(f"run.name={name!r}: a run name is one directory name inside run.dir "
                          f"(no '/', not '.' or '..'); choose e.g. run.name=my_run")


# ----------------------------------------------------------------------------- a whole config
SECTIONS = ("model", "data", "optimizer", "train", "run", "mesh")


def from_tree(tree: dict, source: str | None = None) -> Config:
    """The validated Config of a parsed YAML tree (sections as dicts; `source`: the file it was
    read from), or ConfigError naming the first key that is wrong."""
    from zoo.data import DATASETS, entry
    from zoo.models import REGISTRY

    for section in tree:
        if section not in SECTIONS:
            raise ConfigError(f"{section}: unknown section{closest(str(section), list(SECTIONS))}")
    model_name, model = _named(tree.get("model"), "model", REGISTRY, "model")
    data_name, data = _named(tree.get("data"), "data", DATASETS, "dataset", entry)
    sections = {s: build_section(cls, tree.get(s) or {}, s) for s, cls in
                (("optimizer", OptimizerConfig), ("train", TrainConfig), ("run", RunConfig), ("mesh", MeshConfig))}
    sections["train"] = _log_every(sections["train"])
    own = [("model", model), *([] if data_name not in DATASETS else [("data", data)]), *sections.items()]
    for name, section in own:  # a plugin dataset's keys are its function's to check
        check_ranges(section, name, valid_range)
    _check_optimizer(sections["optimizer"])
    _check_train(sections["train"], sections["optimizer"])
    _check_run(sections["run"])
    cfg = Config(model_name=model_name, model=model, data_name=data_name, data=data, source=source, **sections)
    _check_replicas(cfg)
    return cfg


def set_dotted(tree: dict, key: str, value: Any) -> None:
    """tree["a"]["b"]["c"] = value for key "a.b.c", making the sections on the way."""
    *path, last = key.split(".")
    node = tree
    for part in path:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {part} is not a section")
    node[last] = value

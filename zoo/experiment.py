"""The experiment API: everything a run is, built from its config, and the runs already trained.

    exp = experiment.build(cfg)                 # dataset, model, optimizer, mesh; validated
    shapes, shardings = experiment.abstract_state(exp)   # jax.eval_shape: no device touched
    state, shardings = experiment.init_state(exp)        # the fresh train state on the mesh
    run = experiment.load_run("runs/mnist1d_cnn")        # a trained run: config, model, params

The train state is one pytree, {"params", "opt_state", "step", "key"}, laid out on the mesh
(zoo.mesh). Training batches are a pure function of (seed, step). Every command and tool
(train, evaluate, predict, export, compile, probes, benches) starts from here rather than
re-assembling setup -> state by hand.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

import zoo.models.layers as L
from zoo import checkpoint, compatibility, optim
from zoo import mesh as meshlib
from zoo.config import load_run_config
from zoo.data import Dataset, validate
from zoo.data import entry as dataset_entry
from zoo.errors import ConfigError
from zoo.models import Model, entry
from zoo.models.core import trainable
from zoo.schema import TRACED_SWEEP_KEYS, Config, is_stacked, replica_configs
from zoo.tasks import TASKS


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A config made concrete: its dataset, model, loss, optimizer and device mesh."""
    cfg: Config
    dataset: Dataset
    model: Model
    task: Callable                       # (outputs, batch) -> metric sums (zoo.tasks)
    tx: optax.GradientTransformation
    lr: optax.Schedule
    mesh: jax.sharding.Mesh


# ----------------------------------------------------------------------------- building
def fill_model_defaults(model_cfg: Any, defaults: dict) -> Any:
    """Set output sizes (num_outputs, vocab_size, ...) the config left as None from the dataset."""
    names = {f.name for f in dataclasses.fields(model_cfg)}
    fill = {k: v for k, v in defaults.items() if k in names and getattr(model_cfg, k) is None}
    return dataclasses.replace(model_cfg, **fill)


def platform(mesh: jax.sharding.Mesh) -> str:
    """The device platform of a mesh ("cpu", "gpu", "tpu"): what implementation choices follow."""
    return mesh.devices.flat[0].platform


def build_model(name: str, model_cfg: Any, mesh: jax.sharding.Mesh) -> Model:
    """Model `name` as it should run on the mesh's platform (ModelEntry.for_platform)."""
    e = entry(name)
    cfg = e.for_platform(model_cfg, platform(mesh)) if e.for_platform else model_cfg
    return e.build(name, cfg)


def _check_batches(cfg: Config, dataset: Dataset, mesh: jax.sharding.Mesh) -> None:
    if dataset.shardable:
        meshlib.check_batch(mesh, cfg.train.batch_size // cfg.optimizer.accumulate_steps,
                            "train.batch_size / optimizer.accumulate_steps")
        meshlib.check_batch(mesh, cfg.train.eval_batch_size, "train.eval_batch_size")
    if cfg.train.select != "last" and not dataset.has_validation():
        raise ConfigError(f"train.select={cfg.train.select} needs a validation split, and data "
                          f"{cfg.data_name!r} has none; use train.select=last")


def build(cfg: Config, *, devices: list | None = None) -> Experiment:
    """The experiment of `cfg` on `devices` (default: every device of every process). User
    mistakes raise ConfigError; nothing is compiled and no run directory is made."""
    if devices is None:
        meshlib.initialize_distributed(cfg.mesh)
    dataset = dataset_entry(cfg.data_name).load(cfg.data)  # a registered name or a plugin
    compatibility.check_task(cfg.model_name, cfg.data_name, dataset.task)
    cfg = cfg.replace(model=fill_model_defaults(cfg.model, dataset.model_defaults))
    validate.against_model(dataset, cfg.model, cfg.data_name)
    mesh = meshlib.make_mesh(cfg.mesh, devices)
    model = build_model(cfg.model_name, cfg.model, mesh)
    _check_batches(cfg, dataset, mesh)
    tx, lr = optim.build(cfg.optimizer, cfg.train.steps)
    return Experiment(cfg, dataset, model, TASKS[dataset.task], tx, lr, mesh)


# ----------------------------------------------------------------------------- batches
def shard(exp: Experiment) -> tuple[int, int]:
    """This process's share of each batch: (process index, process count) over the mesh."""
    if not exp.dataset.shardable:
        return (0, 1)
    return meshlib.process_shard(exp.mesh)


def host_batch(exp: Experiment, step: int) -> dict:
    """This process's rows of training batch `step`, as NumPy arrays."""
    t = exp.cfg.train
    return exp.dataset.train_batch(t.seed, step, t.batch_size, shard(exp))


def train_batch(exp: Experiment, step: int) -> dict:
    """Training batch `step`, one global array per leaf laid out on the mesh."""
    return meshlib.global_batch(host_batch(exp, step), meshlib.batch_sharding(exp.mesh, exp.dataset.shardable))


def batch_spec(exp: Experiment) -> Any:
    """Shapes, dtypes and shardings of a global training batch, for compiling without data."""
    local = host_batch(exp, 0)
    count = 1 if not exp.dataset.shardable else shard(exp)[1]
    sharding = meshlib.batch_sharding(exp.mesh, exp.dataset.shardable)
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct((a.shape[0] * count, *a.shape[1:]), a.dtype,
                                                       sharding=sharding), local)


# ----------------------------------------------------------------------------- the loss
def compute_dtype(exp: Experiment):
    return jnp.bfloat16 if exp.cfg.train.precision == "bfloat16" else jnp.float32


def cast(tree, dtype):
    """Floating leaves of `tree` as `dtype`; integer leaves (token ids, indices) unchanged."""
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def loss_sums(exp: Experiment, params, batch: dict, key, train: bool) -> tuple[dict, dict]:
    """(metric sums, model stats) of one batch in the configured precision: sums["loss"] /
    sums["count"] is the mean loss (zoo.tasks)."""
    dtype = compute_dtype(exp)
    outputs, stats = exp.model.apply_with_stats(cast(params, dtype), cast(batch["x"], dtype),
                                                key=key, train=train)
    return exp.task(outputs, batch), stats


# ----------------------------------------------------------------------------- state
def state_fn(exp: Experiment) -> Callable:
    """make(init_key, x) -> the fresh train state; x: an example input (only shapes matter)."""
    _, train_key = jax.random.split(jax.random.PRNGKey(exp.cfg.train.seed))

    def make(init_key, x):
        params = exp.model.init(init_key, x)
        return {"params": params, "opt_state": exp.tx.init(params),
                "step": jnp.zeros((), jnp.int32), "key": train_key}
    return make


def fresh_state(exp: Experiment, seed, x) -> dict:
    """The fresh train state a run with train.seed=`seed` starts from (`seed` may be traced, so
    that N replicas' states are one vmapped call); x: an example input (only shapes matter)."""
    init_key, train_key = jax.random.split(jax.random.PRNGKey(seed))
    return {**state_fn(exp)(init_key, x), "key": train_key}


def init_key(exp: Experiment) -> jax.Array:
    """The key the parameters are initialised from (the first half of PRNGKey(train.seed))."""
    return jax.random.split(jax.random.PRNGKey(exp.cfg.train.seed))[0]


def abstract_state(exp: Experiment, batch: Any = None, *, check_inputs: bool = False) -> tuple[Any, Any]:
    """(ShapeDtypeStructs with shardings, shardings) of the train state; touches no device.
    check_inputs: the model is applied to the batch too (abstractly, in the same trace), so
    inputs it cannot take fail here, before a run directory exists (what a new run and `zoo
    summary` need; a trained run's state is only restored). batch: batch_spec(exp), when the
    caller has it."""
    x = (batch_spec(exp) if batch is None else batch)["x"]
    compatibility.check_inputs(exp.cfg.model_name, exp.cfg.data_name, x)

    def state_of_an_applied_model(key, x):
        state = state_fn(exp)(key, x)
        if check_inputs:
            exp.model.apply(state["params"], x)
        return state
    try:
        shapes = jax.eval_shape(state_of_an_applied_model, jax.ShapeDtypeStruct((2,), jnp.uint32), x)
    except ConfigError as e:  # a model's own check of its input shapes
        shape = jax.tree.map(lambda a: list(a.shape), x)
        raise ConfigError(f"model {exp.cfg.model_name!r} cannot take {exp.cfg.data_name} inputs of shape "
                          f"{shape}: {e}") from None
    shardings = meshlib.state_shardings(exp.mesh, shapes)
    return checkpoint.abstract(shapes, shardings), shardings


def init_state(exp: Experiment, shardings: Any = None) -> tuple[dict, Any]:
    """The fresh train state of `exp` on its mesh, and its shardings (abstract_state's, unless
    the caller has them)."""
    shardings = abstract_state(exp)[1] if shardings is None else shardings
    x = jax.tree.map(jnp.asarray, host_batch(exp, 0)["x"])
    return jax.jit(state_fn(exp), out_shardings=shardings)(init_key(exp), x), shardings


def count_params(params) -> int:
    """The number of trained parameters (a model's state, zoo.models.core.STATE, is not counted)."""
    return int(sum(np.prod(p.shape) for p in jax.tree.leaves(trainable(params))))


# ----------------------------------------------------------------------------- replicas
def swept_value(cfg: Config, key: str) -> Any:
    """The value of a swept key ("optimizer.learning_rate", "model.dropout_rate") in `cfg`."""
    section, field = key.split(".", 1)
    return getattr(getattr(cfg, section), field)


def traced_values(key: str, values) -> Any:
    """What a stacked program takes for the swept `values` of `key` (one per replica, or one):
    float32 numbers, or for a dropout rate the exact keep probabilities (layers.SweptRate)."""
    return L.SweptRate.of(values) if key == "model.dropout_rate" else np.asarray(values, np.float32)


def with_hyperparameters(exp: Experiment, values: dict[str, Any]) -> Experiment:
    """`exp` with its optimizer rebuilt for {"optimizer.learning_rate": v, ...} and its model for
    {"model.dropout_rate": SweptRate}; a value may be an array or traced (one per replica of a
    stacked run), and the optimizer then keeps every stage a nonzero value needs, so its state
    has one structure for all the values."""
    by_section = {"optimizer": {}, "model": {}}
    for key, v in values.items():
        section, field = key.split(".", 1)
        by_section[section][field] = v
    if by_section["optimizer"]:
        tx, lr = optim.build(dataclasses.replace(exp.cfg.optimizer, **by_section["optimizer"]), exp.cfg.train.steps)
        exp = dataclasses.replace(exp, tx=tx, lr=lr)
    if by_section["model"]:
        model = build_model(exp.cfg.model_name, dataclasses.replace(exp.cfg.model, **by_section["model"]), exp.mesh)
        exp = dataclasses.replace(exp, model=model)
    return exp


def replica_experiments(exp: Experiment) -> list[Experiment]:
    """The experiment of each replica of a stacked run (train.seeds, train.sweep): the same
    data, model and mesh, with the replica's seed and swept values (traced_values: the
    optimizer state's structure is the stacked program's)."""
    swept = [key for key in exp.cfg.train.sweep if key in TRACED_SWEEP_KEYS]
    out = []
    for cfg in replica_configs(exp.cfg):
        values = {key: traced_values(key, swept_value(cfg, key)) for key in swept}
        replica = with_hyperparameters(exp, values) if values else exp
        model = dataclasses.replace(exp.cfg.model, **{k.split(".", 1)[1]: swept_value(cfg, k) for k in swept
                                                      if k.startswith("model.")})
        out.append(dataclasses.replace(replica, cfg=exp.cfg.replace(train=cfg.train, optimizer=cfg.optimizer,
                                                                    model=model)))
    return out


def stack_abstract(shapes: Any, count: int) -> Any:
    """ShapeDtypeStructs of `count` replicas of `shapes` stacked on a leading axis split over the
    mesh's "seeds" axis."""
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct((count, *a.shape), a.dtype,
                                                       sharding=meshlib.stacked(a.sharding)), shapes)


# ----------------------------------------------------------------------------- trained runs
@dataclasses.dataclass
class Run:
    """A trained (or checkpointed) run: its directory, experiment and parameters."""
    run_dir: Path
    exp: Experiment
    params: Any
    step: int

    @property
    def cfg(self) -> Config:
        return self.exp.cfg

    @property
    def model(self) -> Model:
        return self.exp.model


def reported_params(cfg: Config) -> Literal["last", "best"]:
    """The params a run's summary reports: the selected ones when it selected (train.select)."""
    return "last" if cfg.train.select == "last" else "best"


def load_run(run_dir: str | Path, step: int | None = None, params: Literal["last", "best"] = "last",
             *, devices: list | None = None, overrides: list[str] = (), replica: int | None = None) -> Run:
    """A run directory's experiment and parameters, laid out on the mesh.

    step: the checkpoint to read (default: the latest). params: "last", the parameters of that
    checkpoint's train state, or "best", the parameters a run with train.select kept (the ones
    its final metrics were computed with). replica: which replica of a stacked run (train.seeds,
    train.sweep; load_runs gives them all). Raises ConfigError for a directory that is not a
    run, a step without a checkpoint, "best" on a run that selected nothing, or a replica
    missing or out of range.
    """
    return _one(Path(run_dir), _saved_config(run_dir, overrides), step, params, devices, replica)


def _one(run_dir: Path, cfg: Config, step: int | None, params: Literal["last", "best"], devices: list | None,
         replica: int | None) -> Run:
    count = len(replica_configs(cfg)) if is_stacked(cfg) else 0
    if (replica is None) != (count == 0) or (replica is not None and not 0 <= replica < count):
        raise ConfigError(f"{run_dir} holds {count or 'no'} replicas (train.seeds/sweep): give replica=0..{count - 1}"
                          if count else f"{run_dir} is a single run; load it without replica")
    return _load(run_dir, cfg, step, params, devices)[replica or 0]


def load_one(run_dir: str | Path, step: int | None = None, params: Literal["last", "best"] = "last",
             replica: int | None = None) -> Run:
    """The one model a command uses (generate, probe, export): the single run, or replica
    `replica` of a run of many (default: the first)."""
    cfg = _saved_config(run_dir)
    return _one(Path(run_dir), cfg, step, params, None, 0 if replica is None and is_stacked(cfg) else replica)


def load_runs(run_dir: str | Path, step: int | None = None, params: Literal["last", "best"] = "last",
              *, devices: list | None = None, overrides: list[str] = ()) -> list[Run]:
    """Every replica of a run directory as a Run (one for a single run), read from one restore;
    arguments as load_run."""
    return _load(Path(run_dir), _saved_config(run_dir, overrides), step, params, devices)


def _saved_config(run_dir: str | Path, overrides: list[str] = ()) -> Config:
    """The config a run directory was trained with, read once; a stacked run's replicas come
    back whole on a data x fsdp mesh, whatever mesh.seeds trained them."""
    return load_run_config(Path(run_dir), ["mesh.seeds=1", *overrides])


def _load(run_dir: Path, cfg: Config, step: int | None, params: Literal["last", "best"],
          devices: list | None) -> list[Run]:
    from zoo.selection import Selection

    exp = build(cfg, devices=devices)
    ckpt = checkpoint.Checkpointer(run_dir / "checkpoints", cfg.train.keep_checkpoints, create=False)
    try:
        step = ckpt.check_step(step, run_dir)
        if params == "best" and cfg.train.select == "last":
            raise ConfigError(f"{run_dir} kept no best parameters (train.select=last); use params=last")
        exps = replica_experiments(exp) if is_stacked(cfg) else [exp]
        state, shardings = abstract_state(exps[0])
        selection = Selection.abstract(state["params"], exp.mesh) if cfg.train.select != "last" else None
        target = _saved(state, selection)
        restored, _ = ckpt.restore(stack_abstract(target, len(exps)) if is_stacked(cfg) else target, step)
    finally:
        ckpt.close()
    chosen = restored["best"]["params"] if params == "best" else restored["params"]
    if not is_stacked(cfg):
        return [Run(run_dir, exp, chosen, step)]
    return [Run(run_dir, e, jax.device_put(jax.tree.map(lambda a, i=i: a[i], chosen), shardings["params"]), step)
            for i, e in enumerate(exps)]


# ----------------------------------------------------------------------------- fine-tuning
def _by_path(params) -> dict[str, Any]:
    from zoo.optim import path_name
    return {path_name(p): leaf for p, leaf in jax.tree_util.tree_leaves_with_path(params)}


def _transfer_plan(source: dict, target: dict, exclude: str | None) -> tuple[set[str], list[str]]:
    """(target paths to copy from the source, mismatches) for shapes {path: shape} of one replica."""
    import re
    skip = re.compile(exclude).search if exclude else (lambda path: False)
    copy, problems = set(), []
    for path, shape in target.items():
        if skip(path):
            continue
        if path not in source:
            problems.append(f"{path} is not in the source run")
        elif source[path] != shape:
            problems.append(f"{path} is {list(source[path])} there, {list(shape)} here")
        else:
            copy.add(path)
    problems += [f"{path} of the source run has no place here" for path in source
                 if path not in target and not skip(path)]
    return copy, problems


def warm_params(exp: Experiment, params, shardings, replicas: int | None = None):
    """`params` with those of train.init_from copied in; paths matching train.init_exclude keep
    their fresh init. replicas=R: `params` are R stacked replicas', and the source is one run
    (every replica starts from it) or a run of R replicas (each from its own). Mismatched paths,
    shapes or replica counts raise ConfigError before anything trains."""
    t = exp.cfg.train
    sources = [_by_path(r.params) for r in load_runs(t.init_from, t.init_step, devices=list(exp.mesh.devices.flat))]
    if len(sources) > 1 and len(sources) != replicas:
        raise ConfigError(f"train.init_from={t.init_from} holds {len(sources)} replicas (train.seeds) and this run "
                          f"trains {replicas or 1}: start from a single run, or train as many seeds as it has")
    target = _by_path(params)
    shapes = {path: tuple(leaf.shape[1:] if replicas else leaf.shape) for path, leaf in target.items()}
    copy, problems = _transfer_plan({path: tuple(a.shape) for path, a in sources[0].items()}, shapes, t.init_exclude)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise ConfigError(f"train.init_from={t.init_from}: {shown}; exclude them with train.init_exclude=REGEX "
                          f"(e.g. '^head/') or start from a run of the same model")

    def source(path):
        if replicas is None:
            return sources[0][path]
        if len(sources) == 1:
            return jnp.broadcast_to(sources[0][path], (replicas, *shapes[path]))
        return jnp.stack([s[path] for s in sources])
    flat = [jax.device_put(source(path), sharding) if path in copy else leaf
            for (path, leaf), sharding in zip(target.items(), jax.tree.leaves(shardings))]
    return jax.tree.unflatten(jax.tree.structure(params), flat)


def _saved(state, selection) -> Any:
    """What a checkpoint holds: the train state, and the selection when selecting."""
    return state if selection is None else {**state, "best": selection}

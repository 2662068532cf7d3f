"""Many models at once: the replicas of train.seeds / train.sweep trained as one vmapped program.

    train: {seeds: 10}                                          # 10 seeds of one config
    train: {sweep: {optimizer.learning_rate: [1.0e-3, 1.0e-2]}}  # one replica per value (x seeds)

The train state of R replicas is one pytree whose every leaf has a leading axis R (params,
optimizer state, RNG key, step), split over the "seeds" mesh axis (mesh.seeds). The single
run's step (zoo.train.make_train_step) is vmapped over it, and replica r is fed the batch a run
with its own seed would see, so replica r computes what that separate run computes: its init,
data order and dropout masks are the same bits. What may differ is float rounding: XLA may
order the sums of a batched matmul differently from the unbatched one.

Swept keys of config.TRACED_SWEEP_KEYS (learning rate, its end value, weight decay, dropout
rate) are traced numbers, one per replica: the optimizer, or the model, is rebuilt inside the
vmapped step from them (a dropout rate as the exact keep probability of layers.SweptRate). Any
other swept key changes the program (a width, a depth, a kernel size: a shape or a Python
constant in the model's closure), so each of its values trains as a stacked program of its own,
in a sub-directory of the run. RUN/sweep.md has a row per point of any sweep (mean and std over
its seeds).

Selection (train.select) is per replica; with train.patience a replica that stops keeps its
selected params and its state is frozen (its updates are masked) while the others train on.
Checkpoints hold the stacked tree; summary.json holds every replica's metrics ("replicas") and
their mean (the usual keys) and standard deviation (KEY_std).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import os
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from zoo import checkpoint, rundir, sweeps
from zoo import experiment as ex
from zoo import mesh as meshlib
from zoo.config import TRACED_SWEEP_KEYS, Config
from zoo.errors import ConfigError
from zoo.experiment import Experiment, Run
from zoo.selection import Selection
from zoo.tasks import summarize


class Trainer(NamedTuple):
    """The single-run pieces a stacked run reuses, handed down by zoo.train.fit (which imports
    this module, so this module cannot import it)."""
    make_train_step: Callable    # (exp, shardings) -> jitted (state, batch) -> (state, metrics)
    stop_signals: Callable       # () -> context manager; .received: the signal number or None
    interrupted: type            # raised, after a checkpoint, when a signal arrived


@dataclasses.dataclass(frozen=True)
class Stack:
    """A stacked run: its experiment, each replica's, and the swept optimizer values [R]."""
    exp: Experiment
    replicas: list[Experiment]
    hyper: dict[str, np.ndarray]

    @property
    def count(self) -> int:
        return len(self.replicas)


def build(cfg: Config) -> Stack:
    exp = ex.build(cfg)
    replicas = ex.replica_experiments(exp)
    hyper = {key: ex.traced_values(key, [ex.swept_value(r.cfg, key) for r in replicas])
             for key in cfg.train.sweep if key in TRACED_SWEEP_KEYS}
    return Stack(exp, replicas, hyper)


def replica_exp(stack: Stack, hyper: dict) -> Experiment:
    """The experiment a replica's step runs: the first replica's, with `hyper` (traced) swept."""
    return ex.with_hyperparameters(stack.exp, hyper) if hyper else stack.replicas[0]


def _stacked(tree):
    return jax.tree.map(meshlib.stacked, tree)


# ----------------------------------------------------------------------------- state
def abstract_state(stack: Stack) -> tuple[Any, Any]:
    """(stacked ShapeDtypeStructs with shardings, stacked shardings) of the R replicas' state."""
    shapes, _ = ex.abstract_state(stack.replicas[0])
    abstract = ex.stack_abstract(shapes, stack.count)
    return abstract, jax.tree.map(lambda a: a.sharding, abstract)


def init_state(stack: Stack) -> tuple[dict, Any]:
    """The R fresh states, each the one a run with that replica's seed starts from, in one
    call: a loop over the replicas (lax.map), which XLA compiles in less than half the time of
    the vmapped initialisers (0.6 s against 1.4 s for 10 GCNs) and runs once."""
    _, shardings = abstract_state(stack)
    x = jax.tree.map(jnp.asarray, ex.host_batch(stack.exp, 0)["x"])
    seeds = jnp.asarray([r.cfg.train.seed for r in stack.replicas], jnp.int32)
    make = functools.partial(jax.lax.map, lambda a: ex.fresh_state(replica_exp(stack, a[1]), a[0], x))
    return jax.jit(lambda *a: make(a), out_shardings=shardings)(seeds, stack.hyper), shardings


def check_memory(stack: Stack, compiled) -> None:
    """ConfigError, in one line, when the compiled stacked step (arguments, outputs and
    temporaries, plus the selected params) needs more memory than the devices have free."""
    m = compiled.memory_analysis()
    if m is None:
        return
    devices = list(stack.exp.mesh.devices.flat)
    need = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
    if stack.exp.cfg.train.select != "last":
        shapes, _ = abstract_state(stack)
        need += sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(shapes["params"])) // len(devices)
    stats = devices[0].memory_stats() if devices[0].platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        free, where = stats["bytes_limit"] - stats.get("bytes_in_use", 0), f"{devices[0].device_kind} memory"
    else:  # simulated CPU devices share the host's memory
        need *= len(devices)
        free, where = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free host memory"
    if need > free:
        raise ConfigError(f"{stack.count} replicas need about {need / 2**30:.2f} GiB per device for the step "
                          f"({need / stack.count / 2**30:.3f} GiB each) but {where} has {free / 2**30:.2f} GiB; "
                          f"train fewer at once (train.seeds), or spread them with mesh.seeds")


# ----------------------------------------------------------------------------- steps and batches
def make_train_step(stack: Stack, shardings, trainer: Trainer, shared_batch: bool, masked: bool):
    """The jitted `step(state, batch, hyper, active) -> (state, metrics [R])`: the single run's
    step vmapped over the replicas. shared_batch: one batch for every replica (a whole graph);
    masked: replicas with active=False keep their state (stopped early)."""
    _, one_shardings = ex.abstract_state(stack.replicas[0])
    fixed = trainer.make_train_step(replica_exp(stack, {}), one_shardings)

    def step(state, batch, hyper, active):
        single = trainer.make_train_step(replica_exp(stack, hyper), one_shardings) if hyper else fixed
        new, metrics = single(state, batch)
        if masked:
            new = jax.tree.map(lambda n, o: jnp.where(active, n, o), new, state)
        return new, metrics

    batch_axis = None if shared_batch else 0
    vmapped = jax.vmap(step, in_axes=(0, batch_axis, 0, 0), spmd_axis_name=meshlib.REPLICA_AXIS)
    return jax.jit(vmapped, donate_argnums=0, in_shardings=(shardings, _batch_sharding(stack, shared_batch), None, None),
                   out_shardings=(shardings, meshlib.replicated(stack.exp.mesh)))


def _batch_sharding(stack: Stack, shared: bool):
    sharding = meshlib.batch_sharding(stack.exp.mesh, stack.exp.dataset.shardable)
    return sharding if shared else meshlib.stacked(sharding)


def host_batches(stack: Stack, step: int, whole: bool = False) -> tuple[bool, dict]:
    """(shared, batch): the one batch every replica sees at `step` (all replicas share a seed,
    or the data ignores it: a whole graph), else each replica's batch stacked [R, B, ...]; this
    process's rows of it, or with `whole` all of them."""
    by_seed = {}
    for r in stack.replicas:
        t = r.cfg.train
        if t.seed not in by_seed:
            by_seed[t.seed] = (r.dataset.train_batch(t.seed, step, t.batch_size, (0, 1)) if whole
                               else ex.host_batch(r, step))
    batches = list(by_seed.values())
    first = jax.tree.leaves(batches[0])
    if all(all(a is b for a, b in zip(first, jax.tree.leaves(other))) for other in batches[1:]):
        return True, batches[0]
    return False, jax.tree.map(lambda *a: np.stack(a), *[by_seed[r.cfg.train.seed] for r in stack.replicas])


def train_batch(stack: Stack, step: int) -> tuple[bool, dict]:
    """(shared, the batch of `step` on the mesh). Over several processes every process reads the
    whole batch and its devices take their blocks: the "seeds" axis may split the replicas over
    processes as the data axes split the rows."""
    whole = jax.process_count() > 1
    shared, batch = host_batches(stack, step, whole)
    return shared, meshlib.place_whole(batch, _batch_sharding(stack, shared))


def make_eval_step(stack: Stack):
    """The jitted `eval_step(params [R], batch) -> (metric sums [R], stats [R])`."""
    exp = stack.exp
    one = jax.vmap(lambda p, b: ex.loss_sums(exp, p, b, None, train=False), in_axes=(0, None))
    return jax.jit(one, out_shardings=meshlib.replicated(exp.mesh))


def evaluate(stack: Stack, eval_step, params, split: str = "eval") -> list[dict[str, float]]:
    """Each replica's metrics over the evaluation (split="eval") or validation ("val") set."""
    exp = stack.exp
    sharding = meshlib.batch_sharding(exp.mesh, exp.dataset.shardable)
    source = exp.dataset.val_batches if split == "val" else exp.dataset.eval_batches
    totals, n = None, 0
    for local in itertools.islice(source(exp.cfg.train.eval_batch_size, ex.shard(exp)), exp.cfg.train.eval_batches or None):
        out = eval_step(params, meshlib.global_batch(local, sharding))
        totals = out if totals is None else jax.tree.map(jnp.add, totals, out)
        n += 1
    sums, stats = meshlib.to_host(totals)
    return [{**summarize(exp.dataset.task, {k: v[r] for k, v in sums.items()}, split),
             **{f"{split}_{k}": float(v[r]) / n for k, v in stats.items()}} for r in range(stack.count)]


# ----------------------------------------------------------------------------- selection
@jax.jit
def _keep(saved, new, old):
    """`new` for the replicas where saved [R] is True, else `old` (a fresh buffer either way)."""
    return jax.tree.map(lambda n, o: jnp.where(saved.reshape(-1, *[1] * (n.ndim - 1)), n, o), new, old)


class Selections:
    """One Selection per replica (the same rules, bit for bit), the selected params stacked."""

    def __init__(self, select: str, params, count: int):
        self.each = [Selection(select, None) for _ in range(count)]
        self.params = jax.tree.map(jnp.copy, params)

    def update(self, step: int, params, val: list[dict], active: np.ndarray) -> None:
        """Score each active replica's validation metrics; a stopped replica's selection stays."""
        saved = np.array([bool(a) and s.update(step, None, v) for s, v, a in zip(self.each, val, active, strict=True)])
        if saved.any():
            self.params = _keep(jnp.asarray(saved), params, self.params)

    def exhausted(self, patience: int) -> np.ndarray:
        return np.array([s.exhausted(patience) for s in self.each])

    def tree(self) -> dict:
        return {"params": self.params, **{k: np.stack([s.values[k] for s in self.each]) for k in self.each[0].values}}

    def load(self, tree: dict) -> None:
        self.params = tree["params"]
        host = {k: np.asarray(jax.device_get(v)) for k, v in tree.items() if k != "params"}
        for i, s in enumerate(self.each):
            s.load({"params": None, **{k: v[i] for k, v in host.items()}})

    def summaries(self) -> list[dict]:
        return [s.summary() for s in self.each]


def _saved(state, selection: Selections | None):
    return state if selection is None else {**state, "best": selection.tree()}


def restore(stack: Stack, ckpt: checkpoint.Checkpointer, selection: Selections | None) -> tuple[dict, int]:
    """The stacked state (and, in place, the selections) of the latest checkpoint, and its step."""
    shapes, _ = abstract_state(stack)
    one, _ = ex.abstract_state(stack.replicas[0])
    best = ex.stack_abstract(Selection.abstract(one["params"], stack.exp.mesh), stack.count)
    restored, position = ckpt.restore(shapes if selection is None else {**shapes, "best": best})
    if selection is not None:
        selection.load(restored.pop("best"))
    return restored, int(position["step"])


# ----------------------------------------------------------------------------- the loop
@dataclasses.dataclass
class StackedLoop:
    """A stacked run's loop: the single run's (zoo.train.Loop) over R replicas at once."""
    stack: Stack
    state: dict
    shardings: Any
    selection: Selections | None
    trainer: Trainer
    ckpt: checkpoint.Checkpointer
    log: rundir.MetricsLog
    on_step: Callable[[int, dict], None] | None = None
    steps: dict = dataclasses.field(default_factory=dict)    # shared batch? -> the jitted step
    metrics: dict = dataclasses.field(default_factory=dict)
    eval_metrics: list = dataclasses.field(default_factory=list)
    window: rundir.Timer = dataclasses.field(default_factory=rundir.Timer)
    window_start: int = 0
    timed: tuple[int, float] = (0, 0.0)   # (steps, seconds) of the windows logged so far

    def __post_init__(self):
        self.eval_step = make_eval_step(self.stack)
        patience = self.stack.exp.cfg.train.patience
        self.active = ~self.selection.exhausted(patience) if self.selection else np.ones(self.stack.count, bool)

    def step_fn(self, shared: bool) -> Callable:
        if shared not in self.steps:
            self.steps[shared] = make_train_step(self.stack, self.shardings, self.trainer, shared,
                                                 masked=bool(self.stack.exp.cfg.train.patience))
        return self.steps[shared]

    def run(self, start: int) -> None:
        self.window, self.window_start = rundir.Timer(), start
        in_flight = collections.deque()
        with self.trainer.stop_signals() as stop:
            for step in range(start, self.stack.exp.cfg.train.steps):
                if not self.active.any():
                    break
                shared, batch = train_batch(self.stack, step)
                self.state, self.metrics = self.step_fn(shared)(self.state, batch, self.stack.hyper, self.active)
                in_flight.append(self.metrics)
                if len(in_flight) > meshlib.IN_FLIGHT:  # as zoo.train.Loop: a bounded queue of steps
                    jax.block_until_ready(in_flight.popleft())
                self.after_step(step + 1, stop.received)

    def after_step(self, done: int, signum: int | None) -> None:
        t = self.stack.exp.cfg.train
        if self.on_step is not None:
            self.on_step(done, self.state)
        if signum is not None:
            self.save(done)
            raise self.trainer.interrupted(f"stopped by signal {signum} at step {done}; checkpoint saved", signum,
                                           str(self.log.run_dir))
        stopping = self.active.copy()
        if done == t.steps or (t.eval_every and done % t.eval_every == 0):
            self.evaluate(done)
        stopped = bool((stopping & ~self.active).any())
        if done % t.log_every == 0 or done == t.steps or stopped:
            self.log.log(self.record(done))
        if not self.active.any() or done == t.steps or (t.checkpoint_every and done % t.checkpoint_every == 0):
            self.save(done)

    def evaluate(self, done: int) -> None:
        params = self.state["params"]
        if self.selection is None:
            self.eval_metrics = evaluate(self.stack, self.eval_step, params)
            return
        self.selection.update(done, params, evaluate(self.stack, self.eval_step, params, "val"), self.active)
        self.active &= ~self.selection.exhausted(self.stack.exp.cfg.train.patience)

    def record(self, done: int) -> dict:
        """The replicas' mean metrics, their values by replica, and the loop's rate."""
        per = {k: [float(x) for x in v] for k, v in meshlib.to_host(self.metrics).items()}
        seconds = self.window.elapsed()
        rate = (done - self.window_start) / max(seconds, 1e-9)
        self.timed = (self.timed[0] + done - self.window_start, self.timed[1] + seconds)
        self.window, self.window_start = rundir.Timer(), done
        return {"step": done, **{k: statistics.fmean(v) for k, v in per.items()},
                "learning_rate": statistics.fmean(float(r.lr(done - 1)) for r in self.stack.replicas),
                "steps_per_s": rate, "elapsed_s": self.log.timer.elapsed(),
                "replicas_active": int(self.active.sum()), "per_replica": per}

    def save(self, step: int) -> None:
        position = self.stack.exp.dataset.position(step, self.stack.exp.cfg.train.batch_size)
        self.ckpt.save(step, _saved(self.state, self.selection), position)

    def final_metrics(self) -> tuple[list[dict], Any]:
        """(each replica's test metrics, the stacked params they were computed with)."""
        if self.selection is None:
            params = self.state["params"]
            return self.eval_metrics or evaluate(self.stack, self.eval_step, params), params
        params = self.selection.params
        tested = evaluate(self.stack, self.eval_step, params)
        return [{**m, **s} for m, s in zip(tested, self.selection.summaries(), strict=True)], params


# ----------------------------------------------------------------------------- runs
def fit(cfg: Config, trainer: Trainer, *, hooks: Sequence[Callable[[Run], None]] = (),
        on_step: Callable[[int, dict], None] | None = None) -> dict:
    """Train the replicas of `cfg` (train.seeds, train.sweep) and write the run directory; a
    sweep over keys that change the program trains one stacked run per value in sub-directories
    and tabulates them (RUN/sweep.md). Returns the summary (per program: "programs")."""
    programs = sweeps.program_configs(cfg)
    if len(programs) == 1:
        summary = fit_program(cfg, trainer, hooks=hooks, on_step=on_step)
        if cfg.train.sweep and rundir.is_writer():
            rundir.atomic_write(Path(summary["run_dir"]) / "sweep.md", sweeps.sweep_table([{"program": "", **summary}]))
        return summary
    parent = rundir.prepare(cfg)
    rundir.write_config(parent, cfg)
    rows = []
    for label, program in programs:
        run = dataclasses.replace(program.run, dir=str(parent), name=label)
        rows.append({"program": label, **fit_program(program.replace(run=run), trainer, hooks=hooks, on_step=on_step)})
    summary = {"run_dir": str(parent), "programs": rows}
    rundir.write_summary(parent, summary)
    if rundir.is_writer():
        rundir.atomic_write(parent / "sweep.md", sweeps.sweep_table(rows))
    return summary


def fit_program(cfg: Config, trainer: Trainer, *, hooks: Sequence[Callable[[Run], None]] = (),
                on_step: Callable[[int, dict], None] | None = None) -> dict:
    """One stacked program: build, check its memory, train, evaluate, write its run directory."""
    timer = rundir.Timer()
    stack = build(cfg)
    t = cfg.train
    loop = _loop(stack, trainer, on_step)  # the last user error (memory) comes before any run dir
    run_dir = rundir.prepare(stack.exp.cfg)
    rundir.write_config(run_dir, stack.exp.cfg)
    loop.ckpt = checkpoint.Checkpointer(run_dir / "checkpoints", t.keep_checkpoints)
    start = 0
    if cfg.run.resume:
        loop.state, start = restore(stack, loop.ckpt, loop.selection)
        loop.active = ~loop.selection.exhausted(t.patience) if loop.selection else loop.active
    loop.log = rundir.MetricsLog(run_dir, t.steps, start)
    if rundir.is_writer():
        print(f"run directory: {run_dir} ({stack.count} replicas)", flush=True)
    try:
        loop.run(start)
        per_replica, params = loop.final_metrics()
    finally:
        loop.log.close()
        loop.ckpt.close()
    summary = _summary(stack, loop, per_replica, timer.elapsed(), run_dir)
    rundir.write_summary(run_dir, summary)
    if rundir.is_writer() and hooks:
        run = Run(run_dir, stack.replicas[0], jax.tree.map(lambda a: a[0], params), summary["steps"])
        for hook in hooks:  # figures of the first replica (its curves are the replicas' means)
            hook(run)
    return summary


def _loop(stack: Stack, trainer: Trainer, on_step) -> StackedLoop:
    """The loop at its fresh state, its first step compiled from the abstract state and its
    memory checked first (ConfigError when R replicas do not fit; nothing allocated yet)."""
    shapes, shardings = abstract_state(stack)
    shared, batch = train_batch(stack, 0)
    masked = bool(stack.exp.cfg.train.patience)
    active = np.ones(stack.count, bool)
    compiled = make_train_step(stack, shardings, trainer, shared, masked).lower(shapes, batch, stack.hyper, active).compile()
    check_memory(stack, compiled)
    state, _ = init_state(stack)
    t = stack.exp.cfg.train
    selection = None if t.select == "last" else Selections(t.select, state["params"], stack.count)
    loop = StackedLoop(stack, state, shardings, selection, trainer, None, None, on_step)
    loop.steps[shared] = compiled  # the loop calls what was checked, rather than compiling it again
    return loop


def _summary(stack: Stack, loop: StackedLoop, per_replica: list[dict], wall_time: float, run_dir: Path) -> dict:
    steps = meshlib.to_host(loop.state["step"])
    rows = [{"seed": r.cfg.train.seed, **{k: float(ex.swept_value(r.cfg, k)) for k in stack.hyper}, **m, "steps": int(s)}
            for i, (r, m, s) in enumerate(zip(stack.replicas, per_replica, steps, strict=True))]
    out = {}
    for key in rows[0]:
        values = [row[key] for row in rows]
        if key != "seed" and all(isinstance(v, (int, float)) for v in values):
            out[key] = statistics.fmean(values)
            out[f"{key}_std"] = statistics.pstdev(values)
    timed_steps, seconds = loop.timed
    if timed_steps:  # the loop's rate (every replica steps at once), as a single run reports it
        out["steps_per_s"] = timed_steps / seconds
    return {**out, "steps": int(steps.max()), "wall_time_s": wall_time, "replicas": rows,
            "seeds": sorted({r.cfg.train.seed for r in stack.replicas}),
            "params": ex.count_params(loop.state["params"]) // stack.count,
            "model": stack.exp.cfg.model_name, "data": stack.exp.cfg.data_name, "run_dir": str(run_dir)}

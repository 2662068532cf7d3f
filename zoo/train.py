"""The trainer: `fit(cfg)` trains any registered model on any registered dataset with optax.

The train state (zoo.experiment) is one pytree, {"params", "opt_state", "step", "key"};
`train_step(state, batch) -> (state, metrics)` is jitted once with the state donated and laid
out on the mesh (zoo.mesh). Batches are a pure function of (seed, step), so a checkpoint of the
state is all a resumed run needs to continue bit for bit where it stopped.
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from zoo import checkpoint, replicas, rundir, throughput
from zoo import experiment as ex
from zoo import mesh as meshlib
from zoo.config import Config, is_stacked, load_run_config, resume_changes
from zoo.data import preprocess
from zoo.errors import ConfigError
from zoo.experiment import Experiment, Run
from zoo.selection import Selection
from zoo.tasks import summarize


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint was written at the step boundary."""

    def __init__(self, message: str, signum: int, run_dir: str):
        super().__init__(message)
        self.signum, self.run_dir = signum, run_dir


class Diverged(Exception):
    """train.max_bad_steps consecutive steps had a non-finite loss or gradient (each skipped)."""

    def __init__(self, message: str, run_dir: str):
        super().__init__(message)
        self.run_dir = run_dir


# ----------------------------------------------------------------------------- steps
def _grads(exp: Experiment, params, batch: dict, key):
    """Mean-loss gradients over `accumulate_steps` micro-batches, scanned so memory holds one."""
    def loss(p, micro, k):
        sums, stats = ex.loss_sums(exp, p, micro, k, train=True)
        return sums["loss"] / sums["count"], (sums, stats)

    grad_fn = jax.grad(loss, has_aux=True)
    a = exp.cfg.optimizer.accumulate_steps
    if a == 1:
        return grad_fn(params, batch, key)
    # rows i*a .. i*a+a-1 go to micro-batches 0..a-1, so each device keeps its own rows
    micro = jax.tree.map(lambda x: x.reshape(x.shape[0] // a, a, *x.shape[1:]).swapaxes(0, 1), batch)

    def body(acc, inputs):
        m, k = inputs
        g, aux = grad_fn(params, m, k)
        return jax.tree.map(jnp.add, acc, (g, aux)), None

    zero = jax.tree.map(jnp.zeros_like, jax.eval_shape(grad_fn, params, jax.tree.map(lambda x: x[0], micro), key))
    total, _ = jax.lax.scan(body, zero, (micro, jax.random.split(key, a)))
    grads = jax.tree.map(lambda g: g / a, total[0])
    sums, stats = total[1]
    return grads, (sums, jax.tree.map(lambda s: s / a, stats))


def global_norm(tree) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(g.astype(jnp.float32))) for g in jax.tree.leaves(tree)))


def skip_unless(finite: jax.Array, new, old):
    """`new` where the step was finite, else `old`: a non-finite loss, gradient or update is
    skipped and never reaches the params or the optimizer state."""
    return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)


def make_train_step(exp: Experiment, shardings) -> Callable:
    """The jitted `train_step(state, batch) -> (state, metrics)`, state donated."""
    def train_step(state, batch):
        key, step_key = jax.random.split(state["key"])
        grads, (sums, stats) = _grads(exp, state["params"], batch, step_key)
        updates, opt_state = exp.tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics = {"loss": sums["loss"] / sums["count"], "grad_norm": global_norm(grads), **stats}
        if "correct" in sums:
            metrics["accuracy"] = sums["correct"] / sums["count"]
        finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(metrics["grad_norm"]) & jnp.isfinite(global_norm(updates))
        params, opt_state = skip_unless(finite, (params, opt_state), (state["params"], state["opt_state"]))
        metrics["bad_step"] = jnp.logical_not(finite).astype(jnp.int32)
        # the step and the key advance either way: batches and dropout stay a function of the step
        new = {"params": params, "opt_state": opt_state, "step": state["step"] + 1, "key": key}
        return new, metrics

    batch_sharding = meshlib.batch_sharding(exp.mesh, exp.dataset.shardable)
    return jax.jit(train_step, donate_argnums=0, in_shardings=(shardings, batch_sharding),
                   out_shardings=(shardings, meshlib.replicated(exp.mesh)))


def make_eval_step(exp: Experiment) -> Callable:
    """The jitted `eval_step(params, batch) -> (metric sums, stats)`."""
    def eval_step(params, batch):
        return ex.loss_sums(exp, params, batch, None, train=False)
    return jax.jit(eval_step, out_shardings=meshlib.replicated(exp.mesh))


def make_windowed_step(exp: Experiment, train_step: Callable):
    """`train_step` that also adds its metrics to float32 sums carried through the loop:
    `(state, sums, batch) -> (state, sums, bad_step)`, compiled ahead of time for the abstract
    state and batch, state and sums donated; bad_step is 1 when the step was skipped as
    non-finite. Returns (compiled step, zero_sums() -> fresh sums)."""
    def windowed(state, sums, batch):
        state, metrics = train_step(state, batch)
        sums = jax.tree.map(lambda total, m: total + m.astype(jnp.float32), sums, metrics)
        return state, sums, metrics["bad_step"]

    shapes, shardings = ex.abstract_state(exp)
    batch, replicated = ex.batch_spec(exp), meshlib.replicated(exp.mesh)
    metrics = jax.eval_shape(train_step, shapes, batch)[1]
    zero_sums = jax.jit(lambda: jax.tree.map(lambda m: jnp.zeros(m.shape, jnp.float32), metrics),
                        out_shardings=replicated)
    step = jax.jit(windowed, donate_argnums=(0, 1), out_shardings=(shardings, replicated, replicated),
                   in_shardings=(shardings, replicated, meshlib.batch_sharding(exp.mesh, exp.dataset.shardable)))
    return step.lower(shapes, jax.eval_shape(zero_sums), batch).compile(), zero_sums


def step_rates(exp: Experiment, compiled) -> throughput.StepRates:
    """FLOPs (over the mesh), examples and tokens of one compiled train step, and the mesh's
    peak FLOP/s at the configured precision."""
    devices = exp.mesh.devices.size
    peak = throughput.peak_flops(exp.mesh.devices.flat[0], exp.cfg.train.precision)
    tokens = int(np.prod(ex.batch_spec(exp)["y"].shape)) if exp.dataset.task == "language_model" else None
    return throughput.StepRates(flops=throughput.program_costs(compiled)["flops"] * devices,
                                examples=exp.cfg.train.batch_size if exp.dataset.shardable else None,
                                tokens=tokens, peak=peak * devices if peak else None,
                                cpu_devices=devices if exp.mesh.devices.flat[0].platform == "cpu" else 0)


def evaluate(exp: Experiment, eval_step: Callable, params, split: str = "eval") -> dict[str, float]:
    """Metrics over the evaluation set (split="eval", keys eval_*) or the validation set
    (split="val", keys val_*)."""
    sharding = meshlib.batch_sharding(exp.mesh, exp.dataset.shardable)
    total, stats, n = None, None, 0
    source = exp.dataset.val_batches if split == "val" else exp.dataset.eval_batches
    batches = source(exp.cfg.train.eval_batch_size, ex.shard(exp))
    for local in itertools.islice(batches, exp.cfg.train.eval_batches or None):
        sums, s = eval_step(params, meshlib.global_batch(local, sharding))
        total = sums if total is None else jax.tree.map(jnp.add, total, sums)
        stats = s if stats is None else jax.tree.map(jnp.add, stats, s)
        n += 1
    out = summarize(exp.dataset.task, meshlib.to_host(total), split)
    out.update({f"{split}_{k}": float(v) / n for k, v in meshlib.to_host(stats).items()})
    return out


# ----------------------------------------------------------------------------- checkpoints
def _saved(state, selection: Selection | None):
    """What a checkpoint holds: the train state, and the selected parameters when selecting."""
    return state if selection is None else {**state, "best": selection.tree()}


def restore(exp: Experiment, ckpt: checkpoint.Checkpointer, shardings, selection: Selection | None = None,
            step: int | None = None) -> tuple[dict, dict]:
    """The train state (and, in place, `selection`) from a checkpoint, laid out on the mesh as
    `shardings`; returns (state, data position)."""
    shapes, _ = ex.abstract_state(exp)
    target = shapes if selection is None else {**shapes, "best": Selection.abstract(shapes["params"], exp.mesh)}
    restored, position = ckpt.restore(target, step)
    if selection is not None:
        selection.load(restored.pop("best"))
    return restored, position


# ----------------------------------------------------------------------------- the loop
IN_FLIGHT = meshlib.IN_FLIGHT


class _StopSignals:
    """Turns SIGINT/SIGTERM into a flag the loop checks at each step boundary."""

    def __init__(self):
        self.received: int | None = None
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


@dataclasses.dataclass
class Loop:
    """One run's training loop: its steps, evaluations, selection, logs and checkpoints."""
    exp: Experiment
    state: dict
    selection: Selection | None
    train_step: Callable
    eval_step: Callable
    ckpt: checkpoint.Checkpointer
    log: rundir.MetricsLog
    on_step: Callable[[int, dict], None] | None = None
    metrics: dict = dataclasses.field(default_factory=dict)
    eval_metrics: dict = dataclasses.field(default_factory=dict)
    window: rundir.Timer = dataclasses.field(default_factory=rundir.Timer)
    window_start: int = 0
    stopped: bool = False
    sums: Any = None                      # on device: metric sums over the steps since the last record
    zero_sums: Callable | None = None
    rates: throughput.StepRates | None = None
    timed: tuple[int, float] = (0, 0.0)   # (steps, seconds) of the windows logged so far
    bad_steps: int = 0                   # steps skipped for a non-finite loss or gradient
    bad_in_a_row: int = 0
    in_flight: collections.deque = dataclasses.field(default_factory=collections.deque)

    def run(self, start: int) -> None:
        t = self.exp.cfg.train
        self.window_start = start
        self.stopped = self.selection is not None and self.selection.exhausted(t.patience)  # resumed an early stop
        if start >= t.steps or self.stopped:
            return
        step_fn = self.compile()
        with _StopSignals() as stop, rundir.Profile(self.log.run_dir, t.profile_steps) as profile:
            for step in range(start, t.steps):
                if self.stopped:
                    break
                profile.before(step + 1)
                self.state, self.sums, bad = step_fn(self.state, self.sums, ex.train_batch(self.exp, step))
                self.log.advance()
                profile.after(step + 1, self.state)
                self.in_flight.append((step + 1, bad))
                if len(self.in_flight) > IN_FLIGHT:
                    self.settle(*self.in_flight.popleft())
                self.after_step(step + 1, stop.received)
            while self.in_flight:
                self.settle(*self.in_flight.popleft())

    def settle(self, done: int, bad: jax.Array) -> None:
        """Wait for step `done`'s outputs (so at most IN_FLIGHT steps are queued on the devices,
        whatever the logging interval) and count it if it was skipped as non-finite."""
        if int(meshlib.to_host(bad)) == 0:
            self.bad_in_a_row = 0
            return
        self.bad_steps += 1
        self.bad_in_a_row += 1
        if self.bad_in_a_row >= self.exp.cfg.train.max_bad_steps:
            last = self.ckpt.latest_step()
            raise Diverged(f"stopped at step {done}: {self.bad_in_a_row} steps in a row had a non-finite loss or "
                           f"gradient (each was skipped; the params stayed finite); likely cause: the learning rate "
                           f"is too high (optimizer.learning_rate={self.exp.cfg.optimizer.learning_rate:g}; lower it, "
                           f"or set optimizer.clip_norm) or the data holds nan/inf; last checkpoint: "
                           f"{'none' if last is None else f'step {last}'}", str(self.log.run_dir))

    def compile(self) -> Callable:
        """The windowed step (make_windowed_step), its first sums and its rates."""
        step_fn, self.zero_sums = make_windowed_step(self.exp, self.train_step)
        self.sums, self.rates = self.zero_sums(), step_rates(self.exp, step_fn)
        self.window = rundir.Timer()  # compiling is not training time
        return step_fn

    def after_step(self, done: int, signum: int | None) -> None:
        t = self.exp.cfg.train
        if self.on_step is not None:
            self.on_step(done, self.state)
        if signum is not None:
            self.save(done)
            raise Interrupted(f"stopped by signal {signum} at step {done}; checkpoint saved", signum,
                              str(self.log.run_dir))
        evaluate_now = done == t.steps or bool(t.eval_every and done % t.eval_every == 0)
        if done % t.log_every == 0 or evaluate_now:
            self.log_and_evaluate(done, evaluate_now)
        if self.stopped or done == t.steps or (t.checkpoint_every and done % t.checkpoint_every == 0):
            self.save(done)

    def log_and_evaluate(self, done: int, evaluate_now: bool) -> None:
        t = self.exp.cfg.train
        jax.block_until_ready(self.sums)
        seconds = self.window.elapsed()
        rate = (done - self.window_start) / max(seconds, 1e-9)
        elapsed = self.log.timer.elapsed()
        evaluated = {}
        if evaluate_now and self.selection is not None:
            evaluated = evaluate(self.exp, self.eval_step, self.state["params"], "val")
            self.selection.update(done, self.state["params"], evaluated)
            self.stopped = self.selection.exhausted(t.patience)
        elif evaluate_now:
            evaluated = self.eval_metrics = evaluate(self.exp, self.eval_step, self.state["params"])
        # selection may evaluate every step: those records wait for log_every
        if (done % t.log_every == 0 or done == t.steps or self.stopped
                or (evaluate_now and self.selection is None)):
            self.metrics = self.window_means(done)
            self.log.log({**self.record(done, rate, elapsed), **evaluated})
            self.timed = (self.timed[0] + done - self.window_start, self.timed[1] + seconds)
            self.sums, self.window, self.window_start = self.zero_sums(), rundir.Timer(), done

    def window_means(self, done: int) -> dict[str, float]:
        """The step metrics averaged over the window's steps (its sums, read from the device)."""
        steps = done - self.window_start
        return {k: float(v) / steps for k, v in meshlib.to_host(self.sums).items()}

    def record(self, step: int, steps_per_s: float, elapsed: float) -> dict:
        record = {"step": step, **self.metrics}
        record["learning_rate"] = float(self.exp.lr(step - 1))
        record["steps_per_s"] = steps_per_s
        record.update(self.rates.at(steps_per_s))
        record["elapsed_s"] = elapsed
        return record

    def save(self, step: int) -> None:
        position = self.exp.dataset.position(step, self.exp.cfg.train.batch_size)
        self.ckpt.save(step, _saved(self.state, self.selection), position)

    def throughput(self) -> dict[str, float]:
        """The run's training rates: steps over the seconds of every logged window."""
        steps, seconds = self.timed
        if not steps or self.rates is None:
            return {}
        return {"steps_per_s": steps / seconds, **self.rates.at(steps / seconds)}

    def final_metrics(self) -> tuple[dict, Any]:
        """(test metrics, the params they were computed with): the selected ones when selecting."""
        if self.selection is None:  # evaluated at the last step, or resumed a finished run: evaluate now
            params = self.state["params"]
            return self.eval_metrics or evaluate(self.exp, self.eval_step, params), params
        params = self.selection.params
        return {**evaluate(self.exp, self.eval_step, params), **self.selection.summary()}, params


def fit(cfg: Config, *, hooks: Sequence[Callable[[Run], None]] = (),
        on_step: Callable[[int, dict], None] | None = None) -> dict:
    """Train, evaluate and write the run directory; returns the summary dict.

    `hooks` (figures, tools) are called once at the end with the trained Run, whose params are
    those the final metrics were computed with. `on_step(step, state)` (tests) is called after
    every step with the live state. Raises ConfigError for user mistakes (before compiling and
    before a run directory exists), Interrupted on SIGINT/SIGTERM and Diverged after
    train.max_bad_steps non-finite steps in a row.
    """
    if is_stacked(cfg):  # train.seeds / train.sweep: the replicas as one vmapped program
        return replicas.fit(cfg, replicas.Trainer(make_train_step, _StopSignals, Interrupted), hooks=hooks, on_step=on_step)
    timer = rundir.Timer()
    exp = ex.build(cfg)
    check_resume(exp.cfg)
    check_optimizer(exp)
    if exp.cfg.train.init_from is not None and not exp.cfg.run.resume:
        load_run_config(exp.cfg.train.init_from)  # a missing source run: one line, before a run dir exists
    run_dir = rundir.prepare(exp.cfg)
    with rundir.lock(run_dir):
        with rundir.removed_on_failure(run_dir, fresh=not exp.cfg.run.resume):
            loop, start = _start(exp, run_dir, on_step)
        try:
            loop.run(start)
            eval_metrics, final_params = loop.final_metrics()
        finally:
            loop.log.close()
            loop.ckpt.close()
    summary = _summary(exp, loop, eval_metrics, timer.elapsed(), run_dir)
    rundir.write_summary(run_dir, summary)
    if rundir.is_writer():
        run = Run(run_dir, exp, final_params, summary["steps"])
        for hook in hooks:
            hook(run)
    return summary


def check_resume(cfg: Config) -> None:
    """ConfigError when resuming with `cfg` would change what the run computes: its model,
    data, data order (batch size, seed, precision) or optimizer; run.allow_changes accepts it."""
    if not cfg.run.resume or cfg.run.allow_changes:
        return
    run_dir = Path(cfg.run.dir) / cfg.run.name
    changes = resume_changes(load_run_config(run_dir), cfg)
    if changes:
        shown = "; ".join(changes[:3]) + (f"; and {len(changes) - 3} more" if len(changes) > 3 else "")
        raise ConfigError(f"resuming {run_dir} would change {shown}: a resumed run continues exactly only with "
                          f"the settings it was trained with; drop these overrides, or add --force-resume "
                          f"(run.allow_changes=true) to continue inexactly")


def check_optimizer(exp: Experiment) -> None:
    """Run the optimizer's init and update on abstract values (jax.eval_shape: nothing is
    computed or compiled), so that a bad optimizer.kwargs value fails before the run starts."""
    shapes, _ = ex.abstract_state(exp)
    try:
        jax.eval_shape(exp.tx.update, shapes["params"], shapes["opt_state"], shapes["params"])
    except (TypeError, ValueError) as e:
        if not exp.cfg.optimizer.kwargs:  # zoo's own arguments: a bug, keep the traceback
            raise
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        kwargs = ", ".join(f"{k}={v!r}" for k, v in exp.cfg.optimizer.kwargs.items())
        raise ConfigError(f"optimizer.kwargs: optax.{exp.cfg.optimizer.name}({kwargs}) fails on the "
                          f"parameters: {message}") from None


def _start(exp: Experiment, run_dir: Path, on_step) -> tuple[Loop, int]:
    """The loop of a fresh or resumed run, ready at its first step. A resumed run restores its
    newest intact checkpoint (or starts at step 0 when it has none); its config.yaml is
    rewritten and its later metrics dropped only once that restore succeeded."""
    t, resume = exp.cfg.train, exp.cfg.run.resume
    if not resume:  # first thing: a fresh run killed from here on can be resumed
        rundir.write_config(run_dir, exp.cfg)
    if exp.dataset.preprocessing and rundir.is_writer():  # what evaluate, predict and export apply
        preprocess.save(run_dir, exp.dataset.preprocessing)
    state, shardings = ex.init_state(exp)
    if t.init_from is not None and not resume:
        state = ex.warm_start(exp, state, shardings)  # the last user errors surface here
    selection = None if t.select == "last" else Selection(t.select, jax.tree.map(jnp.copy, state["params"]))
    ckpt = checkpoint.Checkpointer(run_dir / "checkpoints", t.keep_checkpoints)
    try:
        if resume and ckpt.latest_step() is not None:
            state = _restore_changed(exp, ckpt, shardings, selection)
    except BaseException:
        ckpt.close()
        raise
    start = int(meshlib.to_host(state["step"]))
    if resume:
        rundir.truncate_metrics(run_dir, start)
        rundir.write_config(run_dir, exp.cfg)
    log = rundir.MetricsLog(run_dir, t.steps, start, tensorboard=exp.cfg.run.tensorboard)
    if rundir.is_writer():
        print(f"run directory: {run_dir}", flush=True)
    return Loop(exp, state, selection, make_train_step(exp, shardings), make_eval_step(exp), ckpt, log, on_step), start


def _restore_changed(exp: Experiment, ckpt: checkpoint.Checkpointer, shardings, selection) -> dict:
    """restore(), where a checkpoint that does not fit a config changed with run.allow_changes
    (another model, another optimizer) is the user's mistake, said in one line."""
    try:
        return restore(exp, ckpt, shardings, selection)[0]
    except (ValueError, TypeError, KeyError) as e:
        if not exp.cfg.run.allow_changes:
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise ConfigError(f"the checkpoint does not fit the changed config ({first}); resume without "
                          f"changing the model or the optimizer") from None


def _summary(exp: Experiment, loop: Loop, eval_metrics: dict, wall_time: float, run_dir) -> dict:
    stats = {k: v for k, v in loop.metrics.items() if k not in ("loss", "grad_norm", "accuracy", "bad_step")}
    return {**eval_metrics, "wall_time_s": wall_time, "steps": int(meshlib.to_host(loop.state["step"])),
            "bad_steps": loop.bad_steps,
            "params": ex.count_params(loop.state["params"]), "model": exp.cfg.model_name,
            "data": exp.cfg.data_name, "run_dir": str(run_dir), **stats, **loop.throughput()}

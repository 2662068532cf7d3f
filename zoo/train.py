"""The trainer: `fit(cfg)` trains any registered model on any registered dataset with optax.

The train state (zoo.experiment) is one pytree, {"params", "opt_state", "step", "key"};
`train_step(state, batch) -> (state, metrics)` (zoo.steps) is jitted once with the state donated
and laid out on the mesh (zoo.mesh). Batches are a pure function of (seed, step), so a
checkpoint of the state is all a resumed run needs to continue bit for bit where it stopped.

One loop trains every run: a single run's Program (zoo.program), or R replicas of train.seeds /
train.sweep as one stacked Program (zoo.replicas) whose step is the single step vmapped. Every
option means the same for both; a single run is the one-replica case.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from zoo import checkpoint, rundir, steps, sweeps, throughput
from zoo import mesh as meshlib
from zoo.config import load_run_config, resume_changes
from zoo.data import preprocess
from zoo.errors import ConfigError
from zoo.experiment import Run
from zoo.program import Program, check_memory, windowed_step
from zoo.replicas import Stacked
from zoo.schema import Config, is_stacked
from zoo.selection import Selections


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


# ----------------------------------------------------------------------------- the loop
IN_FLIGHT = meshlib.IN_FLIGHT
# The device counts skipped steps; the loop reads its counters of a step this many steps later
# (by then computed: reading them does not wait), and at every log, evaluation and checkpoint.
# A run diverging past train.max_bad_steps stops within 2 * CHECK_EVERY steps of it.
CHECK_EVERY = 8


class _StopSignals:
    """Turns SIGINT/SIGTERM into a flag the loop checks at each step boundary. Over several
    processes the flag is agreed on at every boundary (any process's signal stops them all at
    the same step), because the checkpoint saved then is collective; MaxText's
    reached_preemption makes the same agreement."""

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

    def agreed(self) -> int | None:
        """The signal this process, or any other, received (the same answer on every process)."""
        if jax.process_count() == 1:
            return self.received
        from jax.experimental import multihost_utils
        every = multihost_utils.process_allgather(np.int32(self.received or 0))
        return int(np.max(every)) or None

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


@dataclasses.dataclass
class Loop:
    """A run's training loop, of one replica or of many: its steps, evaluations, selection,
    logs and checkpoints. Per-replica values are lists (or arrays [R]) of one for a single run."""
    program: Program
    state: dict
    selection: Selections | None
    step_fn: Callable                     # the compiled windowed step of train.steps_per_execution steps
    zero_sums: Callable
    zero_guard: Callable
    rates: throughput.StepRates
    ckpt: checkpoint.Checkpointer
    log: rundir.MetricsLog
    on_step: Callable[[int, dict], None] | None = None
    eval_step: Callable | None = None
    metrics: list = dataclasses.field(default_factory=list)        # the last window's means, per replica
    eval_metrics: list = dataclasses.field(default_factory=list)
    window: rundir.Timer = dataclasses.field(default_factory=rundir.Timer)
    window_start: int = 0
    sums: Any = None                      # on device: metric sums over the steps since the last record
    timed: tuple[int, float] = (0, 0.0)   # (steps, seconds) of the windows logged so far
    active: np.ndarray | None = None      # [R] bool: replicas still training (train.patience)
    bad_steps: np.ndarray | None = None   # [R]: steps skipped for a non-finite loss or gradient
    guard: Any = None                     # on device: the counters behind bad_steps (program.windowed_step)
    checks: collections.deque = dataclasses.field(default_factory=collections.deque)  # (step, guard) to read
    one_step: Callable | None = None      # with train.steps_per_execution > 1: the one-step program, for the steps between

    def __post_init__(self):
        count, patience = self.program.count, self.program.exp.cfg.train.patience
        self.eval_step = self.program.eval_step()
        self.active = ~self.selection.exhausted(patience) if self.selection else np.ones(count, bool)
        self.bad_steps = np.zeros(count, int)
        self.guard = self.zero_guard()
        # XLA's CPU collectives abort with dozens of steps queued over several devices
        # (zoo.mesh.IN_FLIGHT): there every step is checked, IN_FLIGHT steps behind
        mesh = self.program.exp.mesh
        self.bounded = mesh.devices.size > 1 and mesh.devices.flat[0].platform == "cpu"

    @property
    def cfg(self) -> Config:
        return self.program.exp.cfg

    def run(self, start: int) -> None:
        t = self.cfg.train
        self.window_start = start
        if start >= t.steps or not self.active.any():  # resumed a finished run or an early stop
            return
        self.sums, self.window = self.zero_sums(), rundir.Timer()  # compiling is not training time
        chunk = t.steps_per_execution
        uneven = [f"train.{k}={getattr(t, k)}" for k in ("log_every", "eval_every", "checkpoint_every") if getattr(t, k) % chunk]
        if chunk > 1 and uneven and rundir.is_writer():
            print(f"note: train.steps_per_execution={chunk} does not divide {', '.join(uneven)}: the steps before each of "
                  f"those run one call each; choose a divisor for the full speed", file=sys.stderr, flush=True)
        with _StopSignals() as stop, rundir.Profile(self.log.run_dir, t.profile_steps) as profile:
            done = start
            while done < t.steps and self.active.any():
                count = self.steps_in_call(done)
                profile.before(done + 1)
                if count == 1:
                    step_fn, batch = self.single_step(), self.program.train_batch(done)
                else:
                    step_fn, batch = self.step_fn, self.program.train_batches(done, count)
                self.state, self.sums, self.guard = step_fn(self.state, self.sums, self.guard, batch,
                                                            *self.program.step_args(self.active))
                self.log.advance(count)
                profile.after(done + count, self.state)
                if self.bounded or (done + count) // CHECK_EVERY > done // CHECK_EVERY:
                    self.checks.append((done + count, self.guard))
                if len(self.checks) > (IN_FLIGHT if self.bounded else 1):
                    self.settle(*self.checks.popleft())
                done += count
                self.after_step(done, stop.agreed())
            self.settle_all(done)

    def steps_in_call(self, done: int) -> int:
        """How many steps the next call trains: train.steps_per_execution when they all fit
        before the next step that logs, evaluates, checkpoints, ends the run or starts or stops
        a profile; else one (the one-step program, compiled when first needed)."""
        t = self.cfg.train
        chunk = t.steps_per_execution
        if chunk == 1:
            return 1
        edges = [t.steps, *[(done // n + 1) * n for n in (t.log_every, t.eval_every, t.checkpoint_every) if n]]
        if t.profile_steps:  # a trace starts before its first step and stops after its last
            edges += [e for e in (t.profile_steps[0] - 1, t.profile_steps[1]) if e > done]
        return chunk if done + chunk <= min(edges) else 1

    def single_step(self) -> Callable:
        """The one-step program: step_fn itself, or compiled now beside a steps_per_execution one."""
        if self.cfg.train.steps_per_execution == 1:
            return self.step_fn
        if self.one_step is None:
            self.one_step = windowed_step(self.program)[0]
        return self.one_step

    def settle(self, done: int, guard) -> None:
        """Read the device's counters of skipped steps as of step `done` (which waits for that
        step) and stop the run when one replica skipped train.max_bad_steps in a row."""
        guard = {k: np.atleast_1d(v) for k, v in meshlib.to_host(guard).items()}
        self.bad_steps = guard["bad_steps"].astype(int)
        worst = guard["worst"]
        if (worst >= self.cfg.train.max_bad_steps).any():
            which = "" if self.program.count == 1 else f" (replica {int(np.argmax(worst))})"
            self.diverged(done, f"{int(worst.max())} steps in a row had a non-finite loss or gradient{which} (each "
                                f"was skipped; the params stayed finite)")

    def diverged(self, done: int, what: str):
        last = self.ckpt.latest_step()
        raise Diverged(f"stopped at step {done}: {what}; likely cause: the learning rate is too high "
                       f"(optimizer.learning_rate={self.cfg.optimizer.learning_rate:g}; lower it, or set "
                       f"optimizer.clip_norm) or the data holds nan/inf; last checkpoint: "
                       f"{'none' if last is None else f'step {last}'}", str(self.log.run_dir))

    def settle_all(self, done: int) -> None:
        """Read the counters as of step `done`, the newest (at a log, evaluation or checkpoint)."""
        self.checks.clear()
        self.settle(done, self.guard)

    def after_step(self, done: int, signum: int | None) -> None:
        t = self.cfg.train
        if self.on_step is not None:
            self.on_step(done, self.state)
        if signum is not None:
            self.save(done)
            raise Interrupted(f"stopped by signal {signum} at step {done}; checkpoint saved", signum,
                              str(self.log.run_dir))
        evaluate_now = done == t.steps or bool(t.eval_every and done % t.eval_every == 0)
        if done % t.log_every == 0 or evaluate_now:
            self.log_and_evaluate(done, evaluate_now)  # logged first: the record of a diverged step is kept
            self.settle_all(done)
        if not self.active.any() or done == t.steps or (t.checkpoint_every and done % t.checkpoint_every == 0):
            self.save(done)

    def log_and_evaluate(self, done: int, evaluate_now: bool) -> None:
        t = self.cfg.train
        jax.block_until_ready(self.sums)
        seconds = self.window.elapsed()
        rate = (done - self.window_start) / max(seconds, 1e-9)
        elapsed = self.log.timer.elapsed()
        evaluated, training = [{}] * self.program.count, self.active.copy()
        params = self.state["params"]
        if evaluate_now and self.selection is not None:
            evaluated = self.program.evaluate(self.eval_step, params, "val")
            self.selection.update(done, params, evaluated, self.active)
            self.active &= ~self.selection.exhausted(t.patience)
        elif evaluate_now:
            evaluated = self.eval_metrics = self.program.evaluate(self.eval_step, params)
        stopped = bool((training & ~self.active).any())
        # selection may evaluate every step: those records wait for log_every
        if done % t.log_every == 0 or done == t.steps or stopped or (evaluate_now and self.selection is None):
            self.metrics = self.window_means(done)
            self.log.log(self.record(done, rate, elapsed, evaluated))
            self.timed = (self.timed[0] + done - self.window_start, self.timed[1] + seconds)
            self.sums, self.window, self.window_start = self.zero_sums(), rundir.Timer(), done

    def window_means(self, done: int) -> list[dict[str, float]]:
        """Each replica's step metrics averaged over the window's steps (its sums, read from the
        device)."""
        steps_done = done - self.window_start
        sums = {k: np.atleast_1d(v) for k, v in meshlib.to_host(self.sums).items()}
        return [{k: float(v[r]) / steps_done for k, v in sums.items()} for r in range(self.program.count)]

    def record(self, step: int, steps_per_s: float, elapsed: float, evaluated: list[dict]) -> dict:
        rows = [{**m, **e} for m, e in zip(self.metrics, evaluated, strict=True)]
        return {"step": step, **self.program.combine(rows, self.active),
                "learning_rate": self.program.learning_rate(step - 1), "steps_per_s": steps_per_s,
                **self.rates.at(steps_per_s), "elapsed_s": elapsed}

    def save(self, step: int) -> None:
        """Checkpoint the state at `step`: only finite params reach a checkpoint (a finite
        gradient whose update overflowed is caught here, where reading the params is cheap)."""
        self.settle_all(step)
        if not steps.all_finite(self.state["params"]):
            self.diverged(step, "the params are no longer finite (a finite gradient's update overflowed)")
        position = self.program.exp.dataset.position(step, self.cfg.train.batch_size)
        saved = self.state if self.selection is None else {**self.state, "best": self.selection.tree()}
        self.ckpt.save(step, saved, position)

    def throughput(self) -> dict[str, float]:
        """The run's training rates: steps over the seconds of every logged window."""
        steps_done, seconds = self.timed
        if not steps_done:
            return {}
        return {"steps_per_s": steps_done / seconds, **self.rates.at(steps_done / seconds)}

    def final_metrics(self) -> tuple[list[dict], Any]:
        """(each replica's test metrics, the params they were computed with): the selected ones
        when selecting."""
        if self.selection is None:  # evaluated at the last step, or resumed a finished run: evaluate now
            params = self.state["params"]
            return self.eval_metrics or self.program.evaluate(self.eval_step, params), params
        params = self.selection.params
        tested = self.program.evaluate(self.eval_step, params)
        return [{**m, **s} for m, s in zip(tested, self.selection.summaries(), strict=True)], params


def fit(cfg: Config, *, hooks: Sequence[Callable[[Run], None]] = (),
        on_step: Callable[[int, dict], None] | None = None) -> dict:
    """Train, evaluate and write the run directory; returns the summary dict.

    `hooks` (figures, tools) are called once at the end with the trained Run (the first
    replica's), whose params are those the final metrics were computed with; a hook's
    `prepare` attribute, if it has one, runs in a thread while the loop trains (the figures
    import matplotlib there, while the main thread waits on the device). `on_step(step,
    state)` (tests) is called after every call of the step program with the live state: every
    step, or every train.steps_per_execution steps. A sweep over keys that
    change the program (train.sweep of a width, say) trains one stacked run per value in
    sub-directories and tabulates them (RUN/sweep.md; the summary's "programs"). Raises
    ConfigError for user mistakes (before compiling and before a run directory exists),
    Interrupted on SIGINT/SIGTERM and Diverged after train.max_bad_steps non-finite steps in a row.
    """
    programs = sweeps.program_configs(cfg)
    if len(programs) > 1:
        return _fit_sweep(cfg, programs, hooks, on_step)
    summary = fit_program(cfg, hooks=hooks, on_step=on_step)
    if cfg.train.sweep and rundir.is_writer():
        rundir.atomic_write(Path(summary["run_dir"]) / "sweep.md", sweeps.sweep_table([{"program": "", **summary}]))
    return summary


def _fit_sweep(cfg: Config, programs: list[tuple[str, Config]], hooks, on_step) -> dict:
    parent = rundir.prepare(cfg)
    rundir.write_config(parent, cfg)
    rows = []
    for label, program in programs:
        run = dataclasses.replace(program.run, dir=str(parent), name=label)
        rows.append({"program": label, **fit_program(program.replace(run=run), hooks=hooks, on_step=on_step)})
    summary = {"run_dir": str(parent), "programs": rows}
    rundir.write_summary(parent, summary)
    if rundir.is_writer():
        rundir.atomic_write(parent / "sweep.md", sweeps.sweep_table(rows))
    return summary


def build(cfg: Config, devices: list | None = None) -> Program:
    """The program `cfg` trains: one replica, or the stacked replicas of train.seeds/sweep; on
    `devices` (default: every device of every process)."""
    return (Stacked if is_stacked(cfg) else Program).build(cfg, devices)


def fit_program(cfg: Config, *, hooks: Sequence[Callable[[Run], None]] = (),
                on_step: Callable[[int, dict], None] | None = None) -> dict:
    """One program (a single run, or the replicas of one stacked program): check, compile,
    train, evaluate and write its run directory."""
    timer = rundir.Timer()
    program = build(cfg)
    check_resume(program.exp.cfg)
    check_optimizer(program)
    if program.exp.cfg.train.init_from is not None and not program.exp.cfg.run.resume:
        load_run_config(program.exp.cfg.train.init_from)  # a missing source run: one line, before a run dir exists
    # XLA compiles the init beside the step, and releases the GIL while it compiles: orbax's import runs then
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        init, imported = pool.submit(program.compile_init), pool.submit(checkpoint.orbax)
        windowed = windowed_step(program, program.exp.cfg.train.steps_per_execution)  # (compiled, zero_sums, zero_guard)
        init.result()
        imported.result()
    check_memory(program, windowed[0])  # the last user error, before any run directory
    run_dir = rundir.prepare(program.exp.cfg)
    with rundir.lock(run_dir):
        with rundir.removed_on_failure(run_dir, fresh=not program.exp.cfg.run.resume):
            loop, start = _start(program, run_dir, windowed, on_step)
        if rundir.is_writer():  # where the hooks run; their prepare runs beside the loop
            for prepare in filter(None, (getattr(hook, "prepare", None) for hook in hooks)):
                threading.Thread(target=prepare, name="zoo-prepare-hook", daemon=True).start()
        try:
            loop.run(start)
            eval_metrics, final_params = loop.final_metrics()
        finally:
            loop.log.close()
            loop.ckpt.close()
    summary = _summary(loop, eval_metrics, final_params, timer.elapsed(), run_dir)
    rundir.write_summary(run_dir, summary)
    if rundir.is_writer() and hooks:  # a stacked run's first replica is sliced from arrays other processes may hold
        run = program.first_run(run_dir, final_params, summary["steps"])
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


def check_optimizer(program: Program) -> None:
    """Run the optimizer's init and update on abstract values (jax.eval_shape: nothing is
    computed or compiled), so that a bad optimizer.kwargs value fails before the run starts."""
    exp = program.exp
    params = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[program.stacked:], a.dtype), program.shapes["params"])
    try:
        opt_state = jax.eval_shape(exp.tx.init, params)
        jax.eval_shape(exp.tx.update, params, opt_state, params)
    except (TypeError, ValueError) as e:
        if not exp.cfg.optimizer.kwargs:  # zoo's own arguments: a bug, keep the traceback
            raise
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        kwargs = ", ".join(f"{k}={v!r}" for k, v in exp.cfg.optimizer.kwargs.items())
        raise ConfigError(f"optimizer.kwargs: optax.{exp.cfg.optimizer.name}({kwargs}) fails on the "
                          f"parameters: {message}") from None


def _start(program: Program, run_dir: Path, windowed: tuple, on_step) -> tuple[Loop, int]:
    """The loop of a fresh or resumed run, ready at its first step. A resumed run restores its
    newest intact checkpoint (or starts at step 0 when it has none); its config.yaml is
    rewritten and its later metrics dropped only once that restore succeeded."""
    cfg = program.exp.cfg
    t, resume = cfg.train, cfg.run.resume
    if not resume:  # first thing: a fresh run killed from here on can be resumed
        rundir.write_config(run_dir, cfg)
    if program.exp.dataset.preprocessing and rundir.is_writer():  # what evaluate, predict and export apply
        preprocess.save(run_dir, program.exp.dataset.preprocessing)
    state = program.init_state()
    if t.init_from is not None and not resume:
        state = program.warm_start(state)  # the last user errors surface here
    selection = program.selection(state["params"])
    ckpt = checkpoint.Checkpointer(run_dir / "checkpoints", t.keep_checkpoints)
    try:
        if resume and ckpt.latest_step() is not None:
            state = _restore_changed(program, ckpt, selection)
    except BaseException:
        ckpt.close()
        raise
    start = int(np.max(meshlib.to_host(state["step"])))
    if resume:
        rundir.truncate_metrics(run_dir, start)
        rundir.write_config(run_dir, cfg)
    log = rundir.MetricsLog(run_dir, t.steps, start, tensorboard=cfg.run.tensorboard)
    if rundir.is_writer():
        replicas = f" ({program.count} replicas)" if program.stacked else ""
        print(f"run directory: {run_dir}{replicas}", flush=True)
    tokens = program.tokens_per_step() if program.exp.dataset.task == "language_model" else None
    rates = steps.step_rates(program.exp, program.step_flops(windowed[0]), tokens, program.count)
    return Loop(program, state, selection, *windowed, rates, ckpt, log, on_step), start


def restore(program: Program, ckpt: checkpoint.Checkpointer, selection: Selections | None = None,
            step: int | None = None) -> tuple[dict, dict]:
    """The train state (and, in place, `selection`) from a checkpoint, laid out on the mesh;
    returns (state, data position)."""
    target = program.checkpoint_target()
    restored, position = ckpt.restore(target, step)
    if selection is not None:
        selection.load(restored.pop("best"))
    return restored, position


def _restore_changed(program: Program, ckpt: checkpoint.Checkpointer, selection) -> dict:
    """restore(), where a checkpoint that does not fit a config changed with run.allow_changes
    (another model, another optimizer) is the user's mistake, said in one line."""
    try:
        return restore(program, ckpt, selection)[0]
    except (ValueError, TypeError, KeyError) as e:
        if not program.exp.cfg.run.allow_changes:
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise ConfigError(f"the checkpoint does not fit the changed config ({first}); resume without "
                          f"changing the model or the optimizer") from None


def _summary(loop: Loop, final: list[dict], params, wall_time: float, run_dir) -> dict:
    """summary.json: each replica's final metrics (program.summarize: a single run's as they
    are), the run's facts and its training rates."""
    program = loop.program
    steps_done = np.atleast_1d(meshlib.to_host(loop.state["step"]))
    window = loop.metrics or [{}] * program.count
    rows = [{**m, "steps": int(s), "bad_steps": int(b),
             **{k: v for k, v in w.items() if k not in ("loss", "grad_norm", "accuracy", "bad_step")}}
            for m, s, b, w in zip(final, steps_done, loop.bad_steps, window, strict=True)]
    return {**program.summarize(rows), "wall_time_s": wall_time, "steps": int(steps_done.max()),
            "params": program.param_count(params), "model": program.exp.cfg.model_name,
            "data": program.exp.cfg.data_name, "run_dir": str(run_dir), **loop.throughput()}

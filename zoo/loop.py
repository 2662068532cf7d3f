"""The training loop of every run, one replica or many (zoo.train.fit builds it): the steps,
evaluations, model selection, logs and checkpoints, and the two ways it stops early, a signal
(Interrupted, after a checkpoint at the step boundary) and divergence (Diverged).

The loop reads the device's count of skipped (non-finite) steps once every CHECK_EVERY steps,
a check behind, when it is computed: reading it never waits on the device. Over several CPU
devices it checks every step, IN_FLIGHT steps behind, since XLA's CPU collectives abort with
dozens of steps queued (zoo.mesh.IN_FLIGHT).
"""
from __future__ import annotations

import collections
import dataclasses
import signal
import sys
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from zoo import checkpoint, rundir, steps, throughput
from zoo import mesh as meshlib
from zoo.program import Program, windowed_step
from zoo.schema import Config
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

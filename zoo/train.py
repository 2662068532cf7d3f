"""The trainer: `fit(cfg)` trains any registered model on any registered dataset with optax.

The train state (zoo.experiment) is one pytree, {"params", "opt_state", "step", "key"};
`train_step(state, batch) -> (state, metrics)` (zoo.steps) is jitted once with the state donated
and laid out on the mesh (zoo.mesh). Batches are a pure function of (seed, step), so a
checkpoint of the state is all a resumed run needs to continue bit for bit where it stopped.

One loop (zoo.loop) trains every run: a single run's Program (zoo.program), or R replicas of train.seeds /
train.sweep as one stacked Program (zoo.replicas) whose step is the single step vmapped. Every
option means the same for both; a single run is the one-replica case.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np

from zoo import checkpoint, rundir, steps, sweeps
from zoo import mesh as meshlib
from zoo.config import load_run_config, resume_changes
from zoo.data import preprocess
from zoo.errors import ConfigError
from zoo.experiment import Run
from zoo.loop import Loop
from zoo.program import Program, check_memory, windowed_step
from zoo.replicas import Stacked
from zoo.schema import Config, is_stacked
from zoo.selection import Selections


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

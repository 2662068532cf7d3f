"""Run directories and what goes into them: config.yaml, metrics.jsonl, summary.json, plots,
TensorBoard events (tensorboard/) and profiler traces (profile/).

A new run never overwrites an earlier one: if runs/<name> exists the run goes to
runs/<name>-2, -3, ... Only process 0 writes files in a multi-process run.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import jax

from zoo.config import Config, dump
from zoo.errors import ConfigError


def is_writer() -> bool:
    return jax.process_index() == 0


def _fresh(base: Path) -> Path:
    if not base.exists():
        return base
    i = 2
    while base.with_name(f"{base.name}-{i}").exists():
        i += 1
    return base.with_name(f"{base.name}-{i}")


def prepare(cfg: Config) -> Path:
    """The run directory: the existing one when resuming, else a fresh one (created)."""
    base = Path(cfg.run.dir) / cfg.run.name
    if cfg.run.resume:
        if not (base / "checkpoints").is_dir():
            raise ConfigError(f"run.resume=true but {base} has no checkpoints; start a new run "
                              f"without run.resume, or give the directory of an earlier run")
        return base
    if cfg.run.tensorboard:
        _check_tensorboard()
    path = _fresh(base)
    if jax.process_count() > 1:  # all processes must agree on the suffix process 0 picked
        import numpy as np
        from jax.experimental import multihost_utils
        suffix = multihost_utils.broadcast_one_to_all(np.int32(_suffix(path, base)))
        path = base if int(suffix) == 1 else base.with_name(f"{base.name}-{int(suffix)}")
    if is_writer():
        path.mkdir(parents=True, exist_ok=False)
    return path


def _check_tensorboard() -> None:
    import importlib.util
    if importlib.util.find_spec("tensorboardX") is None:
        raise ConfigError("run.tensorboard=true needs the tensorboardX package: pip install 'zoo[tensorboard]', "
                          "or set run.tensorboard=false")


def _suffix(path: Path, base: Path) -> int:
    return 1 if path == base else int(path.name.rsplit("-", 1)[1])


def write_config(path: Path, cfg: Config) -> None:
    if is_writer():
        atomic_write(path / "config.yaml", dump(cfg))


def atomic_write(file: Path, text: str) -> None:
    tmp = file.with_name(f".{file.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, file)


class MetricsLog:
    """metrics.jsonl (one JSON object per logged step), TensorBoard events of the same records
    (tensorboard=True) and terminal progress: a bar on a TTY that advances every step and shows
    the latest record, plain lines otherwise. Only process 0 writes or draws."""

    def __init__(self, run_dir: Path, total_steps: int, start_step: int, tensorboard: bool = False):
        self.run_dir = run_dir
        self.file = open(run_dir / "metrics.jsonl", "a") if is_writer() else None
        self.tty = sys.stderr.isatty() and is_writer()
        self.bar = None  # drawn at the first step: after "run directory:" and compiling
        self.total_steps, self.start_step = total_steps, start_step
        self.events = _event_writer(run_dir, start_step) if tensorboard and is_writer() else None
        self.timer = Timer()

    def advance(self) -> None:
        """One more step done: moves the bar (host only; never waits for the device)."""
        if self.tty and self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=self.total_steps, initial=self.start_step, unit="step", dynamic_ncols=True)
        if self.bar is not None:
            self.bar.update(1)

    def log(self, record: dict) -> None:
        record = {k: _jsonable(v) for k, v in record.items()}
        if self.file:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        if self.events is not None:
            _add_scalars(self.events, record)
        if self.bar is not None:
            self.bar.set_postfix({BAR_KEYS[k]: f"{v:.4g}" for k, v in record.items() if k in BAR_KEYS and v is not None})
        elif is_writer():
            print(" ".join(_fmt(k, v) for k, v in record.items()), flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.file:
            self.file.close()
        if self.events is not None:
            self.events.close()


# record key -> its name on the progress bar
BAR_KEYS = {"loss": "loss", "accuracy": "acc", "learning_rate": "lr", "eval_loss": "eval_loss",
            "eval_accuracy": "eval_acc", "val_loss": "val_loss", "val_accuracy": "val_acc"}


def _event_writer(run_dir: Path, start_step: int):
    """A TensorBoard event writer into RUN/tensorboard/; its own thread writes and flushes the
    events. A resumed run drops the events an earlier attempt wrote past its checkpoint."""
    from tensorboardX import SummaryWriter
    return SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_step or None, flush_secs=10)


def event_tag(key: str) -> str:
    """A record key as a TensorBoard tag, grouped: eval_loss -> eval/loss, steps_per_s ->
    speed/steps_per_s, loss -> train/loss."""
    for prefix in ("eval", "val"):
        if key.startswith(prefix + "_"):
            return f"{prefix}/{key[len(prefix) + 1:]}"
    speed = key.endswith("_per_s") or key in ("mfu", "elapsed_s")
    return f"speed/{key}" if speed else f"train/{key}"


def _add_scalars(writer, record: dict) -> None:
    for key, value in record.items():
        if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
            writer.add_scalar(event_tag(key), value, record["step"])


class Profile:
    """A jax.profiler trace of steps [first, last] (numbered from 1, as in metrics.jsonl) into
    RUN/profile/: TensorBoard's profile plugin reads it, and ui.perfetto.dev opens its
    perfetto_trace.json.gz. steps=() traces nothing."""

    def __init__(self, run_dir: Path, steps: tuple[int, ...]):
        self.dir, self.steps, self.active = run_dir / "profile", steps, False

    def __enter__(self):
        return self

    def before(self, step: int) -> None:
        if self.steps and not self.active and self.steps[0] <= step <= self.steps[1]:
            jax.profiler.start_trace(str(self.dir), create_perfetto_trace=True)
            self.active = True

    def after(self, step: int, state) -> None:
        if self.active and step >= self.steps[1]:
            self.stop(state)

    def stop(self, state=None) -> None:
        jax.block_until_ready(state)  # the trace holds the last step's device work, not only its dispatch
        jax.profiler.stop_trace()
        self.active = False

    def __exit__(self, *exc):
        if self.active:
            self.stop()


def _jsonable(v):
    v = v.item() if hasattr(v, "item") else v
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _fmt(k, v) -> str:
    return f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}"


def write_summary(path: Path, summary: dict) -> None:
    if is_writer():
        atomic_write(path / "summary.json", json.dumps({k: _jsonable(v) for k, v in summary.items()}, indent=2) + "\n")


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

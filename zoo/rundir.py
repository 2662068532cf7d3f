"""Run directories and what goes into them: config.yaml, metrics.jsonl, summary.json, plots.

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
    path = _fresh(base)
    if jax.process_count() > 1:  # all processes must agree on the suffix process 0 picked
        import numpy as np
        from jax.experimental import multihost_utils
        suffix = multihost_utils.broadcast_one_to_all(np.int32(_suffix(path, base)))
        path = base if int(suffix) == 1 else base.with_name(f"{base.name}-{int(suffix)}")
    if is_writer():
        path.mkdir(parents=True, exist_ok=False)
    return path


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
    """metrics.jsonl (one JSON object per logged step) plus terminal progress: a bar on a TTY,
    plain lines otherwise."""

    def __init__(self, run_dir: Path, total_steps: int, start_step: int):
        self.run_dir = run_dir
        self.file = open(run_dir / "metrics.jsonl", "a") if is_writer() else None
        self.tty = sys.stderr.isatty() and is_writer()
        self.bar = None
        if self.tty:
            from tqdm import tqdm
            self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True)
        self.last_step = start_step
        self.timer = Timer()

    def log(self, record: dict) -> None:
        record = {k: _jsonable(v) for k, v in record.items()}
        if self.file:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        step = record["step"]
        if self.bar is not None:
            self.bar.update(step - self.last_step)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in record.items()
                                  if k in ("loss", "eval_loss", "eval_accuracy") and v is not None})
        elif is_writer():
            print(" ".join(_fmt(k, v) for k, v in record.items()), flush=True)
        self.last_step = step

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.file:
            self.file.close()


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

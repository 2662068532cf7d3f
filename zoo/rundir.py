"""Run directories and what goes into them: config.yaml, metrics.jsonl, summary.json, plots,
TensorBoard events (tensorboard/) and profiler traces (profile/).

A new run never overwrites an earlier one: if runs/<name> exists the run goes to
runs/<name>-2, -3, ... (each made with an exclusive mkdir and locked at once, so concurrent
starts never share one). A directory a start left before writing anything (killed right after
its mkdir: it holds no config.yaml, only .lock, and nobody holds its lock) is taken again by
the next start of that name. A process training a directory holds RUN/.lock. A fresh directory
that never trained a step is removed when its command fails (`remove_untrained`). Only
process 0 writes files in a multi-process run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import jax

from zoo.config import with_absolute_paths
from zoo.errors import ConfigError
from zoo.schema import Config, dump


def is_writer() -> bool:
    return jax.process_index() == 0


def prepare(cfg: Config) -> Path:
    """The run directory: the existing one when resuming, else a fresh one, created atomically
    (two runs started at once with one name get two directories). ConfigError when it cannot be."""
    base = Path(cfg.run.dir) / cfg.run.name
    if cfg.run.resume:
        if not base.is_dir():
            raise ConfigError(f"run.resume=true but {base} is not a directory; start a new run "
                              f"without run.resume, or give the directory of an earlier run")
        return base
    if cfg.run.tensorboard:
        _check_tensorboard()
    suffix = _make_fresh(base) if is_writer() else 0
    if jax.process_count() > 1:  # all processes take the suffix process 0 created
        import numpy as np
        from jax.experimental import multihost_utils
        suffix = int(multihost_utils.broadcast_one_to_all(np.int32(suffix)))
    return _numbered(base, suffix)


RUN_ID = "run_id"


def run_id(run_dir: Path, create: bool = False) -> str | None:
    """The id of the run in `run_dir` (RUN/run_id, random, made once): checkpoints record it, so
    a checkpoint put there from another run is told apart. create=True makes a missing one
    (process 0 only); None when there is none (a run from before ids, read only)."""
    file = run_dir / RUN_ID
    with contextlib.suppress(OSError):
        return file.read_text().strip() or None
    if not (create and is_writer()):
        return None
    import uuid
    atomic_write(file, uuid.uuid4().hex)
    return file.read_text().strip()


def _check_tensorboard() -> None:
    import importlib.util
    if importlib.util.find_spec("tensorboardX") is None:
        raise ConfigError("run.tensorboard=true needs the tensorboardX package: pip install 'zoo[tensorboard]', "
                          "or set run.tensorboard=false")



def _numbered(base: Path, i: int) -> Path:
    return base if i == 1 else base.with_name(f"{base.name}-{i}")


def _make_fresh(base: Path) -> int:
    """Create and lock runs/<name>, or the first free runs/<name>-2, -3, ..., taking a leftover
    of a killed start where there is one; returns the number taken."""
    i = 1
    while True:
        path = _numbered(base, i)
        try:
            path.mkdir(parents=True, exist_ok=False)
            made = True
        except FileExistsError:
            if not base.parent.is_dir():
                raise ConfigError(f"run.dir={str(base.parent)!r} is a file, not a directory; "
                                  f"choose another run.dir") from None
            made = False
        except OSError as e:
            raise ConfigError(f"run.dir={str(base.parent)!r}: cannot create {path.name} there "
                              f"({e.strerror}); choose a writable run.dir") from None
        if _claim(path, made):
            _UNTRAINED.add(path.absolute())
            return i
        i += 1


LIBRARY_LOG = "train.log"  # absl's records (orbax, jax) while a run's checkpoints are open, tracebacks included
# What a start writes into its fresh directory before config.yaml: a directory holding no more
# was left by a start killed before it wrote anything.
LEFTOVERS = {".lock", RUN_ID, LIBRARY_LOG}
_HELD: dict[Path, object] = {}      # run directory -> its .lock, locked since its creation
_UNTRAINED: set[Path] = set()       # fresh run directories of this process that trained no step yet


def _claim(path: Path, made: bool) -> bool:
    """Lock `path`/.lock for this process when `path` is a directory nobody else holds and
    that holds nothing but leftovers: the one this start `made`, or one a killed start left."""
    import fcntl
    if not made and (path / "config.yaml").exists() or not path.is_dir():
        return False  # a run, or a file: never touched
    try:
        handle = open(path / ".lock", "a+")
    except OSError as e:
        if not made:
            return False
        shutil.rmtree(path, ignore_errors=True)
        raise ConfigError(f"{path}: cannot write in the run directory ({e.strerror}); "
                          f"make it writable or choose another run.dir") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return False
    if not {p.name for p in path.iterdir()} <= LEFTOVERS:
        handle.close()
        return False
    _HELD[path.absolute()] = handle
    return True


def remove_untrained() -> None:
    """Remove this process's fresh run directories that trained no step (their command
    failed or was stopped before the loop began): a failed command leaves no half-made run."""
    for run_dir in _UNTRAINED:
        with contextlib.suppress(KeyError):
            _HELD.pop(run_dir).close()
        if is_writer():
            shutil.rmtree(run_dir, ignore_errors=True)
    _UNTRAINED.clear()


def trained(run_dir: Path) -> None:
    """`run_dir` trained a step: it, and a sweep directory holding it, are runs to keep."""
    run_dir = run_dir.absolute()
    _UNTRAINED.difference_update({run_dir, *run_dir.parents})


@contextlib.contextmanager
def lock(run_dir: Path):
    """Hold RUN/.lock (flock) while training: a second process that would train the same
    directory gets a ConfigError instead of both crashing. Released on exit, even by SIGKILL.
    A fresh directory is locked from its creation on (prepare)."""
    if not is_writer():
        yield
        return
    import fcntl
    handle = _HELD.pop(run_dir.absolute(), None)
    try:
        handle = handle or open(run_dir / ".lock", "a+")
    except OSError as e:
        raise ConfigError(f"{run_dir}: cannot write in the run directory ({e.strerror}); "
                          f"make it writable or choose another run.dir") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise ConfigError(f"{run_dir} is being trained by another process (pid {handle.read().strip() or '?'}); "
                              f"wait for it to finish or stop it, then resume") from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        yield


@contextlib.contextmanager
def removed_on_failure(run_dir: Path, fresh: bool):
    """Remove a fresh run directory when setting its run up fails (a user error, a signal):
    a failed command leaves no half-made run behind. A resumed run's directory is kept."""
    try:
        yield
    except BaseException:
        if fresh and is_writer():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop metrics.jsonl records after `step` (logged after the checkpoint a run resumes
    from, and logged again by the resumed run), and any line a kill cut short."""
    file = run_dir / "metrics.jsonl"
    if not is_writer() or not file.is_file():
        return
    kept = []
    for line in file.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    atomic_write(file, "".join(f"{line}\n" for line in kept))


def write_config(path: Path, cfg: Config) -> None:
    """config.yaml, as a later plain resume should read it (run.allow_changes not carried on), its
    file paths absolute (a run trained on data.path=iris.csv is read from any folder)."""
    if is_writer():
        cfg = with_absolute_paths(cfg.replace(run=dataclasses.replace(cfg.run, allow_changes=False)))
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
        self.shown: dict[str, float] = {}  # the bar's fields: each keeps its latest value once it came
        self.total_steps, self.start_step, self.untrained = total_steps, start_step, True
        self.events = _event_writer(run_dir, start_step) if tensorboard and is_writer() else None
        self.timer = Timer()

    def advance(self, steps: int = 1) -> None:
        """`steps` more steps done: moves the bar (host only; never waits for the device)."""
        if self.untrained:  # the first step of this process: the directory is a run to keep
            trained(self.run_dir)
            self.untrained = False
        if self.tty and self.bar is None:
            from tqdm import tqdm
            digits = len(str(self.total_steps))  # the counts and the rate in fixed widths, as the fields
            self.bar = tqdm(total=self.total_steps, initial=self.start_step, unit="step", dynamic_ncols=True,
                            bar_format=f"{{l_bar}}{{bar}}| {{n_fmt:>{digits}}}/{{total_fmt}} "
                                       f"[{{elapsed}}<{{remaining}}, {{rate_fmt:>13}}{{postfix}}]")
        if self.bar is not None:
            self.bar.update(steps)

    def log(self, record: dict) -> None:
        shown = record  # the terminal says nan and inf; JSON has no such values: null
        record = {k: _jsonable(v) for k, v in record.items()}
        if self.file:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        if self.events is not None:
            _add_scalars(self.events, record)
        if self.bar is not None:
            self.shown.update({BAR_KEYS[k]: v for k, v in record.items() if k in BAR_KEYS and v is not None})
            self.bar.set_postfix_str(bar_postfix(self.shown), refresh=False)
        elif is_writer():
            print(line(shown), flush=True)

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


def bar_postfix(shown: dict[str, float]) -> str:
    """The bar's fields in BAR_KEYS order, each number in a fixed width: the bar keeps its width
    from one record to the next (an evaluation's fields, once shown, stay with their last value)."""
    return "  ".join(f"{name}={shown[name]:.4g}".ljust(len(name) + 10) for name in BAR_KEYS.values() if name in shown)


def line(record: dict) -> str:
    """A record as one plain terminal line: key=value for its numbers; a multi-seed run's
    per-replica values (kept whole in metrics.jsonl) shown as the range of the replicas' losses
    and accuracies beside their means."""
    per = record.get("per_replica") or {}
    parts = []
    for k, v in record.items():
        if isinstance(v, (dict, list, tuple)):
            continue
        text = _fmt(k, v)
        values = [x for x in per.get(k, ()) if x is not None and math.isfinite(x)]
        if k in BAR_KEYS and len(values) > 1:
            text += f" [{min(values):.4g}..{max(values):.4g}]"
        parts.append(text)
    return " ".join(parts)


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
    v = v.item() if hasattr(v, "item") else v
    return f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}"


def write_summary(path: Path, summary: dict) -> None:
    if is_writer():
        atomic_write(path / "summary.json", json.dumps({k: _jsonable(v) for k, v in summary.items()}, indent=2) + "\n")


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

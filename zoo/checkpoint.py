"""Checkpoints with orbax-checkpoint: periodic, keep-N, atomic (orbax writes into a temporary
directory and renames it when complete, so a killed run never leaves a checkpoint that
restores half-written), and verified. Each checkpoint holds the train state pytree (params,
optimizer state, step, RNG key) and a JSON record of the data position.

Verified: once orbax has finished a step, `MANIFEST` inside it records what the checkpoint is
(its step, the id of the run that wrote it, the sha256 of that run's config.yaml) and the
sha256 of every file it holds. A restore checks them first; a checkpoint whose files were
truncated, deleted or changed, that has no manifest (its run stopped while saving it), or that
is not what its name says (another step's or another run's checkpoint put in its place) is
skipped, one stderr line per fallback, for the newest intact one; when none is intact the
restore is a one-line ConfigError. Damaged values are never restored silently. Manifests
written before they recorded the step and the run are checked for what they hold.

Asynchronous: a save copies the state to host memory and returns; orbax writes the files in a
background thread while training goes on, and a thread of ours writes the manifest as soon as
orbax has committed the step, so a killed run loses at most the save in flight. The next save,
a restore and close() wait for the one before (and raise what it raised). Over several processes saves stay
synchronous (every process must agree on when a save is done).

A step that must be saved and whose directory exists (damaged, or skipped at restore because
it was newer than the state the run resumed from) is replaced: the old directory is deleted
and orbax writes the new one atomically, so the final step of a finished run is always on disk.
A save the file system refuses (full, read-only, no permission) is an OSError naming the
checkpoint folder, whatever exception orbax raised it as; earlier checkpoints stay intact.
"""
from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jax

from zoo import rundir
from zoo.errors import ConfigError

MANIFEST = "zoo_manifest.json"


def orbax():
    """orbax.checkpoint, imported on first use: its import (0.15-0.35 s on a 2-core CPU) is
    paid by commands that read or write checkpoints, and the trainer runs it in a thread
    while XLA compiles the step (zoo.train.fit_program), where it costs nothing."""
    import orbax.checkpoint
    return orbax.checkpoint


def digest(file: Path) -> str:
    h = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(step_dir: Path) -> dict[str, Path]:
    return {p.relative_to(step_dir).as_posix(): p for p in sorted(step_dir.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def write_manifest(step_dir: Path, run: str | None) -> None:
    """Record what a finished checkpoint is (step, run id, config.yaml's sha256) and the sha256
    of every file it holds, atomically (rename)."""
    files = {name: digest(p) for name, p in _files(step_dir).items()}
    config = step_dir.parent.parent / "config.yaml"
    identity = {"step": int(step_dir.name), "run": run, "config_sha256": digest(config) if config.is_file() else None}
    tmp = step_dir / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps({**identity, "sha256": files}, indent=1))
    os.replace(tmp, step_dir / MANIFEST)


def damage(step_dir: Path, run: str | None = None) -> str | None:
    """Why the checkpoint in `step_dir` cannot be trusted, or None when every file is as saved
    and it is the checkpoint its name says: that step, of the run with id `run` (None: any)."""
    try:
        manifest = json.loads((step_dir / MANIFEST).read_text())
        recorded = manifest["sha256"]
    except FileNotFoundError:
        return "it has no checksum manifest (its run stopped while saving it)"
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"its checksum manifest is unreadable ({type(e).__name__})"
    return _identity_problem(step_dir, manifest, run) or _file_problem(step_dir, recorded)


def _identity_problem(step_dir: Path, manifest: dict, run: str | None) -> str | None:
    """A checkpoint that is not the step or the run its place says (a field missing from an
    older manifest is unknown, not wrong); the data position it records is checked as well."""
    step = int(step_dir.name)
    if manifest.get("step", step) != step:
        return f"it holds step {manifest['step']}, not {step} (another checkpoint was put in its place)"
    if None not in (run, manifest.get("run")) and manifest["run"] != run:
        return f"it was written by another run (run id {manifest['run']}, this run's is {run})"
    try:
        position = json.loads((step_dir / "position" / "metadata").read_text())
    except (OSError, ValueError):
        return None  # a missing or changed file: the checksums say which
    if isinstance(position, dict) and position.get("step", step) != step:
        return f"its data position is step {position['step']}, not {step} (another checkpoint was put in its place)"
    return None


def _file_problem(step_dir: Path, recorded: dict) -> str | None:
    present = _files(step_dir)
    missing = sorted(set(recorded) - set(present))
    if missing:
        return f"{len(missing)} file(s) missing, e.g. {missing[0]}"
    for name, p in present.items():
        if name not in recorded:
            return f"an unexpected file {name}"
        try:
            if digest(p) != recorded[name]:
                return f"{name} differs from what was saved (sha256 mismatch)"
        except OSError as e:
            return f"{name} is unreadable ({e.strerror})"
    return None


class Checkpointer:
    def __init__(self, directory: Path, keep: int, *, create: bool = True):
        """Checkpoints in `directory` (RUN/checkpoints); create=False only reads (load_run),
        never makes it."""
        self.directory = Path(directory).absolute()
        self.logs = _LibraryLog(self.directory.parent / rundir.LIBRARY_LOG)
        try:
            self.run = rundir.run_id(self.directory.parent)  # made at the first save of a run without one
            self.asynchronous = create and jax.process_count() == 1
            ocp = orbax()
            options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create, cleanup_tmp_directories=create,
                                                   enable_async_checkpointing=self.asynchronous)
            with _unwritable_as_oserror(self.directory):
                self.manager = ocp.CheckpointManager(self.directory, options=options)
        except BaseException:
            self.logs.close()
            raise
        self.unsealed: list[int] = []   # steps this process saved whose manifest is not written yet
        self.sealer: threading.Thread | None = None   # seals the save in flight (asynchronous saves)
        self.sealer_error: BaseException | None = None
        self.verified: set[int] = set()
        self.failed = False             # a save the file system refused: close() waits for nothing

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def check_step(self, step: int | None, run_dir: Path) -> int:
        """The newest intact checkpoint at or below `step` (None: of all), when `step` is one;
        the damaged newer ones are named on stderr in one line. ConfigError when there is none."""
        steps = sorted(self.manager.all_steps())
        if not steps:
            raise ConfigError(f"{run_dir} has no checkpoint yet; train it first (or resume it)")
        if step is not None and step not in steps:
            raise ConfigError(f"{run_dir} has no checkpoint of step {step}; it has steps "
                              f"{', '.join(map(str, steps))}")
        skipped = []
        for s in reversed([s for s in steps if step is None or s <= step]):
            problem = None if s in self.verified else damage(self.directory / str(s), self.run)
            if problem is None:
                self.verified.add(s)
                if skipped:
                    print(f"warning: {run_dir}: {'; '.join(skipped)}; restored step {s} instead",
                          file=sys.stderr, flush=True)
                return s
            skipped.append(f"checkpoint {s} skipped: {problem}")
        raise ConfigError(f"{run_dir}: no intact checkpoint{'' if step is None else f' at or below step {step}'} "
                          f"({'; '.join(skipped)}); start a new run, or restore the checkpoints from a backup")

    def save(self, step: int, state: Any, position: dict) -> None:
        """Checkpoint `step`; a directory of that step already there (damaged, or newer than the
        state this run resumed from, so skipped at restore) is replaced. OSError naming the
        checkpoint folder when the file system refuses the write."""
        self.seal()
        with _unwritable_as_oserror(self.directory, on_error=self._failed):
            if step in self.manager.all_steps():
                self.manager.delete(step)
                self.verified.discard(step)
            self.unsealed.append(step)  # a save refused below clears it (_failed)
            # force: orbax would skip a step below a newer (damaged) one it still lists
            args = orbax().args
            self.manager.save(step, force=True, args=args.Composite(
                state=args.StandardSave(state), position=args.JsonSave(position)))
        if self.asynchronous:
            self.sealer = threading.Thread(target=self._seal_in_background, name="zoo-checkpoint-seal", daemon=True)
            self.sealer.start()
        else:
            self.seal()

    def _seal_in_background(self) -> None:
        try:
            self._seal_now()
        except BaseException as e:  # raised in the training thread by seal()
            self.sealer_error = e

    def seal(self) -> None:
        """Wait for the save in flight and its manifest. OSError naming the checkpoint folder when
        the file system refused the save."""
        if self.sealer is None:
            self._seal_now()
            return
        self.sealer.join()
        self.sealer, error, self.sealer_error = None, self.sealer_error, None
        if error is not None:
            if self.failed:  # orbax's writers may have added to its temporary folder since: drop it again
                self._failed()
            raise error

    def _seal_now(self) -> None:
        """Wait for orbax, then write the manifests not yet written."""
        with _unwritable_as_oserror(self.directory, on_error=self._failed):
            self.manager.wait_until_finished()
            if jax.process_index() == 0:
                if self.unsealed and self.run is None:
                    self.run = rundir.run_id(self.directory.parent, create=True)
                for step in self.unsealed:
                    if (self.directory / str(step)).is_dir():  # not yet rotated out by keep-N
                        write_manifest(self.directory / str(step), self.run)
            self.unsealed = []

    def _failed(self) -> None:
        """After a refused save: drop orbax's half-written temporary folder (where the file
        system lets us); its manifest will not be written."""
        self.failed, self.unsealed = True, []
        gc.collect()  # orbax's abandoned writes report "never retrieved" now, into RUN/train.log
        self._drop_temporary()

    def _drop_temporary(self, settle: float = 0.0) -> None:
        """Remove orbax's temporary folders; with settle=S, again until none has reappeared for
        0.2 s (tensorstore's writes of a refused save, which nothing joins, may still make
        folders; on a full disk each fails quickly), for at most S seconds."""
        deadline, quiet_since = time.monotonic() + settle, time.monotonic()
        while True:
            left = list(self.directory.glob("*.orbax-checkpoint-tmp*"))
            for tmp in left:
                shutil.rmtree(tmp, ignore_errors=True)
            now = time.monotonic()
            quiet_since = now if left else quiet_since
            if now >= deadline or now - quiet_since >= 0.2:
                return
            time.sleep(0.02)

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """The state at `step` (default: the newest intact), laid out as `abstract_state`'s
        shardings, after its checksums were verified."""
        self.seal()
        step = self.check_step(step, self.directory.parent)
        args = orbax().args
        restored = self.manager.restore(step, args=args.Composite(
            state=args.StandardRestore(abstract_state), position=args.JsonRestore()))
        return restored["state"], restored["position"]

    def close(self) -> None:
        try:
            if self.sealer is not None or not self.failed:  # a save in flight reports how it ended
                self.seal()
        finally:
            try:
                if self.failed:  # orbax raises the refused save again: it was reported (OSError) already
                    with contextlib.suppress(Exception):
                        self.manager.close()
                    # orbax's writer threads, joined by close(), may have made paths in its
                    # temporary folder after _failed removed it: remove it again
                    self._drop_temporary(settle=5.0)
                else:
                    self.manager.close()
            finally:
                self.logs.close()


class _FileHandler(logging.FileHandler):
    """A log file that a full or read-only disk silences instead of printing to the terminal
    what it could not hold (or raising into orbax, when the file cannot be opened)."""

    def emit(self, record):
        if self._closed:  # a record of orbax's threads racing close(): FileHandler would reopen the file, never to close it
            return
        with contextlib.suppress(OSError):
            super().emit(record)

    def handleError(self, record):
        pass

    def close(self):
        with contextlib.suppress(OSError):  # the last records, flushed onto a full disk
            super().close()


class _LibraryLog:
    """While a Checkpointer is open, absl's and asyncio's log records (orbax's warnings about the
    damage zoo reports in its own line, the tracebacks of a save the disk refused) go to
    RUN/train.log, not to the terminal; where that file cannot be written they are dropped."""

    # absl: orbax's own records; asyncio: the futures of a failed save that nobody retrieved
    LOGGERS = ("absl", "asyncio")

    def __init__(self, file: Path):
        try:
            self.handler = _FileHandler(file, delay=True) if file.parent.is_dir() else logging.NullHandler()
        except OSError:
            self.handler = logging.NullHandler()
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self.handler)
            logging.getLogger(name).propagate = False

    def close(self) -> None:
        for name in self.LOGGERS:
            logger = logging.getLogger(name)
            logger.removeHandler(self.handler)
            if not logger.handlers:  # the last Checkpointer open: the logger speaks as before
                logger.propagate = True
        self.handler.close()


# orbax reports a file system error as a ValueError (tensorstore's status text) or an OSError
_ERRNO_TEXT = {errno.ENOSPC: "No space left on device", errno.EDQUOT: "Disk quota exceeded",
               errno.EROFS: "Read-only file system", errno.EACCES: "Permission denied"}
UNWRITABLE = {*_ERRNO_TEXT, errno.EPERM}


def unwritable_errno(e: BaseException) -> int | None:
    """The errno of a file system refusal (full, read-only, no permission) behind `e`, or None."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in UNWRITABLE:
            return e.errno
        code = re.search(r"os_error_code='?(\d+)", str(e))
        if code and int(code.group(1)) in UNWRITABLE:
            return int(code.group(1))
        for number, text in _ERRNO_TEXT.items():
            if text in str(e):
                return number
        e = e.__cause__ or e.__context__
    return None


@contextlib.contextmanager
def _unwritable_as_oserror(folder: Path, on_error=None):
    """A file system refusal inside, whatever orbax raised it as, becomes OSError(errno,
    strerror, folder); anything else keeps its traceback."""
    try:
        yield
    except Exception as e:
        number = unwritable_errno(e)
        if number is None:
            raise
        if on_error is not None:
            on_error()
        raise OSError(number, os.strerror(number), str(folder)) from None


def abstract(state: Any, shardings: Any) -> Any:
    """Shapes, dtypes and target shardings of a state, for restoring onto any mesh."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)

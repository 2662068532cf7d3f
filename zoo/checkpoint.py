"""Checkpoints with orbax-checkpoint: periodic, keep-N, atomic (orbax writes into a temporary
directory and renames it when complete, so a killed run never leaves a checkpoint that
restores half-written), and verified. Each checkpoint holds the train state pytree (params,
optimizer state, step, RNG key) and a JSON record of the data position.

Verified: once orbax has finished a step, `MANIFEST` inside it records the sha256 of every file
it holds. A restore checks them first; a checkpoint whose files were truncated, deleted or
changed (or that has no manifest: its run stopped while saving it) is skipped with one line on
stderr for the newest intact one, and when none is intact the restore is a ConfigError. Damaged
values are never restored silently.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from zoo.errors import ConfigError

MANIFEST = "zoo_manifest.json"


def digest(file: Path) -> str:
    h = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(step_dir: Path) -> dict[str, Path]:
    return {p.relative_to(step_dir).as_posix(): p for p in sorted(step_dir.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def write_manifest(step_dir: Path) -> None:
    """Record the sha256 of every file of a finished checkpoint, atomically (rename)."""
    files = {name: digest(p) for name, p in _files(step_dir).items()}
    tmp = step_dir / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps({"sha256": files}, indent=1))
    os.replace(tmp, step_dir / MANIFEST)


def damage(step_dir: Path) -> str | None:
    """Why the checkpoint in `step_dir` cannot be trusted, or None when every file is as saved."""
    try:
        recorded = json.loads((step_dir / MANIFEST).read_text())["sha256"]
    except FileNotFoundError:
        return "it has no checksum manifest (its run stopped while saving it)"
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"its checksum manifest is unreadable ({type(e).__name__})"
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
        """Checkpoints in `directory`; create=False only reads (load_run), never makes it."""
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create, cleanup_tmp_directories=create)
        self.manager = ocp.CheckpointManager(self.directory, options=options)
        self.unsealed: list[int] = []   # steps this process saved whose manifest is not written yet
        self.verified: set[int] = set()

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def check_step(self, step: int | None, run_dir: Path) -> int:
        """`step` when its checkpoint is intact; with step=None the newest intact one (each
        damaged newer one named on stderr). ConfigError when there is none."""
        steps = sorted(self.manager.all_steps())
        if not steps:
            raise ConfigError(f"{run_dir} has no checkpoint yet; train it first (or resume it)")
        if step is not None and step not in steps:
            raise ConfigError(f"{run_dir} has no checkpoint of step {step}; it has steps "
                              f"{', '.join(map(str, steps))}")
        for s in [step] if step is not None else reversed(steps):
            problem = None if s in self.verified else damage(self.directory / str(s))
            if problem is None:
                self.verified.add(s)
                return s
            print(f"warning: checkpoint {s} of {run_dir} skipped: {problem}", file=sys.stderr, flush=True)
        raise ConfigError(f"{run_dir}: no intact checkpoint (steps {', '.join(map(str, steps))} are damaged, "
                          f"reasons above); start a new run, or restore the checkpoints from a backup")

    def save(self, step: int, state: Any, position: dict) -> None:
        if step in self.manager.all_steps():
            return
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), position=ocp.args.JsonSave(position)))
        self.unsealed.append(step)
        self.seal()  # a committed checkpoint gets its manifest at once: resume can trust it

    def seal(self) -> None:
        """Wait for the saves in flight, then write their manifests."""
        self.manager.wait_until_finished()
        if jax.process_index() == 0:
            for step in self.unsealed:
                if (self.directory / str(step)).is_dir():  # not yet rotated out by keep-N
                    write_manifest(self.directory / str(step))
        self.unsealed = []

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """The state at `step` (default: the newest intact), laid out as `abstract_state`'s
        shardings, after its checksums were verified."""
        step = self.check_step(step, self.directory.parent)
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), position=ocp.args.JsonRestore()))
        return restored["state"], restored["position"]

    def close(self) -> None:
        self.seal()
        self.manager.close()


def abstract(state: Any, shardings: Any) -> Any:
    """Shapes, dtypes and target shardings of a state, for restoring onto any mesh."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)

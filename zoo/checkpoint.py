"""Checkpoints with orbax-checkpoint: periodic, keep-N, atomic (orbax writes into a temporary
directory and renames it when complete, so a killed run never leaves a checkpoint that
restores half-written). Each checkpoint holds the train state pytree (params, optimizer state,
step, RNG key) and a JSON record of the data position.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from zoo.errors import ConfigError


class Checkpointer:
    def __init__(self, directory: Path, keep: int, *, create: bool = True):
        """Checkpoints in `directory`; create=False only reads (load_run), never makes it."""
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create, cleanup_tmp_directories=create)
        self.manager = ocp.CheckpointManager(Path(directory).absolute(), options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def check_step(self, step: int | None, run_dir: Path) -> int:
        """`step`, or the latest, when a checkpoint of it exists; else ConfigError."""
        steps = sorted(self.manager.all_steps())
        if not steps:
            raise ConfigError(f"{run_dir} has no checkpoint yet; train it first (or resume it)")
        if step is None:
            return steps[-1]
        if step not in steps:
            raise ConfigError(f"{run_dir} has no checkpoint of step {step}; it has steps "
                              f"{', '.join(map(str, steps))}")
        return step

    def save(self, step: int, state: Any, position: dict) -> None:
        if step in self.manager.all_steps():
            return
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), position=ocp.args.JsonSave(position)))

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """The state at `step` (default: latest), laid out as `abstract_state`'s shardings."""
        step = self.latest_step() if step is None else step
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), position=ocp.args.JsonRestore()))
        return restored["state"], restored["position"]

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def abstract(state: Any, shardings: Any) -> Any:
    """Shapes, dtypes and target shardings of a state, for restoring onto any mesh."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)

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


class Checkpointer:
    def __init__(self, directory: Path, keep: int):
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               cleanup_tmp_directories=True)
        self.manager = ocp.CheckpointManager(Path(directory).absolute(), options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

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

"""Model selection (train.select, train.patience): which parameters a run reports and keeps.

The trainer evaluates on the validation split every train.eval_every steps and hands each
result to `Best.update`; the final test metrics are those of `Best.params`. `Best.tree()` is
checkpointed beside the train state, so a resumed run selects exactly as an uninterrupted one.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from zoo import mesh as meshlib


class Best:
    """Model selection (train.select): the parameters of the best validation evaluation so far.

    val_loss: the lowest loss. val_accuracy: the highest accuracy, ties to the lower loss.
    val_loss_and_accuracy (the GAT reference code's rule): saved when accuracy >= the highest
    and loss <= the lowest so far, both at once; patience restarts when either holds.
    `steps` counts evaluations since the last progress (for train.patience). Scores are
    compared as float32, the precision they are checkpointed in, so a resumed run selects as
    an uninterrupted one."""

    def __init__(self, select: str, params):
        self.select, self.params = select, params
        # selected loss, selected accuracy, lowest loss, highest accuracy
        self.scores = np.array([np.inf, -np.inf, np.inf, -np.inf], np.float32)
        self.steps = np.zeros(2, np.int32)                       # selected step, evaluations since

    def update(self, step: int, params, val: dict) -> bool:
        loss, acc = np.float32(val["val_loss"]), np.float32(val.get("val_accuracy", -np.inf))
        selected_loss, _, lowest, highest = self.scores
        if self.select == "val_loss":
            save = progress = loss < lowest
        elif self.select == "val_accuracy":
            save = progress = acc > highest or (acc == highest and loss < selected_loss)
        else:
            save, progress = acc >= highest and loss <= lowest, acc >= highest or loss <= lowest
        selected, selected_step = self.scores[:2], self.steps[0]
        if save:
            self.params = jax.tree.map(jnp.copy, params)  # the live ones are donated next step
            selected, selected_step = (loss, acc), step
        self.scores = np.array([*selected, min(loss, lowest), max(acc, highest)], np.float32)
        self.steps = np.array([selected_step, 0 if progress else self.steps[1] + 1], np.int32)
        return bool(save)

    def exhausted(self, patience: int) -> bool:
        return bool(patience) and int(self.steps[1]) >= patience

    def tree(self) -> dict:
        return {"params": self.params, "scores": self.scores, "steps": self.steps}

    def shardings(self, shardings, mesh) -> dict:
        return {"params": shardings["params"], "scores": meshlib.replicated(mesh),
                "steps": meshlib.replicated(mesh)}

    def summary(self) -> dict:
        return {"selected_step": int(self.steps[0]), "selected_val_loss": float(self.scores[0]),
                **({"selected_val_accuracy": float(self.scores[1])} if np.isfinite(self.scores[1]) else {})}

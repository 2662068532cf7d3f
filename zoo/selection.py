"""Model selection (train.select, train.patience): which parameters a run reports and keeps.

The trainer evaluates on the validation split every train.eval_every steps and hands each
result to `Selection.update`; the final test metrics are those of the selected parameters.
`Selection.tree()` is checkpointed beside the train state, so a resumed run selects exactly as
an uninterrupted one.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from zoo import mesh as meshlib

# What a checkpoint holds besides the selected params: named float32/int32 scalars.
SCORES = ("selected_loss", "selected_accuracy", "lowest_loss", "highest_accuracy")
COUNTERS = ("selected_step", "evaluations_since_progress")


class Selection:
    """The parameters of the best validation evaluation so far (train.select).

    val_loss: the lowest loss. val_accuracy: the highest accuracy, ties to the lower loss.
    val_loss_and_accuracy (the GAT reference code's rule): saved when accuracy >= the highest
    and loss <= the lowest so far, both at once; patience restarts when either holds.
    Scores are compared as float32, the precision they are checkpointed in, so a resumed run
    selects as an uninterrupted one."""

    def __init__(self, select: str, params):
        self.select, self.params = select, params
        self.values = {k: np.float32(np.inf if "loss" in k else -np.inf) for k in SCORES}
        self.values.update({k: np.int32(0) for k in COUNTERS})

    def _rule(self, loss: np.float32, acc: np.float32) -> tuple[bool, bool]:
        """(save these params, count as progress for patience)."""
        v = self.values
        if self.select == "val_loss":
            return loss < v["lowest_loss"], loss < v["lowest_loss"]
        if self.select == "val_accuracy":
            better = acc > v["highest_accuracy"] or (acc == v["highest_accuracy"] and loss < v["selected_loss"])
            return better, better
        both = acc >= v["highest_accuracy"] and loss <= v["lowest_loss"]
        return both, acc >= v["highest_accuracy"] or loss <= v["lowest_loss"]

    def update(self, step: int, params, val: dict) -> bool:
        """Score one validation evaluation; True when its params became the selected ones."""
        loss, acc = np.float32(val["val_loss"]), np.float32(val.get("val_accuracy", -np.inf))
        save, progress = self._rule(loss, acc)
        v = self.values
        if save:
            self.params = jax.tree.map(jnp.copy, params)  # the live ones are donated next step
            v.update(selected_loss=loss, selected_accuracy=acc, selected_step=np.int32(step))
        v["lowest_loss"], v["highest_accuracy"] = min(loss, v["lowest_loss"]), max(acc, v["highest_accuracy"])
        v["evaluations_since_progress"] = np.int32(0 if progress else v["evaluations_since_progress"] + 1)
        return bool(save)

    @property
    def selected_step(self) -> int:
        return int(self.values["selected_step"])

    @property
    def evaluations_since_progress(self) -> int:
        return int(self.values["evaluations_since_progress"])

    def exhausted(self, patience: int) -> bool:
        return bool(patience) and self.evaluations_since_progress >= patience

    def tree(self) -> dict:
        return {"params": self.params, **{k: np.asarray(v) for k, v in self.values.items()}}

    def load(self, tree: dict) -> None:
        """Take the selection a checkpoint held (restored from `tree()`'s layout)."""
        self.params = tree["params"]
        self.values = {k: np.asarray(jax.device_get(tree[k])).astype(np.float32 if k in SCORES else np.int32)[()]
                       for k in (*SCORES, *COUNTERS)}

    @staticmethod
    def abstract(param_shapes, mesh) -> dict:
        """`tree()`'s shapes with shardings, to restore into (params laid out like param_shapes)."""
        scalar = meshlib.replicated(mesh)
        return {"params": param_shapes,
                **{k: jax.ShapeDtypeStruct((), jnp.float32, sharding=scalar) for k in SCORES},
                **{k: jax.ShapeDtypeStruct((), jnp.int32, sharding=scalar) for k in COUNTERS}}

    def summary(self) -> dict:
        v = self.values
        out = {"selected_step": self.selected_step, "selected_val_loss": float(v["selected_loss"])}
        if np.isfinite(v["selected_accuracy"]):
            out["selected_val_accuracy"] = float(v["selected_accuracy"])
        return out


@jax.jit
def _keep(saved, new, old):
    """`new` for the replicas where saved [R] is True, else `old` (a fresh buffer either way)."""
    return jax.tree.map(lambda n, o: jnp.where(saved.reshape(-1, *[1] * (n.ndim - 1)), n, o), new, old)


class Selections:
    """One Selection per replica of a run, the same rules bit for bit; the selected params are
    kept whole, stacked on a leading replica axis when the run is (zoo.replicas), and a single
    run's checkpoint layout is Selection.tree()'s."""

    def __init__(self, select: str, params, count: int = 1, stacked: bool = False):
        self.each = [Selection(select, None) for _ in range(count)]
        self.stacked = stacked
        self.params = jax.tree.map(jnp.copy, params)

    def update(self, step: int, params, val: list[dict], active: np.ndarray) -> None:
        """Score each active replica's validation metrics; a stopped replica's selection stays."""
        saved = np.array([bool(a) and s.update(step, None, v) for s, v, a in zip(self.each, val, active, strict=True)])
        if not saved.any():
            return
        # the live params are donated by the next step: keep copies
        self.params = _keep(jnp.asarray(saved), params, self.params) if self.stacked else jax.tree.map(jnp.copy, params)

    def exhausted(self, patience: int) -> np.ndarray:
        """[R] bool: the replicas whose patience ran out."""
        return np.array([s.exhausted(patience) for s in self.each])

    def tree(self) -> dict:
        values = {k: [s.values[k] for s in self.each] for k in self.each[0].values}
        return {"params": self.params, **{k: np.stack(v) if self.stacked else np.asarray(v[0]) for k, v in values.items()}}

    def load(self, tree: dict) -> None:
        self.params = tree["params"]
        host = {k: np.asarray(jax.device_get(v)) for k, v in tree.items() if k != "params"}
        for i, s in enumerate(self.each):
            s.load({"params": None, **{k: v[i] if self.stacked else v for k, v in host.items()}})

    def summaries(self) -> list[dict]:
        return [s.summary() for s in self.each]

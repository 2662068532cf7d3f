"""What every dataset gives the trainer, and the in-memory array dataset most of them are.

A batch is a dict: `x` (model input: an array or any pytree, leading axis B), `y` (targets),
`mask` (float weights [B] or broadcastable to `y`; 0 marks padding). Training batches are a
pure function of (seed, step): the data position is the step, so resuming at step s replays
exactly the batches an uninterrupted run would have seen. Evaluation batches are padded to a
fixed size with mask 0, so the last partial batch never changes a shape (no retrace).

`shard=(index, count)` asks for one process's rows of the global batch (multi-host input).

`Dataset.preprocessing` (JSON-able) records what was fitted on the training split or read from
the user's files (standardisation statistics, class names, columns, row shapes, vocabularies);
zoo.data.preprocess applies it to new inputs, and the trainer stores it in the run directory.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from zoo.errors import ConfigError


@dataclasses.dataclass
class Dataset:
    """Base class: subclasses implement `train_batch` and `eval_batches` (and `val_batches`
    when they hold out a validation split for model selection, train.select)."""
    task: str                                   # key of zoo.tasks.TASKS
    model_defaults: dict[str, Any]              # e.g. {"num_outputs": 10}, filled into model configs
    shardable: bool = True                      # False: one indivisible batch (a whole graph)
    same_every_step = False                     # True: train_batch ignores seed and step (a whole
                                                # graph), so the trainer places it on the devices once
    preprocessing: dict[str, Any] = dataclasses.field(default_factory=dict)  # zoo.data.preprocess

    def train_batch(self, seed: int, step: int, batch_size: int, shard=(0, 1)) -> dict:
        raise NotImplementedError

    def eval_batches(self, batch_size: int, shard=(0, 1)) -> Iterator[dict]:
        raise NotImplementedError

    def has_validation(self) -> bool:
        return False

    def val_batches(self, batch_size: int, shard=(0, 1)) -> Iterator[dict]:
        raise NotImplementedError(f"{type(self).__name__} has no validation split")

    def position(self, step: int, batch_size: int) -> dict[str, int]:
        """Where the iterator stands after `step` batches (recorded in checkpoints)."""
        return {"step": step}


def shard_rows(batch: Any, shard: tuple[int, int]) -> Any:
    """Rows [index * B/count, (index+1) * B/count) of every leaf of a batch."""
    index, count = shard
    if count == 1:
        return batch

    def take(a):
        n = a.shape[0] // count
        return a[index * n:(index + 1) * n]

    import jax  # local: keeps data modules importable without touching devices
    return jax.tree.map(take, batch)


@dataclasses.dataclass
class ArrayDataset(Dataset):
    """Examples held in memory: `train`/`test` (and optionally `val`, a validation split for
    train.select) map "x", "y" to arrays with leading axis N.

    Epoch e visits the training set in the order permutation(seed, e); batch b of the epoch
    takes rows [b*B, (b+1)*B) of it, and the incomplete tail of each epoch is skipped, so
    every training batch has the same shape.
    """
    train: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    test: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    val: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def num_train(self) -> int:
        return len(self.train["y"])

    def _batches_per_epoch(self, batch_size: int) -> int:
        if batch_size > self.num_train:
            raise ConfigError(f"train.batch_size={batch_size} is larger than the training set "
                             f"({self.num_train} examples); lower it")
        return self.num_train // batch_size

    def hold_out(self, size: int) -> ArrayDataset:
        """The same data with the last `size` training examples moved to `val`."""
        if not 0 <= size < self.num_train:
            raise ConfigError(f"data.val_size={size} must be in [0, {self.num_train}) (the training examples)")
        if size == 0:
            return self
        return dataclasses.replace(self, train={k: v[:-size] for k, v in self.train.items()},
                                   val={k: v[-size:] for k, v in self.train.items()})

    def position(self, step: int, batch_size: int) -> dict[str, int]:
        epoch, index = divmod(step, self._batches_per_epoch(batch_size))
        return {"step": step, "epoch": epoch, "batch_in_epoch": index}

    def train_indices(self, seed: int, step: int, batch_size: int) -> np.ndarray:
        epoch, index = divmod(step, self._batches_per_epoch(batch_size))
        return epoch_order(seed, epoch, self.num_train)[index * batch_size:(index + 1) * batch_size]

    def train_batch(self, seed: int, step: int, batch_size: int, shard=(0, 1)) -> dict:
        rows = shard_rows(self.train_indices(seed, step, batch_size), shard)
        batch = {k: v[rows] for k, v in self.train.items()}
        batch["mask"] = np.ones(len(rows), np.float32)
        return batch

    def eval_batches(self, batch_size: int, shard=(0, 1)) -> Iterator[dict]:
        return padded_batches(self.test, batch_size, shard)

    def has_validation(self) -> bool:
        return bool(self.val)

    def val_batches(self, batch_size: int, shard=(0, 1)) -> Iterator[dict]:
        return padded_batches(self.val, batch_size, shard)


@functools.lru_cache(maxsize=4)
def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """permutation(seed, epoch) of range(n), read-only; cached, as every step of an epoch asks
    for it again (a 250k-row permutation costs milliseconds, more than a small model's step)."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    order.flags.writeable = False
    return order


class Rows:
    """Rows `index` of `source` (an array, possibly memory-mapped), read only when asked for
    and passed through `transform`: `rows[i]` (i an int array) is transform(source[index[i]]),
    `rows[a:b]` is a narrower view. So a dataset bigger than memory, or one standardised per
    batch, never exists as a whole in memory."""

    def __init__(self, source: np.ndarray, index: np.ndarray | None = None,
                 transform: Callable[[np.ndarray], np.ndarray] | None = None):
        self.source, self.transform = source, transform
        self.index = np.arange(len(source)) if index is None else np.asarray(index)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, rows):
        if isinstance(rows, slice):
            return Rows(self.source, self.index[rows], self.transform)
        x = self.source[self.index[rows]]
        return x if self.transform is None else self.transform(x)


def held_out(n: int, fraction: float, seed: int, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) row indices with round(fraction * n) rows held out at random from
    rng(seed); with `labels`, the same fraction of every class (stratified)."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    test = [g[rng.permutation(len(g))[:round(fraction * len(g))]] for g in groups]
    test_index = np.sort(np.concatenate(test)) if test else np.zeros(0, np.int64)
    return np.setdiff1d(np.arange(n), test_index), test_index


def padded_batches(arrays: dict[str, np.ndarray], batch_size: int, shard=(0, 1)) -> Iterator[dict]:
    """All rows in order, in batches of `batch_size`; the last is padded with mask 0."""
    n = len(arrays["y"])
    for start in range(0, n, batch_size):
        rows = np.arange(start, start + batch_size)
        mask = (rows < n).astype(np.float32)
        rows = np.where(rows < n, rows, 0)   # pad with copies of row 0, weight 0
        batch = {k: v[rows] for k, v in arrays.items()}
        batch["mask"] = mask
        yield shard_rows(batch, shard)

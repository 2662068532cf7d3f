"""The long-memory benchmarks gating was made for (Hochreiter & Schmidhuber 1997), generated as
Bai, Kolter and Koltun 2018 (the TCN paper, section 4; their repository's data generators) run them.

Axis legend: N examples, T data.length, B batch.

`adding`: x [N, T, 2]: channel 0 holds values drawn from U(0, 1), channel 1 marks two of them
with 1 (one in each half of the sequence); y [N, 1] = the sum of the two marked values.
Regression (MSE); predicting the mean sum, 1, scores 1/6 ~ 0.167, the paper's level for a failed model.

`copy_memory`: T + 20 steps. Ten digits drawn from 1..8, then T - 1 blanks (0), then the
delimiter 9 eleven times; the target is blank everywhere but the last ten steps, which repeat the
ten digits. x one-hot [N, T + 20, 10], y [N, T + 20] (per-step classes). The paper's inputs are
the digits as numbers: one-hot is the usual form for the recurrent models and changes no
information. A model that remembers nothing predicts blanks, then digits at chance: cross-entropy
10 ln 8 / (T + 20) per step, the paper's baseline.

Every array comes from numpy's generator seeded with data.seed (train) and data.seed + 1 (test).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from zoo.data.base import ArrayDataset
from zoo.errors import ConfigError

DIGITS, DELIMITER = 10, 9


@dataclasses.dataclass(frozen=True)
class MemoryTaskConfig:
    length: int = 200          # T: the adding problem's length, the blank gap of copy memory
    num_train: int = 10000
    num_test: int = 1000
    seed: int = 0


def _check(cfg: MemoryTaskConfig, least: int) -> None:
    if cfg.length < least or cfg.num_train < 1 or cfg.num_test < 1:
        raise ConfigError(f"data.length={cfg.length} must be at least {least}, and num_train, num_test at least 1")


def adding(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(x [n, length, 2] float32, y [n, 1] float32)."""
    values = rng.uniform(0.0, 1.0, (n, length))
    half = length // 2
    first, second = rng.integers(0, half, n), rng.integers(half, length, n)
    markers = np.zeros((n, length))
    markers[np.arange(n), first] = markers[np.arange(n), second] = 1.0
    y = values[np.arange(n), first] + values[np.arange(n), second]
    return np.stack([values, markers], -1).astype(np.float32), y[:, None].astype(np.float32)


def copy_memory(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(x one-hot [n, length + 20, 10] float32, y [n, length + 20] int32)."""
    digits = rng.integers(1, DIGITS - 1, (n, 10))
    tokens = np.concatenate([digits, np.zeros((n, length - 1), np.int64), np.full((n, 11), DELIMITER)], 1)
    y = np.concatenate([np.zeros((n, length + 10), np.int64), digits], 1)
    return np.eye(DIGITS, dtype=np.float32)[tokens], y.astype(np.int32)


def load_adding(cfg: MemoryTaskConfig) -> ArrayDataset:
    _check(cfg, 2)
    x, y = adding(cfg.num_train, cfg.length, np.random.default_rng(cfg.seed))
    x_test, y_test = adding(cfg.num_test, cfg.length, np.random.default_rng(cfg.seed + 1))
    return ArrayDataset(task="regression", model_defaults={"num_outputs": 1},
                        train={"x": x, "y": y}, test={"x": x_test, "y": y_test})


def load_copy_memory(cfg: MemoryTaskConfig) -> ArrayDataset:
    _check(cfg, 1)
    x, y = copy_memory(cfg.num_train, cfg.length, np.random.default_rng(cfg.seed))
    x_test, y_test = copy_memory(cfg.num_test, cfg.length, np.random.default_rng(cfg.seed + 1))
    return ArrayDataset(task="classification", model_defaults={"num_outputs": DIGITS},
                        train={"x": x, "y": y}, test={"x": x_test, "y": y_test})

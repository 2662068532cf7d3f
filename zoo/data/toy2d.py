"""2-D toy densities for normalising flows (as in FFJORD, Grathwohl et al. 2019), sampled
afresh for every training batch, for the "density" task of zoo.tasks (negative log-likelihood).

    eight_gaussians  8 equal Gaussians (std 0.2) centred on a circle of radius 2
    two_moons        sklearn's two moons (noise 0.05), centred and scaled by 1.6
    checkerboard     uniform on the black squares of a 4 x 4 board on [-2, 2]^2

Axis legend: B batch, D = 2. A batch is `x` [B, 2], `y` [B] (zeros, unused), `mask` [B].
Training batch (seed, step): fresh samples from rng (seed, step). Evaluation: `num_test`
samples from a fixed stream, so eval_loss is the test NLL in nats.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Literal

import numpy as np

from zoo.data.base import Dataset, shard_rows
from zoo.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Toy2DConfig:
    density: Literal["eight_gaussians", "two_moons", "checkerboard"] = "eight_gaussians"
    num_test: int = 2000


def draw(density: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """n samples [n, 2] (float32) of the named density."""
    if density == "eight_gaussians":
        angles = 2 * np.pi * rng.integers(0, 8, n) / 8
        x = 2 * np.stack([np.cos(angles), np.sin(angles)], -1) + 0.2 * rng.standard_normal((n, 2))
    elif density == "two_moons":
        from sklearn.datasets import make_moons
        x, _ = make_moons(n, noise=0.05, random_state=int(rng.integers(2 ** 31)))
        x = 1.6 * (x - np.array([0.5, 0.25]))
    elif density == "checkerboard":
        x1 = rng.uniform(-2, 2, n)
        x2 = rng.uniform(0, 1, n) + rng.integers(0, 2, n) * 2 - 2 + (np.floor(x1) % 2)
        x = np.stack([x1, x2], -1)
    else:
        raise ConfigError(f"unknown density {density!r}; valid: eight_gaussians, two_moons, checkerboard")
    return x.astype(np.float32)


@dataclasses.dataclass
class SampledDataset(Dataset):
    density_name: str = "eight_gaussians"
    num_test: int = 2000

    def _batch(self, x: np.ndarray, mask: np.ndarray) -> dict:
        return {"x": x, "y": np.zeros(len(x), np.float32), "mask": mask}

    def train_batch(self, seed: int, step: int, batch_size: int, shard=(0, 1)) -> dict:
        x = draw(self.density_name, np.random.default_rng([seed, step]), batch_size)
        return shard_rows(self._batch(x, np.ones(batch_size, np.float32)), shard)

    def eval_batches(self, batch_size: int, shard=(0, 1)) -> Iterator[dict]:
        test = draw(self.density_name, np.random.default_rng([2 ** 31 - 1]), self.num_test)
        for start in range(0, self.num_test, batch_size):
            rows = np.arange(start, start + batch_size)
            mask = (rows < self.num_test).astype(np.float32)
            yield shard_rows(self._batch(test[np.where(rows < self.num_test, rows, 0)], mask), shard)


def load(cfg: Toy2DConfig) -> SampledDataset:
    draw(cfg.density, np.random.default_rng(0), 1)   # unknown names fail here
    return SampledDataset(task="density", model_defaults={}, density_name=cfg.density,
                          num_test=cfg.num_test)

"""Irregularly sampled periodic series, the toy data of Latent ODEs (Rubanova, Chen & Duvenaud
2019, §4.1; its generator lib/generate_timeseries.py, Periodic_1d with a random frequency):

    y(t) = sin(2π f t) + z0,   f ~ U[0.4, 0.8],   z0 = 1 + N(0, 0.1²)
    observed values: y(t) + noise_weight * U[0, 1) (every point but the first, as the paper's code)

Each series has `num_points` times drawn uniformly on [0, t_max] and sorted, its own times
(the paper's code shares one draw of times across series). The points split three ways:

    observed  a random `observed_fraction` of the points with t < t_max / 2 (always the first):
              what the models read
    interp    the other points with t < t_max / 2: interpolation targets
    extrap    every point with t >= t_max / 2: extrapolation targets

Axis legend: B series, T = num_points, D = 1 value. A batch: x = {"t": [B, T], "values":
[B, T, D] (zero where not observed: the models never see a target), "observed": [B, T]},
y = {"values": [B, T, D], "interp": [B, T], "extrap": [B, T]} (0/1 weights), mask [B]. Task
"irregular" (zoo.tasks): the training loss is over every point; eval_interp_mse and
eval_extrap_mse over each set. Train and test series are drawn from rng(seed), rng(seed + 1).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from zoo.data.base import Dataset, epoch_order, shard_rows
from zoo.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class IrregularConfig:
    num_train: int = 1000
    num_test: int = 200
    num_points: int = 100
    t_max: float = 5.0
    observed_fraction: float = 0.5
    noise_weight: float = 0.01
    seed: int = 0


def generate(cfg: IrregularConfig, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """n series as flat arrays: t [n, T], values [n, T, 1], observed, interp, extrap [n, T]."""
    T = cfg.num_points
    t = np.sort(rng.uniform(0.0, cfg.t_max, (n, T)), axis=1)
    t[:, 0] = 0.0                                             # every series starts at t = 0
    f = rng.uniform(0.4, 0.8, (n, 1))
    z0 = 1.0 + 0.1 * rng.standard_normal((n, 1))
    y = np.sin(2 * np.pi * f * t) + z0
    y[:, 1:] += cfg.noise_weight * rng.random((n, T - 1))
    return {"t": t.astype(np.float32), "values": y[..., None].astype(np.float32),
            **point_sets(t < cfg.t_max / 2, cfg.observed_fraction, rng)}


def point_sets(context: np.ndarray, observed_fraction: float, rng: np.random.Generator,
               real: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The three sets of points [n, T] (float32 0/1) from the context points (bool [n, T]): each
    observed with probability observed_fraction (the first always), the other context points
    interp, the rest extrap; points outside `real` (padding) in none."""
    observed = context & (rng.random(context.shape) < observed_fraction)
    observed[:, 0] = True
    extrap = ~context if real is None else real & ~context
    return {"observed": observed.astype(np.float32), "interp": (context & ~observed).astype(np.float32),
            "extrap": extrap.astype(np.float32)}


@dataclasses.dataclass
class IrregularDataset(Dataset):
    train: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    test: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @staticmethod
    def batch(arrays: dict[str, np.ndarray], rows: np.ndarray, mask: np.ndarray) -> dict:
        a = {k: v[rows] for k, v in arrays.items()}
        x = {"t": a["t"], "values": a["values"] * a["observed"][..., None], "observed": a["observed"]}
        return {"x": x, "y": {"values": a["values"], "interp": a["interp"], "extrap": a["extrap"]}, "mask": mask}

    def train_batch(self, seed: int, step: int, batch_size: int, shard=(0, 1)) -> dict:
        n = len(self.train["t"])
        if batch_size > n:
            raise ConfigError(f"train.batch_size={batch_size} is larger than data.num_train={n}; lower it")
        epoch, index = divmod(step, n // batch_size)
        rows = epoch_order(seed, epoch, n)[index * batch_size:(index + 1) * batch_size]
        return shard_rows(self.batch(self.train, rows, np.ones(batch_size, np.float32)), shard)

    def eval_batches(self, batch_size: int, shard=(0, 1)) -> Iterator[dict]:
        n = len(self.test["t"])
        for start in range(0, n, batch_size):
            rows = np.arange(start, start + batch_size)
            mask = (rows < n).astype(np.float32)
            yield shard_rows(self.batch(self.test, np.where(rows < n, rows, 0), mask), shard)


def load(cfg: IrregularConfig) -> IrregularDataset:
    if cfg.num_points < 4:
        raise ConfigError(f"data.num_points={cfg.num_points} must be >= 4 (points to observe, interpolate and "
                          "extrapolate)")
    return IrregularDataset(task="irregular", model_defaults={"num_outputs": 1},
                            train=generate(cfg, np.random.default_rng(cfg.seed), cfg.num_train),
                            test=generate(cfg, np.random.default_rng(cfg.seed + 1), cfg.num_test))

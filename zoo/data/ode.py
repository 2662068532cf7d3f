"""Trajectories of known dynamical systems, for fitting neural ODEs.

"spiral", the system of torchdiffeq's `examples/ode_demo.py` (Chen et al. 2018):

    dy/dt = (y ** 3) A,    A = [[-0.1, 2.0], [-2.0, -0.1]],    y(0) = [2, 0]

integrated once with scipy's DOP853 in float64 (rtol 1e-10, atol 1e-12) and saved at
`num_points` equally spaced times on [0, t1] (1000 points on [0, 25] by default).

Axis legend: B batch, T points per trajectory, D = 2 state dimensions.

A batch is `x = {"y0": [B, D], "t": [B, T]}`, `y = [B, T, D]` (the true states at those
times; y[:, 0] == y0). Training batch (seed, step): `B` windows of `batch_time` consecutive
points whose starts are drawn without replacement from the first N - batch_time points
(torchdiffeq's demo: batch_time 10, batch_size 20). Evaluation: the whole trajectory from
y(0) over [0, t1], once, padded with weight-0 copies to the eval batch size, so `eval_mse`
is the mean squared error over the full horizon.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from zoo.data.base import Dataset, shard_rows
from zoo.errors import ConfigError

SPIRAL_A = np.array([[-0.1, 2.0], [-2.0, -0.1]])
SPIRAL_Y0 = np.array([2.0, 0.0])


@dataclasses.dataclass(frozen=True)
class SpiralConfig:
    num_points: int = 1000
    t1: float = 25.0
    batch_time: int = 10


def spiral_field(t: float, y: np.ndarray) -> np.ndarray:
    """The true vector field (y^3) A, y: [D] (float64)."""
    return (y ** 3) @ SPIRAL_A


def integrate(field, y0: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The trajectory [T, D] of dy/dt = field(t, y) from y0 at times t, at tight tolerance."""
    from scipy.integrate import solve_ivp

    sol = solve_ivp(field, (t[0], t[-1]), y0, method="DOP853", t_eval=t, rtol=1e-10, atol=1e-12)
    if not sol.success:
        raise RuntimeError(f"reference integration failed: {sol.message}")
    return sol.y.T


@dataclasses.dataclass
class TrajectoryDataset(Dataset):
    """One true trajectory `y` [N, D] at times `t` [N]; windows for training, all of it for eval."""
    t: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))
    y: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 2), np.float32))
    batch_time: int = 10

    def window_starts(self, seed: int, step: int, batch_size: int) -> np.ndarray:
        num_starts = len(self.t) - self.batch_time
        if batch_size > num_starts:
            raise ConfigError(f"train.batch_size={batch_size} exceeds the {num_starts} window starts")
        return np.random.default_rng([seed, step]).choice(num_starts, batch_size, replace=False)

    def train_batch(self, seed: int, step: int, batch_size: int, shard=(0, 1)) -> dict:
        starts = self.window_starts(seed, step, batch_size)
        rows = starts[:, None] + np.arange(self.batch_time)          # [B, T]
        batch = {"x": {"y0": self.y[starts], "t": self.t[rows]}, "y": self.y[rows],
                 "mask": np.ones(batch_size, np.float32)}
        return shard_rows(batch, shard)

    def eval_batches(self, batch_size: int, shard=(0, 1)) -> Iterator[dict]:
        mask = (np.arange(batch_size) == 0).astype(np.float32)
        repeat = lambda a: np.broadcast_to(a, (batch_size, *a.shape)).copy()
        batch = {"x": {"y0": repeat(self.y[0]), "t": repeat(self.t)}, "y": repeat(self.y),
                 "mask": mask}
        yield shard_rows(batch, shard)


def load_spiral(cfg: SpiralConfig) -> TrajectoryDataset:
    if cfg.batch_time < 2 or cfg.batch_time >= cfg.num_points:
        raise ConfigError(f"data.batch_time={cfg.batch_time} must be in [2, num_points={cfg.num_points})")
    t = np.linspace(0.0, cfg.t1, cfg.num_points)
    y = integrate(spiral_field, SPIRAL_Y0, t)
    return TrajectoryDataset(task="regression", model_defaults={}, t=t.astype(np.float32),
                             y=y.astype(np.float32), batch_time=cfg.batch_time)

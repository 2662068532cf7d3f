"""The toy tasks of Augmented Neural ODEs (Dupont, Doucet & Teh 2019, §4): functions a plain
neural ODE cannot represent, because its flow cannot cross trajectories.

    g1d                 x ~ U[-1, 1] in 1-D, y = g(x) = -x. A 1-D flow is increasing, and the
                        best increasing fit of -x is the constant 0: MSE 1/3 at the least.
    concentric_spheres  x in R^dim: a ball of radius r1 (y = -1) inside a shell r2 < |x| < r3
                        (y = +1); the paper's dim 2, (r1, r2, r3) = (0.5, 1.0, 1.5), 1000 points
                        inside and 2000 outside, directions uniform, radii uniform in their range.

Axis legend: N examples, D input dimensions. Splits: `x` [N, D] float32, `y` [N, 1] float32, as
an ArrayDataset for the "regression" task (mean squared error). Train and test are drawn from
rng(seed) and rng(seed + 1). concentric_spheres sets model.num_outputs = 1 (a linear readout of
the flow's final state, as the paper); g1d leaves it None, so `node` outputs the first
coordinate of the final state: the flow itself must carry x to -x.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from zoo.data.base import ArrayDataset
from zoo.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class G1DConfig:
    num_train: int = 1000
    num_test: int = 1000
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class SpheresConfig:
    dim: int = 2
    radii: tuple[float, float, float] = (0.5, 1.0, 1.5)   # r1: inner ball; (r2, r3): outer shell
    num_inner: int = 1000
    num_outer: int = 2000
    num_test: int = 1000                                  # split in the same 1:2 proportion
    seed: int = 0


def g1d_split(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    x = rng.uniform(-1.0, 1.0, (n, 1)).astype(np.float32)
    return {"x": x, "y": -x}


def load_g1d(cfg: G1DConfig) -> ArrayDataset:
    if min(cfg.num_train, cfg.num_test) < 1:
        raise ConfigError(f"data.num_train={cfg.num_train} and data.num_test={cfg.num_test} must be >= 1")
    return ArrayDataset(task="regression", model_defaults={},
                        train=g1d_split(np.random.default_rng(cfg.seed), cfg.num_train),
                        test=g1d_split(np.random.default_rng(cfg.seed + 1), cfg.num_test))


def ball_points(rng: np.random.Generator, n: int, dim: int, r_min: float, r_max: float) -> np.ndarray:
    """n points [n, dim] with uniform directions and radii uniform in [r_min, r_max]."""
    direction = rng.standard_normal((n, dim))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return direction * rng.uniform(r_min, r_max, (n, 1))


def spheres_split(rng: np.random.Generator, cfg: SpheresConfig, inner: int, outer: int) -> dict[str, np.ndarray]:
    r1, r2, r3 = cfg.radii
    x = np.concatenate([ball_points(rng, inner, cfg.dim, 0.0, r1), ball_points(rng, outer, cfg.dim, r2, r3)])
    y = np.concatenate([-np.ones((inner, 1)), np.ones((outer, 1))])
    order = rng.permutation(len(x))
    return {"x": x[order].astype(np.float32), "y": y[order].astype(np.float32)}


def load_spheres(cfg: SpheresConfig) -> ArrayDataset:
    r1, r2, r3 = cfg.radii
    if not 0 < r1 < r2 < r3:
        raise ConfigError(f"data.radii={list(cfg.radii)} must be increasing and positive: [r1, r2, r3], "
                          "the inner ball's radius, then the outer shell's two")
    if cfg.dim < 1 or min(cfg.num_inner, cfg.num_outer, cfg.num_test) < 3:
        raise ConfigError(f"data.dim={cfg.dim} must be >= 1 and data.num_inner, num_outer, num_test >= 3")
    test_inner = cfg.num_test * cfg.num_inner // (cfg.num_inner + cfg.num_outer)
    return ArrayDataset(
        task="regression", model_defaults={"num_outputs": 1},
        train=spheres_split(np.random.default_rng(cfg.seed), cfg, cfg.num_inner, cfg.num_outer),
        test=spheres_split(np.random.default_rng(cfg.seed + 1), cfg, test_inner, cfg.num_test - test_inner))


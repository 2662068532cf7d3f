"""Hamiltonian systems, generated: the three tasks of Hamiltonian Neural Networks (Greydanus,
Dzamba & Yosinski 2019), with the settings of the authors' code (hamiltonian-nn, data.py of
each experiment). State z = (q, p), examples x = z [D], targets y = dz/dt [D] (the true
derivative at the clean state), task regression: eval_loss is the paper's test loss.

    system       H(q, p)                                  trajectories       t span, points   noise
    mass_spring  q^2 + p^2                                50, radius U(0.1, 1)  [0, 3], 30    N(0, 0.1^2) on z
    pendulum     3 (1 - cos q) + p^2                      50, radius U(1.3, 2.3) [0, 3], 45   N(0, 0.1^2) on z
    two_body     |p_1|^2/2 + |p_2|^2/2 - 1/|q_1 - q_2|     1000 orbits           [0, 20], 50   none

(the Hamiltonians of the code, whose constants differ from the paper's text). Spring and
pendulum start at a uniform angle on the circle of the given radius in phase space; two-body
orbits are the code's: unit masses, G = 1, body 1 at q uniform in [0.5, 1.5]^2, body 2 at -q,
momenta of a circular orbit scaled by 1 + N(0, 0.05^2), so slightly elliptical. Two-body
layout: z = [q_x1, q_x2, q_y1, q_y2, p_x1, p_x2, p_y1, p_y2] (q then p, as the code).
Trajectories are split by trajectory, the first half (spring, pendulum) or 80% (two-body) for
training; integrated with scipy's DOP853 (rtol 1e-10) in float64; deterministic from `seed`.

`trajectories` holds the clean test trajectories {"t" [T], "z" [M, T, D]} for measuring energy
conservation of a learned field (zoo.probes.conservation), and `energy(z)` the true H.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import numpy as np

from zoo.data.base import ArrayDataset


@dataclasses.dataclass(frozen=True)
class System:
    energy: Callable[[np.ndarray], np.ndarray]       # H(z) for z [..., D]
    field: Callable[[np.ndarray], np.ndarray]        # dz/dt for z [..., D]
    dim: int                                         # D
    t1: float
    points: int
    trajectories: int
    train_fraction: float
    noise: float


def _split(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = z.shape[-1] // 2
    return z[..., :d], z[..., d:]


def spring_energy(z):
    q, p = _split(z)
    return np.sum(q ** 2 + p ** 2, axis=-1)


def spring_field(z):
    q, p = _split(z)
    return np.concatenate([2 * p, -2 * q], axis=-1)


def pendulum_energy(z):
    q, p = _split(z)
    return np.sum(3 * (1 - np.cos(q)) + p ** 2, axis=-1)


def pendulum_field(z):
    q, p = _split(z)
    return np.concatenate([2 * p, -3 * np.sin(q)], axis=-1)


def _bodies(z):
    """positions, momenta [..., body, xy] from the two-body layout."""
    q, p = _split(z)
    shape = z.shape[:-1] + (2, 2)
    return np.swapaxes(q.reshape(shape), -1, -2), np.swapaxes(p.reshape(shape), -1, -2)


def two_body_energy(z):
    q, p = _bodies(z)
    return 0.5 * np.sum(p ** 2, axis=(-1, -2)) - 1.0 / np.linalg.norm(q[..., 0, :] - q[..., 1, :], axis=-1)


def two_body_field(z):
    q, p = _bodies(z)
    r = q[..., 0, :] - q[..., 1, :]
    pull = r / np.linalg.norm(r, axis=-1, keepdims=True) ** 3          # on body 2, toward body 1
    dp = np.stack([-pull, pull], axis=-2)
    flat = lambda a: np.swapaxes(a, -1, -2).reshape(z.shape[:-1] + (4,))
    return np.concatenate([flat(p), flat(dp)], axis=-1)


SYSTEMS = {
    "mass_spring": System(spring_energy, spring_field, 2, 3.0, 30, 50, 0.5, 0.1),
    "pendulum": System(pendulum_energy, pendulum_field, 2, 3.0, 45, 50, 0.5, 0.1),
    "two_body": System(two_body_energy, two_body_field, 8, 20.0, 50, 1000, 0.8, 0.0),
}


def initial_states(name: str, rng: np.random.Generator, count: int) -> np.ndarray:
    """z(0) [count, D] as the authors' code draws them (module docstring)."""
    if name == "two_body":
        pos = rng.uniform(0.5, 1.5, (count, 2))
        r = np.linalg.norm(pos, axis=-1, keepdims=True)
        vel = pos[:, ::-1] / (2 * r ** 1.5) * np.array([-1.0, 1.0])    # a circular orbit
        vel *= 1 + 0.05 * rng.standard_normal((count, 1))
        q, p = np.stack([pos, -pos], axis=1), np.stack([vel, -vel], axis=1)   # [count, body, xy]
        return np.concatenate([np.swapaxes(q, 1, 2).reshape(count, 4), np.swapaxes(p, 1, 2).reshape(count, 4)], -1)
    low, high = (0.1, 1.0) if name == "mass_spring" else (1.3, 2.3)
    radius = rng.uniform(low, high, (count, 1))
    angle = rng.uniform(0, 2 * np.pi, (count, 1))
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)], -1)


def integrate(field: Callable, z0: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Trajectories [M, T, D] of dz/dt = field(z) from z0 [M, D]: one stacked solve."""
    from scipy.integrate import solve_ivp

    shape = z0.shape
    sol = solve_ivp(lambda _, y: field(y.reshape(shape)).reshape(-1), (t[0], t[-1]), z0.reshape(-1),
                    method="DOP853", t_eval=t, rtol=1e-10, atol=1e-12)
    if not sol.success:
        raise RuntimeError(f"reference integration failed: {sol.message}")
    return sol.y.T.reshape(len(t), *shape).swapaxes(0, 1)


@dataclasses.dataclass(frozen=True)
class HamiltonianConfig:
    system: Literal["mass_spring", "pendulum", "two_body"] = "mass_spring"
    seed: int = 0


@dataclasses.dataclass
class HamiltonianDataset(ArrayDataset):
    """Points (z, dz/dt) of the trajectories; the clean test trajectories kept whole."""
    system: str = "mass_spring"
    trajectories: dict = dataclasses.field(default_factory=dict)

    def energy(self, z: np.ndarray) -> np.ndarray:
        return SYSTEMS[self.system].energy(z)

    def field(self, z: np.ndarray) -> np.ndarray:
        return SYSTEMS[self.system].field(z)


def load(cfg: HamiltonianConfig) -> HamiltonianDataset:
    system = SYSTEMS[cfg.system]
    rng = np.random.default_rng(cfg.seed)
    t = np.linspace(0.0, system.t1, system.points)
    z = integrate(system.field, initial_states(cfg.system, rng, system.trajectories), t)     # [M, T, D]
    dz = system.field(z)
    noisy = z + system.noise * rng.standard_normal(z.shape)
    train = round(system.train_fraction * system.trajectories)
    points = lambda a: a.reshape(-1, system.dim).astype(np.float32)
    return HamiltonianDataset(
        task="regression", model_defaults={}, system=cfg.system,
        train={"x": points(noisy[:train]), "y": points(dz[:train])},
        test={"x": points(noisy[train:]), "y": points(dz[train:])},
        trajectories={"t": t, "z": z[train:]})

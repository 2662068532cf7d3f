"""Charged N-body systems, generated: the task of EGNN (Satorras, Hoogeboom & Welling 2021, sec. 5.1).

The simulation is NRI's charged particles (Kipf et al. 2018, `ChargedParticlesSim`) in 3-D
without the box walls, as EGNN uses it (walls would break the E(3) symmetry): n = 5 particles
with charges q_i = +-1 (probability 1/2 each), positions x_i ~ N(0, 1) per axis, velocities of
norm 0.5 in a random direction, and the Coulomb-like force

    F_i = sum_{j != i} q_i q_j (x_i - x_j) / ||x_i - x_j||^3        (each component clipped to +-0.1/dt)

integrated by leapfrog with dt = 0.001 (a half kick first, then drift, sample, kick). NRI's
sampler overwrites its frame 0, so its frame k is the state after (k + 1) * 100 steps; EGNN
maps frame 30 to frame 40: from the state after 3,100 steps (positions, the leapfrog's
half-step velocities, charges) predict the positions after 4,100, i.e. 1,000 steps later.

Splits (EGNN's): 3,000 training, 2,000 validation, 2,000 test systems, each split drawn from
numpy's default_rng([seed, split]) in float64, so the data are a function of (seed, sizes).
Simulating costs about 7 s per thousand systems on one core; the arrays are cached as an .npz (no
pickle) in data.cache_dir (default $ZOO_CACHE or ~/.cache/zoo) under nbody/, named by the
settings.

A batch of B systems is one padded GraphsTuple (zoo.graphs): every system is a complete
directed graph of n nodes (n (n - 1) edges), then one padding node. Axis legend: B systems,
n particles, N = B n + 1 nodes, E = B n (n - 1) edges.

    x.positions    [N, 3]  positions at the input time
    x.velocities   [N, 3]  velocities at the input time
    x.nodes        [N, 1]  ||v_i||, the invariant node feature EGNN starts from (h_i^0)
    x.edges        [E, 1]  q_i q_j, the edge attribute a_ij
    y              [N, 3]  positions 1,000 steps later;  mask [N]: 1 on real particles

so eval_mse is the mean squared error per coordinate, EGNN's metric.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from zoo.data.base import ArrayDataset, padded_batches
from zoo.errors import ConfigError
from zoo.graphs import GraphsTuple, pad_graphs

DT = 0.001                   # NRI's _delta_T
MAX_FORCE = 0.1 / DT         # NRI's _max_F, per component
SAMPLE_EVERY = 100           # EGNN's sample_freq
INPUT_FRAME, TARGET_FRAME = 30, 40


@dataclasses.dataclass(frozen=True)
class NBodyConfig:
    num_train: int = 3000
    num_val: int = 2000
    num_test: int = 2000
    num_particles: int = 5
    seed: int = 0
    cache_dir: str | None = None     # None: $ZOO_CACHE or ~/.cache/zoo


# ----------------------------------------------------------------------------- the simulation
def forces(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """F [S, n, 3] on each particle of S systems at positions x [S, n, 3], charges q [S, n]:
    each pair i < j once, its force added to i and subtracted from j (Newton's third law)."""
    n = x.shape[1]
    i, j = np.triu_indices(n, 1)
    incidence = np.zeros((len(i), n))
    incidence[np.arange(len(i)), i], incidence[np.arange(len(i)), j] = 1.0, -1.0
    diff = x[:, i] - x[:, j]                                            # x_i - x_j  [S, P, 3]
    dist2 = np.einsum("spk,spk->sp", diff, diff)
    size = q[:, i] * q[:, j] / (dist2 * np.sqrt(dist2))                 # q_i q_j / r^3
    return np.clip(np.einsum("pn,spk->snk", incidence, size[..., None] * diff), -MAX_FORCE, MAX_FORCE)


def simulate(rng: np.random.Generator, num_systems: int, num_particles: int) -> dict[str, np.ndarray]:
    """S systems from their random start to frame TARGET_FRAME: {"positions", "velocities",
    "charges" [S, n, 1], "target"} (float64) as the module docstring describes."""
    shape = (num_systems, num_particles, 3)
    q = rng.choice(np.array([-1.0, 1.0]), size=shape[:2])
    x = rng.standard_normal(shape)                                      # loc_std = 1
    v = rng.standard_normal(shape)
    v *= 0.5 / np.linalg.norm(v, axis=-1, keepdims=True)                # vel_norm = 0.5
    v += DT * forces(x, q)                                              # the half kick
    step_of = {INPUT_FRAME: (INPUT_FRAME + 1) * SAMPLE_EVERY, TARGET_FRAME: (TARGET_FRAME + 1) * SAMPLE_EVERY}
    saved = {}
    for i in range(1, step_of[TARGET_FRAME] + 1):
        x = x + DT * v
        if i == step_of[INPUT_FRAME]:
            saved["positions"], saved["velocities"] = x.copy(), v.copy()
        if i == step_of[TARGET_FRAME]:
            break
        v = v + DT * forces(x, q)
    return {**saved, "charges": q[..., None], "target": x}


def _cache_file(cfg: NBodyConfig) -> Path:
    key = json.dumps([cfg.num_train, cfg.num_val, cfg.num_test, cfg.num_particles, cfg.seed, 1])  # 1: layout
    base = Path(cfg.cache_dir or os.environ.get("ZOO_CACHE", Path.home() / ".cache" / "zoo")).expanduser()
    return base / "nbody" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def splits(cfg: NBodyConfig) -> dict[str, dict[str, np.ndarray]]:
    """{"train", "val", "test"} -> the simulated arrays in float32, cached."""
    file = _cache_file(cfg)
    sizes = {"train": cfg.num_train, "val": cfg.num_val, "test": cfg.num_test}
    if file.is_file():
        with np.load(file, allow_pickle=False) as d:
            return {s: {k.split("/")[1]: d[k] for k in d.files if k.startswith(s + "/")} for s in sizes}
    out = {s: {k: v.astype(np.float32) for k, v in simulate(np.random.default_rng([cfg.seed, i]), n,
                                                           cfg.num_particles).items()}
           for i, (s, n) in enumerate(sizes.items())}
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(partial, **{f"{s}/{k}": v for s, arrays in out.items() for k, v in arrays.items()})
    partial.replace(file)    # atomic: a reader never sees half a file
    return out


# ----------------------------------------------------------------------------- batches as graphs
def complete_graph_edges(num_systems: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """senders, receivers [S n (n - 1)]: every ordered pair j -> i, i != j, within each system."""
    j, i = np.nonzero(~np.eye(n, dtype=bool))
    offsets = (np.arange(num_systems) * n)[:, None]
    return (offsets + j).reshape(-1).astype(np.int32), (offsets + i).reshape(-1).astype(np.int32)


def graph_batch(rows: dict[str, np.ndarray]) -> dict:
    """Rows of a split (arrays [B, n, ...] and mask [B]) -> {"x": GraphsTuple, "y", "mask"}."""
    batch, n = rows["positions"].shape[:2]
    senders, receivers = complete_graph_edges(batch, n)
    flat = {k: rows[k].reshape(batch * n, -1) for k in ("positions", "velocities", "charges", "y")}
    charges = flat["charges"][:, 0]
    graph = GraphsTuple(
        nodes=np.linalg.norm(flat["velocities"], axis=-1, keepdims=True),
        edges=(charges[senders] * charges[receivers])[:, None], senders=senders, receivers=receivers,
        globals=None, n_node=np.full(batch, n, np.int32), n_edge=np.full(batch, n * (n - 1), np.int32),
        positions=flat["positions"], velocities=flat["velocities"])
    graph = pad_graphs(graph, batch * n + 1, batch * n * (n - 1), batch + 1)
    pad = lambda a: np.concatenate([a, np.zeros((1, *a.shape[1:]), a.dtype)])
    return {"x": graph, "y": pad(flat["y"]), "mask": pad(np.repeat(rows["mask"], n))}


@dataclasses.dataclass
class NBodyDataset(ArrayDataset):
    """The splits as arrays over systems (ArrayDataset shuffles them); batches as graphs."""

    def train_batch(self, seed: int, step: int, batch_size: int, shard=(0, 1)) -> dict:
        return graph_batch(super().train_batch(seed, step, batch_size))

    def eval_batches(self, batch_size: int, shard=(0, 1)) -> Iterator[dict]:
        return (graph_batch(rows) for rows in padded_batches(self.test, batch_size))

    def val_batches(self, batch_size: int, shard=(0, 1)) -> Iterator[dict]:
        return (graph_batch(rows) for rows in padded_batches(self.val, batch_size))


def load(cfg: NBodyConfig) -> NBodyDataset:
    if cfg.num_particles < 2:
        raise ConfigError(f"nbody needs num_particles >= 2 (got {cfg.num_particles})")
    data = splits(cfg)
    for arrays in data.values():
        arrays["y"] = arrays.pop("target")
    return NBodyDataset(task="regression", model_defaults={"num_outputs": 3}, shardable=False,
                        train=data["train"], test=data["test"], val=data["val"])

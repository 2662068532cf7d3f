"""Devices: one `jax.sharding.Mesh` with axes ("data", "fsdp") for every run, one device or many.

The global batch is sharded over both axes (FSDP is data parallel too); parameters and
optimizer state are replicated, or with mesh.fsdp > 1 each large leaf is split along its
largest axis that fsdp divides (ZeRO-3 style; XLA inserts the all-gathers). Multi-host runs
call `jax.distributed.initialize` first; each process then feeds its own rows of the batch.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from zoo.config import ConfigError, MeshConfig

BATCH_AXES = ("data", "fsdp")
FSDP_MIN_SIZE = 2**14  # leaves smaller than this stay replicated: gathering them costs more than it saves


def initialize_distributed(cfg: MeshConfig) -> None:
    """Join a multi-process run when the config or the environment describes one."""
    if cfg.coordinator_address is not None:
        jax.distributed.initialize(coordinator_address=cfg.coordinator_address,
                                   num_processes=cfg.num_processes, process_id=cfg.process_id)
    elif cfg.num_processes not in (None, 1):
        jax.distributed.initialize()  # cluster environments (SLURM, TPU pods) fill in the rest


def process_count(devices) -> int:
    """How many processes (hosts) hold these devices."""
    return len({d.process_index for d in devices})


def make_mesh(cfg: MeshConfig, devices=None) -> Mesh:
    """A data x fsdp mesh over `devices` (default: all of this run's devices), or over the
    first data*fsdp of them when one process holds them all (mesh.data=1 on an 8-device host
    runs on one device). Given devices may be a compile-only target's (zoo.targets)."""
    devices = list(jax.devices() if devices is None else devices)
    n, hosts = len(devices), process_count(devices)
    if cfg.fsdp <= 0 or n % cfg.fsdp:
        raise ConfigError(f"mesh.fsdp={cfg.fsdp} must be positive and divide the {n} devices")
    data = n // cfg.fsdp if cfg.data == -1 else cfg.data
    used = data * cfg.fsdp
    if data <= 0 or used > n or (used < n and hosts > 1):
        raise ConfigError(f"mesh.data={data} x mesh.fsdp={cfg.fsdp} = {used} devices, but {n} are "
                          f"available{' over all processes' if hosts > 1 else ''}; "
                          f"set mesh.data=-1 to use them all")
    return Mesh(np.array(devices[:used]).reshape(data, cfg.fsdp), BATCH_AXES)


def platform(mesh: Mesh) -> str:
    """The platform the mesh's devices are: "cpu", "gpu" or "tpu"."""
    return mesh.devices.flat[0].platform


def batch_sharding(mesh: Mesh, shardable: bool = True) -> NamedSharding:
    return NamedSharding(mesh, P(BATCH_AXES) if shardable else P())


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def leaf_sharding(mesh: Mesh, shape: tuple[int, ...]) -> NamedSharding:
    """Replicated, or split over "fsdp" along the largest axis it divides."""
    fsdp = mesh.shape["fsdp"]
    if fsdp == 1 or int(np.prod(shape, dtype=np.int64)) < FSDP_MIN_SIZE:
        return replicated(mesh)
    for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
        if shape[axis] % fsdp == 0:
            spec = [None] * len(shape)
            spec[axis] = "fsdp"
            return NamedSharding(mesh, P(*spec))
    return replicated(mesh)


def state_shardings(mesh: Mesh, state):
    return jax.tree.map(lambda x: leaf_sharding(mesh, x.shape), state)


def check_batch(mesh: Mesh, batch_size: int, what: str) -> None:
    """The global batch must split evenly over the mesh's devices and the processes holding them."""
    shards, hosts = mesh.size, process_count(mesh.devices.flat)
    if batch_size % shards or batch_size % hosts:
        raise ConfigError(f"{what}={batch_size} must be divisible by the {shards} devices of the mesh "
                          f"and the {hosts} processes; try {batch_size // shards * shards or shards}")


def global_batch(local: dict, sharding: NamedSharding):
    """Assemble each process's rows into one global array per leaf."""
    if jax.process_count() == 1:
        return jax.device_put(local, sharding)
    return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, a), local)

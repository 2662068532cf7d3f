"""Devices: one `jax.sharding.Mesh` with axes ("seeds", "data", "fsdp") for every run, one device
or many. "seeds" (size 1 unless mesh.seeds > 1) spreads the replicas of a stacked run
(train.seeds, zoo.replicas) over devices; each replica's batch is sharded over the other two.

The global batch is sharded over both axes (FSDP is data parallel too); parameters and
optimizer state are replicated, or with mesh.fsdp > 1 each large leaf is split along its
largest axis that fsdp divides (ZeRO-3 style; XLA inserts the all-gathers). Multi-host runs
call `jax.distributed.initialize` first; each process then feeds its own rows of the batch.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from zoo.errors import ConfigError
from zoo.schema import MeshConfig

BATCH_AXES = ("data", "fsdp")
# Steps dispatched ahead of the host, by the single and the stacked training loop alike: enough
# to keep the devices busy while the host makes the next batch, few enough that no backend
# queues an unbounded chain of collectives (XLA's CPU all-reduce and all-gather abort past a few
# dozen steps in flight on 2 to 8 host devices: "Termination timeout for all gather").
IN_FLIGHT = 2
REPLICA_AXIS = "seeds"
FSDP_MIN_SIZE = 2**14  # leaves smaller than this stay replicated: gathering them costs more than it saves


def initialize_distributed(cfg: MeshConfig) -> None:
    """Join a multi-process run when the config or the environment describes one. ConfigError
    naming the setting when neither gives what jax needs (outside a cluster it detects)."""
    if cfg.coordinator_address is None and cfg.num_processes not in (None, 1) and not _cluster_detected():
        raise ConfigError(_undetected(cfg, "mesh.coordinator_address"))  # before jax (it may be initialised)
    try:
        if cfg.coordinator_address is not None:
            jax.distributed.initialize(coordinator_address=cfg.coordinator_address,
                                       num_processes=cfg.num_processes, process_id=cfg.process_id)
        elif cfg.num_processes not in (None, 1):
            jax.distributed.initialize()  # cluster environments (SLURM, TPU pods) fill in the rest
    except ValueError as e:
        key = next((k for text, k in UNDETECTED.items() if str(e).startswith(text)), None)
        if key is None:
            raise
        raise ConfigError(_undetected(cfg, key)) from None


def _undetected(cfg: MeshConfig, key: str) -> str:
    return (f"mesh.num_processes={cfg.num_processes} needs {key}, and no cluster environment "
            f"(SLURM, Open MPI, TPU, Kubernetes) gives it; start each process with "
            f"mesh.coordinator_address=HOST:PORT (process 0's), mesh.num_processes and its "
            f"mesh.process_id, or train in one process (mesh.num_processes=1)")


def _cluster_detected() -> bool:
    """Whether jax.distributed would find a coordinator in the environment (its own detectors;
    they read environment variables and files, nothing on the network)."""
    import os

    from jax._src import clusters  # no public name for the detectors initialize() runs
    return bool(os.environ.get("JAX_COORDINATOR_ADDRESS")) or any(
        env.is_env_present() for env in clusters.ClusterEnv._cluster_types)


# jax.distributed's messages for a setting it could neither be given nor detect -> zoo's key
UNDETECTED = {"coordinator_address should be defined": "mesh.coordinator_address",
              "Number of processes must be defined": "mesh.num_processes",
              "The process id of the current process must be defined": "mesh.process_id"}


def processes(devices) -> list[int]:
    """The process (host) indices that own `devices`, sorted."""
    return sorted({d.process_index for d in devices})


def make_mesh(cfg: MeshConfig, devices: list | None = None) -> Mesh:
    """A seeds x data x fsdp mesh over `devices` (default: every device of every process), or
    over the first seeds*data*fsdp of them in a single-process run (mesh.data=1 on an 8-device
    host runs on one device). Given devices may belong to a target that is not this host (zoo
    compile)."""
    devices = jax.devices() if devices is None else list(devices)
    n, hosts = len(devices), len(processes(devices))
    fsdp = cfg.fsdp * cfg.seeds
    if cfg.fsdp <= 0 or n % fsdp:
        raise ConfigError(f"mesh.fsdp={cfg.fsdp} x mesh.seeds={cfg.seeds} must be positive and divide the {n} devices")
    data = n // fsdp if cfg.data == -1 else cfg.data
    used = data * fsdp
    if data <= 0 or used > n or (used < n and hosts > 1):
        raise ConfigError(f"mesh.seeds={cfg.seeds} x mesh.data={data} x mesh.fsdp={cfg.fsdp} = {used} devices, but "
                          f"{n} are available{' over all processes' if hosts > 1 else ''}; "
                          f"set mesh.data=-1 to use them all")
    return Mesh(np.array(devices[:used]).reshape(cfg.seeds, data, cfg.fsdp), (REPLICA_AXIS, *BATCH_AXES))


def batch_sharding(mesh: Mesh, shardable: bool = True) -> NamedSharding:
    return NamedSharding(mesh, P(BATCH_AXES) if shardable else P())


def chunked(sharding: NamedSharding) -> NamedSharding:
    """The sharding of K batches laid out as `sharding`, stacked on a new leading axis that no
    mesh axis splits (train.steps_per_execution: K steps in one call)."""
    return NamedSharding(sharding.mesh, P(None, *sharding.spec))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def stacked(sharding: NamedSharding) -> NamedSharding:
    """The sharding of N replicas of a leaf laid out as `sharding`, stacked on a new leading
    axis that is split over the "seeds" mesh axis."""
    return NamedSharding(sharding.mesh, P(REPLICA_AXIS, *sharding.spec))


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


def process_shard(mesh: Mesh) -> tuple[int, int]:
    """(index, count): this process's share of a batch. The processes split a batch's rows as
    the data x fsdp axes lay them out; processes that differ only along "seeds" (a stacked run's
    replicas spread over hosts) hold the same rows."""
    blocks: dict[int, set[int]] = {}
    for (_, block), device in np.ndenumerate(mesh.devices.reshape(mesh.devices.shape[0], -1)):
        blocks.setdefault(device.process_index, set()).add(block)
    shares = sorted({tuple(sorted(b)) for b in blocks.values()})
    here = blocks.get(jax.process_index())
    return (shares.index(tuple(sorted(here))) if here else 0), len(shares)


def check_batch(mesh: Mesh, batch_size: int, what: str) -> None:
    shards, hosts = mesh.shape["data"] * mesh.shape["fsdp"], process_shard(mesh)[1]
    if batch_size % shards or batch_size % hosts:
        raise ConfigError(f"{what}={batch_size} must be divisible by the {shards} devices of the mesh "
                          f"and the {hosts} processes; try {batch_size // shards * shards or shards}")


def global_batch(local: dict, sharding: NamedSharding):
    """Assemble each process's rows into one global array per leaf."""
    if jax.process_count() == 1:
        return jax.device_put(local, sharding)
    return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, a), local)


def to_host(tree):
    """Device values as numpy, whole, on every process: a replicated value from this process's
    first copy, a split one (a stacked run's values over the "seeds" axis) gathered, across
    processes with process_allgather."""
    def one(a):
        if a.is_fully_replicated:
            return np.asarray(a.addressable_data(0))
        return np.asarray(a) if a.is_fully_addressable else multihost_utils.process_allgather(a, tiled=True)
    return jax.tree.map(one, tree)


def place_whole(whole: dict, sharding: NamedSharding):
    """One global array per leaf from the whole batch, which every process holds: each device
    takes its block. A stacked run's batch [R, B, ...] needs it when the "seeds" axis splits
    the replicas over processes, a layout make_array_from_process_local_data cannot place."""
    if jax.process_count() == 1:
        return jax.device_put(whole, sharding)
    return jax.tree.map(lambda a: jax.make_array_from_callback(a.shape, sharding, lambda index: a[index]), whole)

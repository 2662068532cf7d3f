"""Compile-only accelerator targets: a name -> the devices of a TPU slice or a GPU cluster, with
their platform, hosts and memory per device, and no accelerator attached (`zoo compile`).

Names
- TPU topologies as libtpu spells them, `v5e:2x4`, `v6e:2x2`, `v4:2x2x1`, `v5p:2x2x1`
  (needs `pip install "zoo[tpu]"`), or as Cloud TPU and MaxText name slices, `v5e-8`, `v5p-128`:
  v5e/v6e count chips, v4/v5p count TensorCores (two per chip).
- GPUs from the target-config spec files shipped beside this module, `h100`, `h100:1x1x8`,
  `h200:1x2x8` (slices x hosts x GPUs per host; needs `pip install "zoo[gpu]"`).

`num_slices` > 1 joins that many TPU slices (multi-slice over the data-center network).
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import importlib.util
import os
import re

import jax
import numpy as np

from zoo.errors import ConfigError

GiB = 2**30
# Per device, what XLA reports as "available HBM" when a program does not fit (measured with
# libtpu 0.0.42 on each kind): a little under the chip's HBM, which the runtime reserves.
TPU_MEMORY = {"v4": 15.25 * GiB, "v5e": 15.75 * GiB, "v5p": 95.74 * GiB, "v6e": 31.25 * GiB}
TPU_CORES_PER_NAMED_UNIT = {"v4": 2, "v5p": 2, "v5e": 1, "v6e": 1}  # "v5p-128" counts cores
TPU_AXES = {"v4": 3, "v5p": 3, "v5e": 2, "v6e": 2}
GPUS = ("h100", "h200")


@dataclasses.dataclass(frozen=True)
class Target:
    """A compile target: `devices` are compile-only (nothing can run on them)."""
    name: str                 # as the user gave it
    kind: str                 # "v5e", "h100", ...
    platform: str             # "tpu" or "gpu"
    topology: str             # "2x4", "1x1x8"
    devices: tuple
    memory_bytes: float       # per device

    @property
    def hosts(self) -> int:
        return len({d.process_index for d in self.devices})

    def describe(self) -> str:
        return (f"{self.kind}:{self.topology}: {len(self.devices)} {self.devices[0].device_kind} "
                f"devices on {self.hosts} host{'s' if self.hosts > 1 else ''}, "
                f"{self.memory_bytes / GiB:.2f} GiB each")


def local() -> Target:
    """This process's own devices as a target (what `jax.devices()` finds), for running."""
    devices = tuple(jax.devices())
    stats = devices[0].memory_stats() or {}
    return Target(devices[0].platform, devices[0].device_kind, devices[0].platform, str(len(devices)),
                  devices, stats.get("bytes_limit", 0))


def resolve(name: str, num_slices: int = 1) -> Target:
    """The target a name gives; unknown names and missing extras are ConfigErrors."""
    if num_slices < 1:
        raise ConfigError(f"--num-slices={num_slices} must be at least 1")
    kind, _, topology = name.lower().partition(":")
    if kind in GPUS:
        if num_slices != 1:
            raise ConfigError(f"--num-slices is for TPU targets; write GPU slices in the topology, e.g. {kind}:2x1x8")
        return _gpu(name, kind, topology or "1x1x1")
    match = re.fullmatch(r"(v4|v5e|v5p|v6e)-(\d+)", kind)
    if match and not topology:
        kind, topology = match[1], slice_topology(match[1], int(match[2]))
    if kind not in TPU_MEMORY or not re.fullmatch(r"\d+(x\d+)+", topology):
        raise ConfigError(f"unknown target {name!r}; write a TPU topology such as v5e:2x4 or v5p:2x2x1, "
                          f"a slice such as v5e-8 or v5p-128, or a GPU: {', '.join(f'{g}:1x1x8' for g in GPUS)}")
    return _tpu(name, kind, topology, num_slices)


def slice_topology(kind: str, units: int) -> str:
    """The chip grid of a named slice: `v5e-8` -> "2x4", `v5p-128` -> "4x4x4" (64 chips)."""
    per_chip = TPU_CORES_PER_NAMED_UNIT[kind]
    dims = [1, 1] if TPU_AXES[kind] == 2 else [2, 2, 1]   # 3-D slices start at one 2x2x1 host
    chips, rest = divmod(units, per_chip)
    if rest or chips < np.prod(dims) or chips & (chips - 1):
        counted = "chips" if per_chip == 1 else f"TensorCores, {per_chip} per chip"
        raise ConfigError(f"{kind}-{units}: a slice has a power-of-two number of chips and {kind}-N counts "
                          f"{counted}; e.g. {kind}-{8 * per_chip}")
    while np.prod(dims) < chips:   # double the smallest axis, the last of equals: 2x2x1 -> 2x2x2 -> 2x2x4 -> 2x4x4
        dims[max(i for i, d in enumerate(dims) if d == min(dims))] *= 2
    return "x".join(map(str, dims))


CLOUD_NAMES = {"v4": "v4", "v5e": "v5litepod", "v5p": "v5p", "v6e": "v6e"}


def _quiet_libtpu(kind: str, topology: str) -> None:
    """Tell libtpu what it would ask a TPU VM's metadata server (it logs errors without), unless the
    environment already says; the topology's devices and hosts do not depend on it (checked)."""
    chips = int(np.prod([int(n) for n in topology.split("x")]))
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
    os.environ.setdefault("TPU_ACCELERATOR_TYPE", f"{CLOUD_NAMES[kind]}-{chips * TPU_CORES_PER_NAMED_UNIT[kind]}")


def _tpu(name: str, kind: str, topology: str, num_slices: int) -> Target:
    from jax.experimental import topologies

    _quiet_libtpu(kind, topology)

    try:
        devices = topologies.get_topology_desc(f"{kind}:{topology}", "tpu", num_slices=num_slices).devices
    except RuntimeError as e:
        if "not installed" not in str(e) and "INVALID_ARGUMENT" not in str(e):
            raise
        hint = ('needs libtpu: pip install "zoo[tpu]"' if "not installed" in str(e) else
                f"is not a slice libtpu knows: {str(e).splitlines()[0].removeprefix('INVALID_ARGUMENT: ')}")
        raise ConfigError(f"target {name!r} {hint}") from None
    return Target(name, kind, "tpu", topology, tuple(devices), TPU_MEMORY[kind])


def gpu_spec(kind: str) -> str:
    """The shipped target-config text proto of a GPU kind."""
    return importlib.resources.files(__name__).joinpath(f"{kind}.txtpb").read_text(encoding="utf-8")


def _gpu(name: str, kind: str, topology: str) -> Target:
    from jax.experimental import topologies

    if not re.fullmatch(r"\d+x\d+x\d+", topology):
        raise ConfigError(f"target {name!r}: a GPU topology is slices x hosts x GPUs per host, e.g. {kind}:1x1x8")
    spec = gpu_spec(kind)
    try:
        devices = topologies.get_topology_desc(platform="cuda", target_config=spec, topology=topology).devices
    except NotImplementedError:
        if importlib.util.find_spec("jax_cuda12_plugin") is None:
            raise ConfigError(f"target {name!r} needs the CUDA plugin: pip install \"zoo[gpu]\"") from None
        raise ConfigError(f"target {name!r}: the CUDA plugin compiles for GPU targets only when it is not this "
                          "process's backend; run with JAX_PLATFORMS=cpu") from None
    memory = int(re.search(r"device_memory_size:\s*(\d+)", spec)[1])
    return Target(name, kind, "gpu", topology, tuple(devices), memory)

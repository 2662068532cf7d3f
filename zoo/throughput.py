"""What a compiled step costs and how fast it runs against what the devices could do.

    costs = program_costs(jitted.lower(*abstract_args).compile())   # FLOPs, bytes, memory
    rates = StepRates(flops=..., examples=..., tokens=..., peak=peak_flops(devices, "bfloat16"))
    rates.at(steps_per_s)   # {"examples_per_s", "tokens_per_s", "flops_per_s", "mfu"}

FLOPs come from XLA's cost analysis of the compiled program, which describes the program one
device runs: a step's FLOPs over the mesh are that times the number of devices. MFU (model
FLOP utilisation) is achieved FLOP/s over the devices' peak. Peaks of accelerators are the
vendors' dense matmul rates (PEAKS); on CPU the peak is this machine's float32 matmul rate, the
best of short samples that separate runs take (SAMPLES of them, about 0.3 s each), raised when
a run's model goes faster, cached in ~/.cache/zoo/matmul_peak.json.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp

# device_kind (lower case, first match wins) -> (bfloat16, float32) dense matmul FLOP/s per device.
# float32: what jax's default matmul precision runs at: TF32 tensor cores on NVIDIA A100 and
# later, bfloat16 passes on the TPU MXU (so the bfloat16 rate).
PEAKS: list[tuple[str, float, float]] = [
    ("h200", 989e12, 494e12),
    ("h100 pcie", 756e12, 378e12),
    ("h100", 989e12, 494e12),
    ("a100", 312e12, 156e12),
    ("l4", 121e12, 60e12),
    ("tpu v6 lite", 918e12, 918e12),
    ("tpu v5 lite", 197e12, 197e12),
    ("tpu v5", 459e12, 459e12),
    ("tpu v4", 275e12, 275e12),
    ("tpu v3", 61.5e12, 61.5e12),   # per core: jax's v3 device is one of the chip's two cores
    ("tpu v2", 22.5e12, 22.5e12),
]


def cost_analysis(stage) -> dict:
    """XLA's cost analysis of a lowered or compiled program, as one dict (older jax: one per device)."""
    analysis = stage.cost_analysis()
    return (analysis[0] if isinstance(analysis, list) else analysis) or {}


def program_costs(compiled) -> dict:
    """FLOPs, bytes accessed and memory (bytes: arguments, outputs, temporaries, aliased) of a
    compiled program (`jax.jit(f).lower(...).compile()`), per device."""
    analysis = cost_analysis(compiled)
    memory = compiled.memory_analysis()
    out = {"flops": float(analysis.get("flops", 0.0)), "bytes_accessed": float(analysis.get("bytes accessed", 0.0))}
    if memory is not None:
        out["memory"] = {"arguments": memory.argument_size_in_bytes, "outputs": memory.output_size_in_bytes,
                         "temporaries": memory.temp_size_in_bytes, "aliased": memory.alias_size_in_bytes}
    return out


# ----------------------------------------------------------------------------- peaks
def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zoo"


def _machine() -> str:
    """What the CPU peak depends on: processor, core count, jax version."""
    model = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model} | {os.cpu_count()} cpus | jax {jax.__version__}"


def measure_matmul_peak(device, n: int = 1024, budget_s: float = 0.25) -> float:
    """FLOP/s of the best of repeated n x n x n float32 products on `device`, jitted: one short
    sample of this machine's rate, as busy as the machine is now."""
    a = jax.device_put(jnp.ones((n, n), jnp.float32), device)
    matmul = jax.jit(lambda x, y: x @ y)
    matmul(a, a).block_until_ready()
    best, deadline = float("inf"), time.perf_counter() + budget_s
    for _ in range(20):
        start = time.perf_counter()
        matmul(a, a).block_until_ready()
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return 2 * n**3 / best


# A CPU's peak is the best rate ever seen on it: a sample taken while other work held the cores
# is too low (35.9 against 211 GFLOP/s quiet, measured here), and an MFU against it too high for
# good. So each run adds one short sample until SAMPLES runs have, at different moments; a run
# whose model beats the cached rate raises it (zoo.throughput.StepRates.at).
SAMPLES = 5


def _peak_file() -> Path:
    return cache_dir() / "matmul_peak.json"


def _read_peaks() -> dict:
    try:
        cached = json.loads(_peak_file().read_text())
    except (OSError, ValueError):
        return {}
    return cached if isinstance(cached, dict) else {}


def _write_peak(key: str, record: dict) -> None:
    """Replace this machine's record; concurrent runs each replace the whole file atomically."""
    file = _peak_file()
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**_read_peaks(), key: record}, indent=1))
    os.replace(tmp, file)


def _record(value) -> dict:
    """A cached record; an older cache's bare number counts as one sample."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"flops_per_s": float(value), "samples": 1, "source": "matmul"}
    return value if isinstance(value, dict) and isinstance(value.get("flops_per_s"), float) else {}


def cpu_peak(device) -> float:
    """This machine's float32 matmul FLOP/s: the best of the samples cached so far, adding one
    more while fewer than SAMPLES runs have measured it."""
    key = _machine()
    record = _record(_read_peaks().get(key))
    if record.get("samples", 0) >= SAMPLES:
        return record["flops_per_s"]
    sample = measure_matmul_peak(device)
    best = max(sample, record.get("flops_per_s", 0.0))
    source = record.get("source", "matmul") if best > sample else "matmul"
    record = {"flops_per_s": best, "samples": record.get("samples", 0) + 1, "source": source,
              "updated": time.strftime("%Y-%m-%d %H:%M:%S")}
    _write_peak(key, record)
    return best


def raise_cpu_peak(flops_per_s: float) -> None:
    """A run reached `flops_per_s` on one CPU device, above the cached peak: the peak is at least
    that (the matmul samples were all taken on a busy machine)."""
    key = _machine()
    record = _record(_read_peaks().get(key))
    if flops_per_s > record.get("flops_per_s", 0.0):
        _write_peak(key, {**record, "flops_per_s": flops_per_s, "source": "run",
                          "samples": record.get("samples", 0), "updated": time.strftime("%Y-%m-%d %H:%M:%S")})


def peak_flops(device, precision: str = "float32") -> float | None:
    """Peak matmul FLOP/s of one device at `precision` ("float32" | "bfloat16"); None for an
    accelerator not in PEAKS."""
    if device.platform == "cpu":
        return cpu_peak(device)
    kind = device.device_kind.lower()
    for name, bf16, f32 in PEAKS:
        if name in kind:
            return bf16 if precision == "bfloat16" else f32
    return None


def peak_source(device, precision: str = "float32") -> str:
    """Where peak_flops(device, precision) comes from, in words (for `zoo summary`)."""
    if device.platform == "cpu":
        record = _record(_read_peaks().get(_machine()))
        how = ("a rate a training run reached, above every matmul sample" if record.get("source") == "run"
               else "the best 1024x1024 float32 matmul rate")
        return (f"this CPU's {how}; {record.get('samples', 0)} of {SAMPLES} short samples taken so far, one per "
                f"run (updated {record.get('updated', 'earlier')}; cached in {_peak_file()}, delete it to measure "
                f"afresh)")
    kind = device.device_kind.lower()
    for name, _, _ in PEAKS:
        if name in kind:
            return f"the vendor's dense {precision} matmul rate of a {device.device_kind} (zoo.throughput.PEAKS)"
    return f"unknown: {device.device_kind} is not in zoo.throughput.PEAKS"


# ----------------------------------------------------------------------------- rates
@dataclasses.dataclass
class StepRates:
    """What one training step is worth, to turn steps/s into the other rates.

    flops: FLOPs of a step over all devices; examples, tokens: per step (None where they do
    not apply: a whole-graph batch, a task without tokens); peak: FLOP/s of all devices;
    cpu_devices: the number of devices when the peak is the CPU's measured one (0 otherwise),
    which a faster window raises (raise_cpu_peak) so that MFU never passes 1."""
    flops: float
    examples: int | None = None
    tokens: int | None = None
    peak: float | None = None
    cpu_devices: int = 0

    def at(self, steps_per_s: float) -> dict[str, float]:
        out = {}
        if self.examples:
            out["examples_per_s"] = steps_per_s * self.examples
        if self.tokens:
            out["tokens_per_s"] = steps_per_s * self.tokens
        if self.flops:
            out["flops_per_s"] = steps_per_s * self.flops
            if self.peak and self.cpu_devices and out["flops_per_s"] > self.peak:
                self.peak = out["flops_per_s"]
                raise_cpu_peak(self.peak / self.cpu_devices)
            if self.peak:
                out["mfu"] = steps_per_s * self.flops / self.peak
        return out

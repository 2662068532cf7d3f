"""Data-parallel overhead: the trainer's step on a mesh of 1 device vs 8 simulated CPU devices.

    python bench/bench_scaling.py

On a 2-core machine 8 simulated devices share the same cores, so this measures what sharding
costs (partitioned programs, all-reduces, per-device dispatch), not a speed-up:
efficiency = time(1 device) / time(8 devices) at the same global batch, 1.0 meaning free.
Also float32 vs bfloat16 compute on one device. Runs itself in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "mlp": ["model.name=mlp", "model.width=256", "data.name=mnist1d", "train.batch_size=800"],
    "cnn": ["model.name=cnn", "data.name=mnist1d", "train.batch_size=800"],
    "gpt": ["model.name=gpt", "model.size=nano", "data.name=text", "data.seq_len=64", "train.batch_size=32"],
}


def measure(overrides: list[str]) -> float:
    from bench.common import median_time
    from zoo import config, train
    exp = train.setup(config.load(None, overrides))
    state, shardings = train.init_state(exp)
    step = train.make_train_step(exp, shardings)
    batch = train.train_batch(exp, 0)
    holder = {"state": state}

    def one():
        holder["state"], metrics = step(holder["state"], batch)
        return metrics

    return median_time(one, warmup=5, repeats=5, number=20)


def child() -> None:
    from bench.common import table
    rows = []
    for name, overrides in CASES.items():
        one = measure([*overrides, "mesh.data=1"])
        eight = measure([*overrides, "mesh.data=8"])
        bf16 = measure([*overrides, "mesh.data=1", "train.precision=bfloat16"])
        rows.append({"model": name, "1 device ms/step": 1e3 * one, "8 devices ms/step": 1e3 * eight,
                     "efficiency": one / eight, "bf16 ms/step (1 device)": 1e3 * bf16, "bf16/f32 speed": one / bf16})
    print(table(rows))


def main() -> None:
    if os.environ.get("ZOO_BENCH_CHILD"):
        sys.path.insert(0, str(ROOT))
        child()
        return
    env = {**os.environ, "ZOO_BENCH_CHILD": "1", "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    raise SystemExit(subprocess.call([sys.executable, __file__], env=env, cwd=ROOT))


if __name__ == "__main__":
    main()

"""The trainer's step on 1 vs 8 simulated CPU devices (data-parallel overhead), and bf16 vs f32.

What it measures: bench/README.md.

    python -m bench.bench_scaling                  # mlp, cnn and gpt rows
    python -m bench.bench_scaling --rows mlp       # some of them
    python -m bench.bench_scaling --write-readme   # and write the report into README.md

Runs itself in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=8.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

from bench.common import ROOT, Report, add_readme_flag, advancing, median_time, table, train_steps, write_readme_block

CASES = {
    "mlp": ["model.name=mlp", "model.width=256", "data.name=mnist1d", "train.batch_size=800"],
    "cnn": ["model.name=cnn", "data.name=mnist1d", "train.batch_size=800"],
    "gpt": ["model.name=gpt", "model.size=nano", "data.name=text", "data.seq_len=64", "train.batch_size=32"],
}


def measure(overrides: list[str], number: int) -> float:
    """Median seconds of the trainer's jitted step under `overrides`."""
    _, state, step, batch_at = train_steps(None, overrides)
    return median_time(advancing(step, state, batch_at(0)), warmup=5, repeats=5, number=number)


def row(name: str, number: int) -> dict:
    overrides = CASES[name]
    one = measure([*overrides, "mesh.data=1"], number)
    eight = measure([*overrides, "mesh.data=8"], number)
    bf16 = measure([*overrides, "mesh.data=1", "train.precision=bfloat16"], number)
    return {"model": name, "1 device ms/step": 1e3 * one, "8 devices ms/step": 1e3 * eight,
            "efficiency": one / eight, "bf16 ms/step (1 device)": 1e3 * bf16, "bf16/f32 speed": one / bf16}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--number", type=int, default=20, help="steps per timing sample")
    add_readme_flag(parser, "scaling")
    args = parser.parse_args(argv)
    if not os.environ.get("ZOO_BENCH_CHILD"):
        env = {**os.environ, "ZOO_BENCH_CHILD": "1", "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
        command = [sys.executable, "-m", "bench.bench_scaling", *(sys.argv[1:] if argv is None else argv)]
        raise SystemExit(subprocess.call(command, env=env, cwd=ROOT))
    say = Report()
    say(table([row(name, args.number) for name in args.rows]))
    if args.write_readme:
        write_readme_block("scaling", str(say))


if __name__ == "__main__":
    main()

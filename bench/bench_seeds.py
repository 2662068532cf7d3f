"""Many seeds as one program: the wall time and peak memory of N replicas (train.seeds=N, one
vmapped program) against one seed, per shipped config, each `zoo train` in a fresh process.

    python -m bench.bench_seeds                                   # cora_gcn x10, mnist1d_mlp x8
    python -m bench.bench_seeds --configs cora_gcn --seeds 10 --set train.steps=100
    python -m bench.bench_seeds --spread 2      # the N seeds over 2 host devices (mesh.seeds=2)

Each run is `zoo train NAME [train.seeds=N]` as a user types it, from a folder outside the
checkout, with an empty compilation cache (as on a fresh machine). "process" is its whole wall
time from start to exit (imports, data, compile, training, evaluation, checkpoints, figures):
the figure the targets are set on. "fit" is the trainer's own wall_time_s (summary.json), the
same run without imports and figures. Peak RSS is the child's (wait4's ru_maxrss). steps/s is
the training loop's rate (with its evaluations), and the replica-steps gain N x rate(N) /
rate(1) says how much more training per second one program does than one seed: where it is
near N the device idled between a single run's kernels; where it is near 1 the step was
already compute-bound and only the fixed costs (start-up, data, compile) are shared. The
figures to reach: 10 cora_gcn seeds within 2x one seed's whole process (10 separate runs take
10x), 8 mnist1d_mlp seeds within 3x. The machine may be shared: each row alternates one seed
and N (--repeats times, medians), one seed first. --spread K runs the N seeds on K simulated
host devices (XLA_FLAGS=--xla_force_host_platform_device_count=K, mesh.seeds=K): on a CPU with
several cores the replicas then run on several threads, while one seed has nothing to split.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT = {"cora_gcn": 10, "mnist1d_mlp": 8}


def measure(name: str, seeds: int, overrides: list[str], spread: int = 1) -> dict:
    """`zoo train name` with `seeds` replicas (1: the plain single run; over `spread` host
    devices) in a fresh process and an empty compilation cache: its whole-process seconds,
    fit's seconds, loop rate, metric and peak RSS (MiB)."""
    env = dict(os.environ)
    if spread > 1:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={spread}".strip()
        overrides = [*overrides, f"mesh.seeds={spread}"]
    stacked = [f"train.seeds={seeds}"] if seeds > 1 else []
    with tempfile.TemporaryDirectory() as folder:
        runs, log = Path(folder) / "runs", Path(folder) / "log"
        env["ZOO_COMPILATION_CACHE"] = str(Path(folder) / "cache")
        cmd = [sys.executable, "-m", "zoo", "train", name, *stacked, *overrides, f"run.dir={runs}"]
        start = time.perf_counter()
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, env=env, cwd=folder, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT)
            # wait4, not RUSAGE_CHILDREN: this child's own peak RSS, not the largest of all so far
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{log.read_text()[-3000:]}")
        summary = json.loads(next(runs.glob("*/summary.json")).read_text())
    metric = "eval_accuracy" if "eval_accuracy" in summary else "eval_loss"
    return {"process_s": seconds, "fit_s": summary["wall_time_s"], "metric": metric,
            "steps_per_s": summary.get("steps_per_s", float("nan")), "mean": summary[metric],
            "std": summary.get(f"{metric}_std", 0.0), "peak_rss_mib": usage.ru_maxrss / 1024}


def medians(runs: list[dict]) -> dict:
    """The median of each timed quantity over runs of the same command."""
    return {k: statistics.median(r[k] for r in runs) for k in ("process_s", "fit_s", "steps_per_s", "peak_rss_mib")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="*", default=list(DEFAULT), help="shipped config names")
    p.add_argument("--seeds", nargs="*", type=int, default=None, help="replicas per config (default: 10, 8)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every run")
    p.add_argument("--repeats", type=int, default=1, help="alternations of one seed and N per row (medians)")
    p.add_argument("--spread", type=int, default=1, metavar="K",
                   help="run the N seeds over K simulated host devices (mesh.seeds=K); one seed stays on one")
    args = p.parse_args(argv)
    counts = args.seeds or [DEFAULT.get(n, 8) for n in args.configs]
    print(f"N seeds on {args.spread} host device(s)" if args.spread > 1 else "N seeds on one device")
    print("config        replicas  process one (s)  process N (s)  ratio  fit one (s)  fit N (s)  fit ratio  "
          "steps/s one  steps/s N  replica-steps gain  RSS one (MiB)  RSS N (MiB)  metric mean +- std")
    for name, n in zip(args.configs, counts):
        ones, manys = [], []
        for _ in range(args.repeats):
            ones.append(measure(name, 1, args.set))
            manys.append(measure(name, n, args.set, args.spread))
        one, many = medians(ones), medians(manys)
        last = manys[-1]
        print(f"{name:<13} {n:>8}  {one['process_s']:>15.2f}  {many['process_s']:>13.2f}  "
              f"{many['process_s'] / one['process_s']:>5.2f}  {one['fit_s']:>11.2f}  {many['fit_s']:>9.2f}  "
              f"{many['fit_s'] / one['fit_s']:>9.2f}  {one['steps_per_s']:>11.1f}  {many['steps_per_s']:>9.1f}  "
              f"{n * many['steps_per_s'] / one['steps_per_s']:>18.2f}  "
              f"{one['peak_rss_mib']:>13.0f}  {many['peak_rss_mib']:>11.0f}  "
              f"{last['metric']} {last['mean']:.4f} +- {last['std']:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Many seeds as one program: the wall time and peak memory of N replicas (train.seeds=N, one
vmapped program) against one seed, per shipped config, each in a fresh child process.

    python -m bench.bench_seeds                                   # cora_gcn x10, mnist1d_mlp x8
    python -m bench.bench_seeds --configs cora_gcn --seeds 10 --set train.steps=100
    python -m bench.bench_seeds --spread 2      # the N seeds over 2 host devices (mesh.seeds=2)

Wall time is fit()'s (data, compile, training, evaluation, checkpoints); peak RSS is the child's
(ru_maxrss). steps/s is the training loop's rate (with its evaluations), and the replica-steps
gain N x rate(N) / rate(1) says how much more training per second one program does than one
seed: where it is near N the device idled between a single run's kernels; where it is near 1
the step was already compute-bound and only the fixed costs (start-up, data, compile) are
shared. The figures to reach: 10 cora_gcn seeds within 2x one seed's time (10 separate runs take
10x), 8 mnist1d_mlp seeds within 3x. The machine may be shared: the ratios come from
runs made back to back, one seed first. --spread K runs the N seeds on K simulated host devices
(XLA_FLAGS=--xla_force_host_platform_device_count=K, mesh.seeds=K): on a CPU with several cores
the replicas then run on several threads, while one seed has nothing to split.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = {"cora_gcn": 10, "mnist1d_mlp": 8}


def child(name: str, seeds: int, overrides: list[str], run_dir: str) -> None:
    """Train `name` with `seeds` replicas (1: the plain single run) and print its timing."""
    from zoo import config
    from zoo.commands import host
    from zoo.train import fit

    host.keep_freed_memory()  # as zoo train does
    stacked = [f"train.seeds={seeds}"] if seeds > 1 else []
    cfg = config.load(ROOT / "configs" / f"{name}.yaml", [*stacked, f"run.dir={run_dir}", "run.plots=false",
                                                          "train.log_every=1000000", *overrides])
    summary = fit(cfg)
    metric = "eval_accuracy" if "eval_accuracy" in summary else "eval_loss"
    print("RESULT " + json.dumps({"wall_time_s": summary["wall_time_s"], "metric": metric,
                                  "steps_per_s": summary.get("steps_per_s", float("nan")),
                                  "mean": summary[metric], "std": summary.get(f"{metric}_std", 0.0),
                                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(name: str, seeds: int, overrides: list[str], spread: int = 1) -> dict:
    """Run one child in a fresh process (its replicas over `spread` host devices); its timing,
    metric and peak RSS (MiB)."""
    env = dict(os.environ)
    if spread > 1:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={spread}".strip()
        overrides = [*overrides, f"mesh.seeds={spread}"]
    with tempfile.TemporaryDirectory() as run_dir:
        cmd = [sys.executable, "-m", "bench.bench_seeds", "--child", name, str(seeds), run_dir, *overrides]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{name} x{seeds} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.split("RESULT ", 1)[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="*", default=list(DEFAULT), help="shipped config names")
    p.add_argument("--seeds", nargs="*", type=int, default=None, help="replicas per config (default: 10, 8)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every run")
    p.add_argument("--spread", type=int, default=1, metavar="K",
                   help="run the N seeds over K simulated host devices (mesh.seeds=K); one seed stays on one")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args, rest = p.parse_known_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]), [*args.child[3:], *rest], args.child[2])
        return 0
    counts = args.seeds or [DEFAULT.get(n, 8) for n in args.configs]
    print(f"N seeds on {args.spread} host device(s)" if args.spread > 1 else "N seeds on one device")
    print("config        replicas  one seed (s)  N seeds (s)  ratio  N separate (s)  steps/s one  steps/s N  "
          "replica-steps gain  RSS one (MiB)  RSS N (MiB)  metric mean +- std")
    for name, n in zip(args.configs, counts):
        one, many = measure(name, 1, args.set), measure(name, n, args.set, args.spread)
        print(f"{name:<13} {n:>8}  {one['wall_time_s']:>12.2f}  {many['wall_time_s']:>11.2f}  "
              f"{many['wall_time_s'] / one['wall_time_s']:>5.2f}  {n * one['wall_time_s']:>14.1f}  "
              f"{one['steps_per_s']:>11.1f}  {many['steps_per_s']:>9.1f}  "
              f"{n * many['steps_per_s'] / one['steps_per_s']:>18.2f}  "
              f"{one['peak_rss_mib']:>13.0f}  {many['peak_rss_mib']:>11.0f}  "
              f"{many['metric']} {many['mean']:.4f} +- {many['std']:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Many seeds as one program: the wall time and peak memory of N replicas (train.seeds=N, one
vmapped program) against one seed, per shipped config, each in a fresh child process.

    python -m bench.bench_seeds                                   # cora_gcn x10, mnist1d_mlp x8
    python -m bench.bench_seeds --configs cora_gcn --seeds 10 --set train.steps=100

Wall time is fit()'s (data, compile, training, evaluation, checkpoints); peak RSS is the child's
(ru_maxrss). The figures to reach: 10 cora_gcn seeds within 2x one seed's time (10 separate
runs take 10x), 8 mnist1d_mlp seeds within 3x. The machine may be shared: the ratios come from
runs made back to back, one seed first.
"""
from __future__ import annotations

import argparse
import json
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
                                  "mean": summary[metric], "std": summary.get(f"{metric}_std", 0.0),
                                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(name: str, seeds: int, overrides: list[str]) -> dict:
    """Run one child in a fresh process; its timing, metric and peak RSS (MiB)."""
    with tempfile.TemporaryDirectory() as run_dir:
        cmd = [sys.executable, "-m", "bench.bench_seeds", "--child", name, str(seeds), run_dir, *overrides]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{name} x{seeds} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.split("RESULT ", 1)[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="*", default=list(DEFAULT), help="shipped config names")
    p.add_argument("--seeds", nargs="*", type=int, default=None, help="replicas per config (default: 10, 8)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every run")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args, rest = p.parse_known_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]), [*args.child[3:], *rest], args.child[2])
        return 0
    counts = args.seeds or [DEFAULT.get(n, 8) for n in args.configs]
    print("config        replicas  one seed (s)  N seeds (s)  ratio  N separate (s)  RSS one (MiB)  RSS N (MiB)  "
          "metric mean +- std")
    for name, n in zip(args.configs, counts):
        one, many = measure(name, 1, args.set), measure(name, n, args.set)
        print(f"{name:<13} {n:>8}  {one['wall_time_s']:>12.2f}  {many['wall_time_s']:>11.2f}  "
              f"{many['wall_time_s'] / one['wall_time_s']:>5.2f}  {n * one['wall_time_s']:>14.1f}  "
              f"{one['peak_rss_mib']:>13.0f}  {many['peak_rss_mib']:>11.0f}  "
              f"{many['metric']} {many['mean']:.4f} +- {many['std']:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

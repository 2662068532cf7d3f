"""Logging overhead: training steps/s of mnist1d_cnn with TensorBoard events on against off.

    python -m bench.bench_logging                     # 3 rounds of 2000 steps each way
    python -m bench.bench_logging --steps 6000 --rounds 5 --log-every 50

Each round trains the shipped config twice (run.tensorboard=false, then true) in this process;
steps/s is the run's own (summary.json: steps over the logged windows, compile and evaluation
excluded). Reported: the median of each, and on/off - 1 (goal: within 3%). On a shared machine
the runs' spread hides 3%, so it also times what TensorBoard adds where it acts: the seconds one
MetricsLog.log call takes with events on and off, as a share of a log window's training time.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from zoo import config, rundir
from zoo.commands import host
from zoo.config import config_path
from zoo.train import fit


def steps_per_s(tensorboard: bool, steps: int, log_every: int, run_dir: str) -> float:
    cfg = config.load(config_path("mnist1d_cnn"), [f"train.steps={steps}", f"train.log_every={log_every}",
                      "train.eval_every=0", "train.eval_batches=1", "run.plots=false", f"run.dir={run_dir}",
                      f"run.tensorboard={str(tensorboard).lower()}"])
    return fit(cfg)["steps_per_s"]


def seconds_per_record(tensorboard: bool, run_dir: str, records: int = 2000) -> float:
    """Mean seconds of MetricsLog.log on a record like the trainer's (step, 4 metrics, 6 rates)."""
    path = Path(run_dir) / f"log-{tensorboard}"
    path.mkdir()
    log = rundir.MetricsLog(path, records, 0, tensorboard=tensorboard)
    keys = ("loss", "accuracy", "grad_norm", "learning_rate", "steps_per_s", "examples_per_s", "flops_per_s",
            "mfu", "elapsed_s", "eval_loss")
    start = time.perf_counter()
    for step in range(records):
        log.log({"step": step, **{k: 1.0 / (step + 1) for k in keys}})
    log.close()  # the final flush counts too
    return (time.perf_counter() - start) / records


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--log-every", type=int, default=100)
    args = p.parse_args(argv)
    host.keep_freed_memory()
    rates = {False: [], True: []}
    with tempfile.TemporaryDirectory() as run_dir:
        for _ in range(args.rounds):
            for tensorboard in (False, True):
                rates[tensorboard].append(steps_per_s(tensorboard, args.steps, args.log_every, run_dir))
                print(f"tensorboard={tensorboard}: {rates[tensorboard][-1]:.1f} steps/s", file=sys.stderr)
        per_record = {tb: seconds_per_record(tb, run_dir) for tb in (False, True)}
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    share = (per_record[True] - per_record[False]) * off / args.log_every
    print(f"mnist1d_cnn, {args.steps} steps, log_every={args.log_every}, {args.rounds} rounds (median steps/s)")
    print(f"tensorboard off: {off:.1f}   on: {on:.1f}   on/off - 1: {100 * (on / off - 1):+.1f}% (goal: within 3%)")
    print(f"one log record: {per_record[False] * 1e6:.0f} us off, {per_record[True] * 1e6:.0f} us on; the events "
          f"add {100 * share:.3f}% to a {args.log_every}-step window at {off:.0f} steps/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

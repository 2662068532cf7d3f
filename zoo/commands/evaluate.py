"""`zoo evaluate RUN [--split test|val] [--step N] [--params last|best]`: the metrics of a
trained run, printed and written to RUN/evaluation/<split>-step<N>.json.

On a finished run the test metrics equal those in its summary.json: a run that selected its
parameters (train.select) is evaluated with the selected ones by default, as its summary was.
"""
from __future__ import annotations

import argparse
import json


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("evaluate", help="evaluate a trained run on its test or validation split",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="a run directory, e.g. runs/mnist1d_cnn")
    p.add_argument("--split", choices=["test", "val"], default="test")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    p.add_argument("--params", choices=["last", "best"], default=None,
                   help="the checkpoint's last params or the selected ones (default: what the summary used)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from zoo import config, inference
    from zoo.experiment import load_run
    from zoo.rundir import atomic_write, is_writer

    cfg = config.load_run_config(args.run_dir)
    params = args.params or ("last" if cfg.train.select == "last" else "best")
    trained = load_run(args.run_dir, args.step, params)
    metrics = {**inference.evaluate(trained, args.split), "step": trained.step, "params": params}
    if is_writer():
        out = trained.run_dir / "evaluation" / f"{args.split}-step{trained.step}.json"
        out.parent.mkdir(exist_ok=True)
        atomic_write(out, json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    return 0

"""`zoo evaluate RUN [--split test|val|train] [--step N] [--params last|best] [--replica I]`: the
metrics of a trained run, printed and written to RUN/evaluation/<split>-step<N>.json.

On a finished run the test metrics equal those in its summary.json: a run that selected its
parameters (train.select) is evaluated with the selected ones by default, as its summary was.
A run of many replicas (train.seeds, train.sweep) reports each replica ("replicas"), their
mean and standard deviation (KEY_std) and their deep ensemble's metrics ("ensemble": the mean
of their probabilities, or outputs, scored; zoo.ensemble), or the one replica --replica names.
A translation run also reports exact match, BLEU and chrF of greedy and beam-search translations
(KEY_greedy_*, KEY_beam_*; zoo.translating) and each decoder's tokens/s.
"""
from __future__ import annotations

import argparse
import json


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("evaluate", help="evaluate a trained run on its test or validation split",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="a run directory, e.g. runs/mnist1d_cnn")
    p.add_argument("--split", choices=["test", "val", "train"], default="test",
                   help="train: every training example, in eval mode (in-memory datasets)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    p.add_argument("--params", choices=["last", "best"], default=None,
                   help="the checkpoint's last params or the selected ones (default: what the summary used)")
    p.add_argument("--replica", type=int, default=None,
                   help="of a run of many replicas (train.seeds/sweep), this one only (default: all)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from zoo import config, ensemble, inference, schema
    from zoo.experiment import load_run, load_runs, reported_params
    from zoo.rundir import atomic_write, is_writer

    cfg = config.load_run_config(args.run_dir)
    params = args.params or reported_params(cfg)
    if args.replica is not None or not schema.is_stacked(cfg):
        trained = load_run(args.run_dir, args.step, params, replica=args.replica)
        metrics = measure(trained, args.split)
    else:
        runs = load_runs(args.run_dir, args.step, params)
        each = [measure(r, args.split) for r in runs]
        trained, metrics = runs[0], {**ensemble.mean_and_std(each), "replicas": each}
        if runs[0].exp.dataset.task in ensemble.COMBINED:
            metrics["ensemble"] = inference.evaluate(ensemble.of_runs(runs), args.split)
    metrics = {**metrics, "step": trained.step, "params": params}
    if args.replica is not None:
        metrics["replica"] = args.replica
    if is_writer():
        name = f"{args.split}-step{trained.step}" + (f"-replica{args.replica}" if args.replica is not None else "")
        out = trained.run_dir / "evaluation" / f"{name}.json"
        out.parent.mkdir(exist_ok=True)
        atomic_write(out, json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    return 0


def measure(trained, split: str) -> dict:
    """The run's metrics on `split`, and for a translation run its decoders' scores."""
    from zoo import inference, translating
    metrics = inference.evaluate(trained, split)
    if trained.exp.dataset.task != "translation":
        return metrics
    prefix = inference.SPLITS[split]
    return {**metrics, **{f"{prefix}_{k}": v for k, v in translating.evaluate(trained, split).items()}}

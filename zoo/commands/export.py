"""`zoo export RUN [--output FILE] [--params-as-inputs] [--fixed-batch]`: the trained model as a
serialized jax.export artifact (StableHLO) with a JSON manifest beside it (FILE.json), loadable
with jax alone: `jax.export.deserialize(open(FILE, "rb").read()).call(x)`.

Default output: RUN/export/model.jaxexport. What is exported for each family: zoo.export.
"""
from __future__ import annotations

import argparse
import json

from zoo.errors import ConfigError


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="export a trained run as a jax.export artifact (StableHLO)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="a run directory, e.g. runs/mnist1d_cnn")
    p.add_argument("--output", default=None, help="artifact file (default: RUN/export/model.jaxexport)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    p.add_argument("--params", choices=["last", "best"], default=None,
                   help="the checkpoint's last params or the selected ones (default: what the summary used)")
    p.add_argument("--params-as-inputs", action="store_true",
                   help="take params as an input (saved beside as FILE.npz, keys by path) instead of embedding them")
    p.add_argument("--fixed-batch", action="store_true",
                   help="export at the evaluation batch's fixed shape instead of a symbolic batch size")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--replica", type=int, default=None,
                       help="of a run of many replicas (train.seeds/sweep), this one (default: the first)")
    which.add_argument("--ensemble", action="store_true",
                       help="of a run of many replicas, their deep ensemble: the mean of their probabilities "
                            "(the artifact outputs its log) or of their outputs")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from zoo import config, ensemble, export, schema
    from zoo.experiment import load_one, reported_params
    from zoo.rundir import is_writer

    cfg = config.load_run_config(args.run_dir)
    params = args.params or reported_params(cfg)
    if args.ensemble and not schema.is_stacked(cfg):
        raise ConfigError(f"--ensemble: {args.run_dir} is a single run; train it with train.seeds=N for an ensemble")
    trained = (ensemble.load(args.run_dir, args.step, params) if args.ensemble
               else load_one(args.run_dir, args.step, params, args.replica))
    if not is_writer():
        return 0
    paths = export.write(trained, args.output, params_as_inputs=args.params_as_inputs,
                         symbolic_batch=not args.fixed_batch)
    info = json.loads(paths["manifest"].read_text())
    inputs = ", ".join(f"{i['name']} {i['dtype']}{i['shape']}" for i in info["inputs"])
    print(f"step {info['step']}: {inputs} -> {info['output']['dtype']}{info['output']['shape']} "
          f"(symbolic dims: {info['symbolic_dims']})")
    for role, path in paths.items():
        print(f"{role}: {path} ({path.stat().st_size} bytes)")
    return 0

"""`zoo probe RUN [RUN ...] PROBE [key=value ...]`: measure the mathematics of trained runs.

    zoo probe runs/mnist1d_cnn curvature                  # top Hessian eigenvalues, trace, 2/lr
    zoo probe runs/mnist1d_mlp landscape resolution=21    # init -> trained line, loss plane
    zoo probe runs/mnist1d_cnn runs/mnist1d_mlp symmetry  # one row per run
    zoo probe runs/mnist1d_plain8-seeds0-2 gradflow --replica 0   # one seed of a stacked run

Probes: landscape, curvature, symmetry, calibration, gradflow, conservation (zoo.probes). Each writes
RUN/probes/<probe>.png and <probe>.json and prints its numbers' summary; options are the
keyword arguments of zoo.probes.<probe>.run, values read as YAML (`examples=1000`).
"""
from __future__ import annotations

import argparse
import json

import yaml

from zoo.errors import ConfigError


def add_parser(sub) -> argparse.ArgumentParser:
    from zoo.probes import PROBES

    p = sub.add_parser("probe", help="measure a trained run: landscape, curvature, symmetry, calibration, gradflow, conservation",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("words", nargs="+", metavar="RUN [RUN ...] PROBE [key=value ...]",
                   help=f"run directories, a probe ({', '.join(PROBES)}) and its options")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    p.add_argument("--params", choices=("last", "best"), default="last",
                   help="the checkpoint's last parameters, or those train.select kept")
    p.add_argument("--replica", type=int, default=None,
                   help="of a run of many replicas (train.seeds/sweep), this one (default: the first)")
    p.set_defaults(run=run)
    return p


def split_words(words: list[str]) -> tuple[list[str], str, list[str]]:
    """(runs, probe, options) from RUN [RUN ...] PROBE [key=value ...]: the last word that
    names a probe ends the runs (a run directory may be called like a probe)."""
    from zoo.probes import PROBES

    at = [i for i, w in enumerate(words) if w in PROBES and "=" not in w]
    if not at or at[-1] == 0:
        raise ConfigError(f"give run directories then a probe ({', '.join(PROBES)}), "
                          f"e.g. zoo probe runs/mnist1d_cnn curvature")
    return words[:at[-1]], words[at[-1]], words[at[-1] + 1:]


def parse_options(items: list[str]) -> dict:
    """key=value strings -> {key: YAML value}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"probe option {item!r} is not key=value (e.g. examples=1000)")
        out[key] = yaml.safe_load(value)
    return out


def summary(numbers: dict, prefix: str = "") -> dict:
    """The scalars and short lists of a probe's numbers, nested keys dotted, for the terminal."""
    out = {}
    for k, v in numbers.items():
        if isinstance(v, dict) and k != "files":
            out.update(summary(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float, str)) or (isinstance(v, list) and len(v) <= 5):
            out[prefix + k] = v
    return out


def run(args: argparse.Namespace) -> int:
    from zoo import probes
    from zoo.experiment import load_one

    runs, probe, options = split_words(args.words)
    kwargs = parse_options(options)
    probes.check_options(probe, kwargs)   # before any run is loaded
    rows = {}
    for run_dir in runs:
        numbers = probes.run(probe, load_one(run_dir, args.step, args.params, args.replica), **kwargs)
        rows[run_dir] = numbers
        print(json.dumps({"run": run_dir, **summary(numbers), "files": numbers["files"]}, indent=1))
    if probe == "symmetry" and len(rows) > 1:
        print(probes.module("symmetry").table(rows), end="")
    return 0

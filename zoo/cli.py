"""Command line of train.py. User mistakes print one line and exit 2, before anything compiles;
SIGINT/SIGTERM checkpoint at the next step boundary and exit 130/143."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "mnist1d_cnn.yaml"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise SystemExit(_fail(message))


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def parse(argv: list[str]) -> argparse.Namespace:
    p = _Parser(prog="train.py", description="Train a zoo model from a YAML config.")
    p.add_argument("config", nargs="?", help="YAML config (default: configs/mnist1d_cnn.yaml)")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.steps=2000")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    args = p.parse_args(argv)
    if args.config and "=" in args.config:  # `train.py key=value` with the default config
        args.overrides.insert(0, args.config)
        args.config = None
    return args


def resolve(args: argparse.Namespace):
    from zoo import config

    if args.resume:
        run = Path(args.resume)
        if args.config:
            raise config.ConfigError("give either a config file or --resume RUN_DIR, not both")
        overrides = [f"run.dir={run.parent}", f"run.name={run.name}", "run.resume=true", *args.overrides]
        return config.load(run / "config.yaml", overrides)
    return config.load(args.config or DEFAULT_CONFIG, args.overrides)


def main(argv: list[str] | None = None) -> int:
    from zoo.config import ConfigError, dump

    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        cfg = resolve(args)
        if args.print_config:
            print(dump(cfg), end="")
            return 0
        from zoo import cpu
        from zoo.train import Interrupted, fit
        cpu.keep_freed_memory()  # page-fault-free steps on CPU (zoo.cpu)
        summary = fit(cfg)
    except ConfigError as e:
        return _fail(str(e))
    except Interrupted as e:
        print(f"interrupted: {e}; resume with: python train.py --resume {e.run_dir}", file=sys.stderr)
        return 128 + e.signum
    print(json.dumps(summary, indent=2))
    return 0

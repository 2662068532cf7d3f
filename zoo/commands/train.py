"""`zoo train CONFIG|NAME [key=value ...]` (and `python train.py`): train from a YAML config.

CONFIG is a YAML file, or NAME a shipped config (`zoo list configs`), found inside the installed
package from any folder. User mistakes print one line and exit 2, before anything compiles;
SIGINT/SIGTERM checkpoint at the next step boundary and exit 130/143.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from zoo import config
from zoo.errors import ConfigError

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_CONFIG = "mnist1d_cnn"


def shipped_configs() -> dict[str, Path]:
    """Every config shipped with the package, by name."""
    return {p.stem: p for p in sorted(CONFIGS.glob("*.yaml"))}


def config_path(name_or_path: str) -> Path:
    """A config file by path, or a shipped config by name; ConfigError listing the names."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_configs()
    if name_or_path.removesuffix(".yaml") in shipped:
        return shipped[name_or_path.removesuffix(".yaml")]
    raise ConfigError(f"config file {name_or_path!r} not found, and no shipped config has that name; "
                      f"shipped: {', '.join(shipped)}")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train a model from a YAML config", description=__doc__.split("\n")[0])
    p.add_argument("config", nargs="?", help=f"YAML file or shipped config name (default: {DEFAULT_CONFIG})")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.steps=2000")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--help-config", metavar="WHAT", help="list the config fields of model=NAME, data=NAME "
                   "or a section (optimizer, train, run, mesh): types, defaults, comments")
    p.set_defaults(run=run)
    return p


def resolve(args: argparse.Namespace) -> config.Config:
    """The config a `train` invocation asks for: a file, a shipped name, or a run to resume."""
    if args.config and "=" in args.config:  # `zoo train key=value` with the default config
        args.overrides.insert(0, args.config)
        args.config = None
    if args.resume:
        if args.config:
            raise ConfigError("give either a config file or --resume RUN_DIR, not both")
        return config.load_run_config(args.resume, ["run.resume=true", *args.overrides])
    return config.load(config_path(args.config or DEFAULT_CONFIG), args.overrides)


def help_config(what: str) -> list[str]:
    """`--help-config model=gpt` / `data=text` / `train`: the fields of that config section."""
    from zoo.commands.listing import fields
    section, _, name = what.partition("=")
    if section in ("model", "data"):
        return fields("dataset" if section == "data" else "model", name)
    return fields("section", section)


def run(args: argparse.Namespace) -> int:
    if args.help_config:
        print("\n".join(help_config(args.help_config)))
        return 0
    cfg = resolve(args)
    if args.print_config:
        print(config.dump(cfg), end="")
        return 0
    from zoo import figures
    from zoo.commands import host
    from zoo.train import Interrupted, fit

    host.keep_freed_memory()  # page-fault-free steps on CPU (zoo.commands.host)
    try:
        summary = fit(cfg, hooks=figures.after_training(cfg))
    except Interrupted as e:
        print(f"interrupted: {e}; resume with: zoo train --resume {e.run_dir}", file=sys.stderr)
        return 128 + e.signum
    print(json.dumps(summary, indent=2))
    return 0

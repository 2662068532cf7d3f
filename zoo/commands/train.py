"""`zoo train CONFIG|NAME [key=value ...]` (and `python train.py`): train from a YAML config.

CONFIG is a YAML file, or NAME a shipped config (`zoo list configs`), found inside the installed
package from any folder. User mistakes print one line and exit 2, before anything compiles, as
do a run directory that cannot be written (read-only, full, a file in the way); SIGINT/SIGTERM
checkpoint at the next step boundary and exit 130/143 (before training starts they exit at once,
leaving no run directory); a run that diverges (train.max_bad_steps non-finite steps in a row)
stops in one line with exit 3.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import signal
import sys

from zoo import config, schema
from zoo.errors import ConfigError

DEFAULT_CONFIG = "mnist1d_cnn"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train a model from a YAML config", description=__doc__.split("\n")[0])
    p.add_argument("config", nargs="?", help=f"YAML file or shipped config name (default: {DEFAULT_CONFIG})")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.steps=2000")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest intact checkpoint")
    p.add_argument("--force-resume", action="store_true", help="with --resume: accept overrides that change the "
                   "model, data, data order or optimizer (run.allow_changes=true); the run is no longer exact")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--json", action="store_true", help="end with the run's summary as JSON (summary.json) "
                   "instead of one sentence")
    p.add_argument("--help-config", metavar="WHAT", help="list the config fields of model=NAME, data=NAME "
                   "or a section (optimizer, train, run, mesh): types, defaults, comments")
    p.set_defaults(run=run)
    return p


def resolve(args: argparse.Namespace) -> schema.Config:
    """The config a `train` invocation asks for: a file, a shipped name, or a run to resume."""
    if args.config and "=" in args.config:  # `zoo train key=value` with the default config
        args.overrides.insert(0, args.config)
        args.config = None
    if args.resume:
        if args.config:
            raise ConfigError("give either a config file or --resume RUN_DIR, not both")
        forced = ["run.allow_changes=true"] if args.force_resume else []
        return config.load_run_config(args.resume, ["run.resume=true", *args.overrides, *forced])
    return config.load(config.config_path(args.config or DEFAULT_CONFIG), args.overrides)


def help_config(what: str) -> list[str]:
    """`--help-config model=gpt` / `data=text` / `train`: the fields of that config section."""
    from zoo.commands.listing import fields
    section, _, name = what.partition("=")
    if section in ("model", "data"):
        return fields("dataset" if section == "data" else "model", name)
    return fields("section", section)


class Stopped(BaseException):
    """SIGINT/SIGTERM before the training loop took the signals over."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _stop_on_signals():
    """Turn SIGINT/SIGTERM into Stopped until the loop installs its own handlers (zoo.train)."""
    def stop(signum, frame):
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# A run directory the system will not let zoo write: the user's to fix, not a zoo bug.
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR}


def run(args: argparse.Namespace) -> int:
    if args.help_config:
        print("\n".join(help_config(args.help_config)))
        return 0
    try:
        with _stop_on_signals():
            return _train(args)
    except Stopped as e:
        print(f"interrupted by signal {e.signum} outside the training loop; a run that had not started "
              f"training leaves no directory",
              file=sys.stderr)
        return 128 + e.signum
    except OSError as e:
        if e.errno not in DISK_ERRORS:
            raise
        fix = "free space there" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "make it writable"
        raise ConfigError(f"cannot write {e.filename or 'the run directory'}: {e.strerror}; {fix} or "
                          f"choose another run.dir (earlier checkpoints are intact)") from None


def _fit_or_remove(fit, cfg: schema.Config, **kwargs) -> dict:
    """fit(), where a failure or a signal before the first step removes the fresh run
    directory it made (killed leftovers are taken again by the next start: zoo.rundir)."""
    from zoo import rundir
    try:
        return fit(cfg, **kwargs)
    except BaseException:
        rundir.remove_untrained()
        raise


def _train(args: argparse.Namespace) -> int:
    cfg = resolve(args)
    if args.print_config:
        print(schema.dump(cfg), end="")
        return 0
    config.check_init_from(cfg)
    config.check_example_file(cfg)
    from zoo import figures
    from zoo.commands import host
    from zoo.loop import Diverged, Interrupted
    from zoo.train import fit

    host.keep_freed_memory()  # page-fault-free steps on CPU (zoo.commands.host)
    host.use_compilation_cache(cfg.run.compilation_cache)
    try:
        summary = _fit_or_remove(fit, cfg, hooks=figures.after_training(cfg))
    except Interrupted as e:
        print(f"interrupted: {e}; resume with: zoo train --resume {e.run_dir}", file=sys.stderr)
        return 128 + e.signum
    except Diverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    if args.json:
        print(json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in summary.items()},
                         indent=2))
    else:
        print(ending(summary, cfg))
    return 0


def _measure(summary: dict, key: str, percent: bool) -> str:
    """A summary value as text; with several replicas, their mean ± std."""
    value = summary[key]
    text = f"{100 * value:.1f}%" if percent else f"{value:.4g}"
    std = summary.get(f"{key}_std")
    if "replicas" in summary and std is not None:
        text += f" ± {100 * std:.1f}%" if percent else f" ± {std:.2g}"
    return text


def ending(summary: dict, cfg: schema.Config) -> str:
    """The one sentence a finished run ends with: its test metrics, where it is, how long it took
    (the whole summary is in RUN/summary.json, and printed by --json)."""
    where = f"run directory {summary['run_dir']}"
    if "programs" in summary:  # a sweep over programs: one stacked run each, tabulated
        return f"trained {len(summary['programs'])} sweep programs; results in {summary['run_dir']}/sweep.md"
    split = "validation" if getattr(cfg.data, "eval_split", "test") == "val" else "test"
    if "eval_accuracy" in summary:
        metrics = f"{split} accuracy {_measure(summary, 'eval_accuracy', True)} (loss {_measure(summary, 'eval_loss', False)})"
    else:
        key = next((k for k in ("eval_mse", "eval_loss") if summary.get(k) is not None), None)
        metrics = f"{split} {key.removeprefix('eval_')} {_measure(summary, key, False)}" if key else "no evaluation"
    seeds = f" over {len(summary['replicas'])} replicas" if "replicas" in summary else ""
    selected = f", parameters of step {summary['selected_step']}" if "selected_step" in summary and not seeds else ""
    return f"{metrics}{seeds}{selected} after {summary['steps']} steps in {summary['wall_time_s']:.1f} s; {where}"

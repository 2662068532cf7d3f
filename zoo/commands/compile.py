"""`zoo compile CONFIG [key=value ...] --target NAME`: the real train and eval steps of a config,
lowered and compiled ahead of time for an accelerator this host does not have (a TPU slice
through libtpu, GPUs through a target-config spec; zoo.targets), as MaxText's train_compile.py
does. Nothing trains and no data reaches any device: the state is abstract (shapes and
shardings from jax.eval_shape) and so is the batch.

It prints, per device: the memory of the arguments (state and batch), the temporaries and the
peak against the device's memory; FLOPs and bytes moved per step (XLA's cost analysis, where
the compiler gives one: TPU; it counts a loop body once, so model.scan_layers shows one block's);
the collectives in the compiled program; the compile time. A step
that does not fit exits 2 with one line: TPU compiles fail with RESOURCE_EXHAUSTED; a GPU
program that does not fit still compiles, so its peak is compared with the spec's memory.

    zoo compile configs/shakespeare_char.yaml --target v5e:2x2
    zoo compile shakespeare_char model.size=medium data.seq_len=1024 --target v5e-8 \\
        --sweep train.batch_size=32,64,128          # one row per value
    python -m zoo.commands.compile --table         # README's table of every shipped config
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import sys
import time
from pathlib import Path

from zoo.errors import ConfigError

GiB, MiB = 2**30, 2**20
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
TABLE_TARGETS = ("v5e:2x2", "h100:1x1x4")   # four devices each: one mesh shape for both columns
TABLE_MARKERS = ("<!-- zoo compile --table: start -->", "<!-- zoo compile --table: end -->")


class CannotCompile(Exception):
    """A step cannot be compiled for the target, for a reason the message says in one line."""


class DoesNotFit(CannotCompile):
    """A step needs more memory per device than the target has."""


@dataclasses.dataclass(frozen=True)
class StepReport:
    """What compiling one step showed; sizes are bytes per device."""
    step: str
    seconds: float
    arguments: int
    temporaries: int
    peak: int
    flops: float | None
    bytes_moved: float | None
    collectives: dict[str, int]


# ----------------------------------------------------------------------------- the experiment
def experiment(cfg, target):
    """The experiment of `cfg` on the target's devices: its mesh over them, its model built for
    their platform (zoo.experiment.build with given devices; no process joins anything)."""
    from zoo import experiment as ex
    return ex.build(cfg, devices=target.devices)


def abstract(tree, sharding):
    """ShapeDtypeStructs of a (host numpy) pytree, each laid out by `sharding`."""
    import jax

    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, jax.dtypes.canonicalize_dtype(a.dtype),
                                                       sharding=sharding), tree)


# ----------------------------------------------------------------------------- compiling
def collectives(hlo: str) -> dict[str, int]:
    """How many of each collective the compiled HLO runs (an async pair counts once)."""
    counts = {name: len(re.findall(rf"\s{name}(?:-start)?\(", hlo)) for name in COLLECTIVES}
    return {name: n for name, n in counts.items() if n}


def _cost(compiled) -> tuple[float | None, float | None]:
    cost = compiled.cost_analysis()
    if isinstance(cost, list):   # older jax: one dict per program
        cost = cost[0] if cost else None
    if not cost:
        return None, None
    return cost.get("flops"), cost.get("bytes accessed")


@contextlib.contextmanager
def _uncached():
    """JAX's persistent compilation cache off while compiling for a target: it stores what a
    compile-only client compiles but cannot load it back ("PjRtCompiler must be constructed with a
    Client"), so the second compile of a step in a process that caches (a test run, a notebook)
    warned and compiled again. JAX decides once per process whether the cache is used; its public
    reset_cache makes it decide again, here and after."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()
    try:
        yield
    finally:
        jax.config.update("jax_enable_compilation_cache", enabled)
        compilation_cache.reset_cache()


def compile_step(name: str, jitted, args, target, hint: str) -> StepReport:
    """Lower and compile `jitted(*args)` for the target; DoesNotFit when it needs too much memory."""
    start = time.perf_counter()
    try:
        with _uncached():
            compiled = jitted.lower(*args).compile()
    except Exception as e:  # noqa: BLE001 - two known verdicts; anything else re-raises
        need = _exhausted_bytes(str(e))
        if need is not None:
            raise DoesNotFit(_verdict(name, need, target, hint)) from None
        if target.platform == "gpu" and "Unknown backend: 'gpu'" in str(e):
            raise CannotCompile(f"{name} step calls back to Python on the host (jax.pure_callback); JAX lowers "
                                f"that only with a GPU attached, so it cannot compile for {target.kind} here") from None
        if str(e).startswith("INTERNAL:"):   # XLA's own failure, not the config's: say which, in one line
            first = str(e).splitlines()[0][:160]
            raise CannotCompile(f"{name} step: XLA's compiler for {target.kind} failed: {first}") from None
        raise
    seconds = time.perf_counter() - start
    memory = compiled.memory_analysis()
    peak = memory.peak_memory_in_bytes or (memory.argument_size_in_bytes + memory.output_size_in_bytes
                                           + memory.temp_size_in_bytes - memory.alias_size_in_bytes)
    # the GPU compiler does not refuse a program that cannot fit; a device that reports no memory
    # (this host's CPU, zoo.targets.local) has no limit to hold it to
    if target.memory_bytes and peak > target.memory_bytes:
        raise DoesNotFit(_verdict(name, peak, target, hint))
    flops, moved = _cost(compiled)
    return StepReport(name, seconds, memory.argument_size_in_bytes, memory.temp_size_in_bytes, peak,
                      flops, moved, collectives(compiled.as_text()))


UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _exhausted_bytes(message: str) -> float | None:
    """The bytes per device an XLA RESOURCE_EXHAUSTED message says a program needs, else None."""
    if "RESOURCE_EXHAUSTED" not in message:
        return None
    found = (re.search(r"required for [^(]*\(([\d.]+)([KMGT])", message)
             or re.search(r"Used ([\d.]+)([KMGT]) of", message))
    return float(found[1]) * UNITS[found[2]] if found else None


def _verdict(step: str, need: float, target, hint: str) -> str:
    return (f"{step} step needs {need / GiB:.1f} GiB per device, {target.kind} has "
            f"{target.memory_bytes / GiB:.2f} GiB: {hint}")


def _hint(exp, step: str) -> str:
    """What to change when a step does not fit."""
    if step == "eval":
        return "lower train.eval_batch_size"
    levers = []
    if exp.mesh.shape["fsdp"] < exp.mesh.size:
        levers.append("raise mesh.fsdp")
    if getattr(exp.cfg.model, "remat", "block") == "none":
        levers.append("set model.remat=block")
    return ", ".join([*levers, "lower train.batch_size (or raise optimizer.accumulate_steps)"])


def compile_steps(cfg, target, steps=("train", "eval")) -> list[StepReport]:
    """Compile the train and/or eval steps of `cfg` for `target`: their reports, or DoesNotFit.
    A config of many replicas (train.seeds, train.sweep) compiles its stacked steps."""
    import numpy as np

    from zoo import mesh as meshlib
    from zoo import train

    program = train.build(cfg, devices=target.devices)
    exp = program.exp
    batch_sharding = meshlib.batch_sharding(exp.mesh, exp.dataset.shardable)
    eval_batch = next(iter(exp.dataset.eval_batches(exp.cfg.train.eval_batch_size)))
    step_args = program.step_args(np.ones(program.count, bool))
    args = {"train": (program.train_step(), (program.shapes, program.batch, *step_args)),
            "eval": (program.eval_step(), (program.shapes["params"], abstract(eval_batch, batch_sharding)))}
    return [compile_step(step, *args[step], target, _hint(exp, step)) for step in steps]


# ----------------------------------------------------------------------------- printing
def _size(n: float) -> str:
    return f"{n / GiB:.2f} GiB" if n >= GiB else f"{n / MiB:.1f} MiB"


def _amount(n: float | None, unit: float, digits: int = 3) -> str:
    return "n/a" if n is None else f"{n / unit:.{digits}g}"


HEADER = ("step", "compile", "arguments", "temporaries", "peak", "of device", "GFLOP", "GB moved", "collectives")


def _share(peak: int, target) -> str:
    return f"{100 * peak / target.memory_bytes:.1f}%" if target.memory_bytes else "n/a"


def rows(reports: list[StepReport], target, label: str = "") -> list[tuple[str, ...]]:
    return [(f"{label}{r.step}", f"{r.seconds:.1f} s", _size(r.arguments), _size(r.temporaries), _size(r.peak),
             _share(r.peak, target), _amount(r.flops, 1e9), _amount(r.bytes_moved, 1e9),
             ", ".join(f"{k} {v}" for k, v in r.collectives.items()) or "none")
            for r in reports]


def format_table(table: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table)


# ----------------------------------------------------------------------------- the command
def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("compile", help="compile a config's steps for a TPU/GPU target, no device needed",
                              description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(p)
    p.set_defaults(run=run)
    return p


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML config, or the name of a shipped one (shakespeare_char)")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. model.remat=block")
    p.add_argument("--target", default="v5e:2x2",
                   help="v5e:2x4, v6e:2x2, v4:2x2x1, v5p:2x2x1, v5e-8, v5p-128, h100:1x1x8, h200:1x2x8 (default v5e:2x2)")
    p.add_argument("--num-slices", type=int, default=1, help="TPU slices joined over the data-center network")
    p.add_argument("--sweep", metavar="KEY=V1,V2", help="compile once per value, one row each")
    p.add_argument("--table", action="store_true",
                   help=f"compile every shipped config for {' and '.join(TABLE_TARGETS)} and write README.md's table")


def sweep(spec: str | None) -> list[str | None]:
    """`key=v1,v2` -> ["key=v1", "key=v2"]; None -> [None] (no extra override)."""
    if spec is None:
        return [None]
    key, sep, values = spec.partition("=")
    if not sep or not values:
        raise ConfigError(f"--sweep {spec!r} is not key=v1,v2; write e.g. --sweep model.remat=none,block,dots")
    return [f"{key}={v}" for v in values.split(",")]


def compile_config(args, target) -> int:
    from zoo import config

    table, failures = [HEADER], []
    for extra in sweep(args.sweep):
        cfg = config.load(config.config_path(args.config), [*args.overrides, *([extra] if extra else [])])
        try:
            table += rows(compile_steps(cfg, target), target, f"{extra} " if extra else "")
        except CannotCompile as e:
            failures.append(f"{extra}: {e}" if extra else str(e))
    print(f"{args.config} on {target.describe()}")
    if len(table) > 1:
        print(format_table(table))
    if getattr(cfg.model, "scan_layers", False):
        print("(XLA's cost analysis counts a scanned loop's body once: GFLOP and GB moved cover one block)")
    for line in failures:
        print(line, file=sys.stderr)
    return 2 if failures else 0


def table_cell(path: Path, target) -> str:
    """Peak memory of the train step and the compile time of both steps, or why not."""
    from zoo import config

    try:
        reports = compile_steps(config.load(path), target)
    except (ConfigError, CannotCompile) as e:
        return f"fails: {e}".replace("|", "/")
    return f"{_size(reports[0].peak)}, {sum(r.seconds for r in reports):.1f} s"


def markdown_table(targets_used) -> str:
    head = ["config", "model", *(f"{t.name}: train peak per device, compile" for t in targets_used)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    from zoo import config

    for path in config.shipped_configs().values():
        cells = [table_cell(path, t) for t in targets_used]
        lines.append(f"| {path.stem} | {config.read_yaml(path)['model']['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_table(readme: Path, names) -> int:
    """Compile every shipped config for each target and put the table between README's markers."""
    from zoo import targets

    text = readme.read_text(encoding="utf-8")
    start, end = (text.find(m) for m in TABLE_MARKERS)
    if start < 0 or end < start:
        raise ConfigError(f"{readme} has no table markers; add the lines {TABLE_MARKERS[0]} and {TABLE_MARKERS[1]}")
    table = markdown_table([targets.resolve(n) for n in names])
    readme.write_text(text[:start + len(TABLE_MARKERS[0])] + "\n" + table + "\n" + text[end:], encoding="utf-8")
    print(table)
    return 0


def run(args) -> int:
    """The subcommand: 0 when every step fits, 2 for a user error or a step that does not fit."""
    import jax

    from zoo import targets

    if "JAX_PLATFORMS" not in os.environ:   # compile-only: never claim this host's accelerator
        jax.config.update("jax_platforms", "cpu")

    try:
        if args.table:
            return write_table(Path("README.md"), TABLE_TARGETS)
        if args.config is None:
            raise ConfigError("give a config: zoo compile configs/shakespeare_char.yaml --target v5e:2x2")
        return compile_config(args, targets.resolve(args.target, args.num_slices))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zoo compile", description=__doc__.split("\n\n")[0])
    _arguments(p)
    return run(p.parse_intermixed_args(argv))   # overrides may follow --target


if __name__ == "__main__":
    sys.exit(main())

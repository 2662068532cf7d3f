"""Helpers shared by the benchmark scripts: median time of a callable after warm-up, compile
time and FLOPs of a jitted function, a plain-text table, and the report that a bench prints and
(with --write-readme) writes into its generated block of README.md.

Importing this module sets the process's malloc as `zoo train` does
(zoo.commands.host.keep_freed_memory), so every benchmark times JAX and its peers under the
trainer's conditions."""
from __future__ import annotations

import argparse
import datetime
import functools
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zoo.commands import host
from zoo.commands.readme import machine, markers, replace_block

ROOT = Path(__file__).resolve().parent.parent

host.keep_freed_memory()


def block(tree: Any) -> Any:
    """Wait for every JAX array in `tree` (a no-op for anything else, e.g. torch tensors)."""
    import jax
    return jax.block_until_ready(tree)


def median_time(step: Callable[[], Any], *, warmup: int = 3, repeats: int = 5, number: int = 10,
                clock: Callable[[], float] = time.perf_counter) -> float:
    """Median over `repeats` of the mean seconds per call over `number` calls of `step()`.

    clock=time.process_time counts this process's CPU time only: with one thread per library
    it ranks variants on a machine that others are using too (wall time would not).
    """
    for _ in range(warmup):
        block(step())
    samples = []
    for _ in range(repeats):
        start = clock()
        for _ in range(number):
            out = step()
        block(out)
        samples.append((clock() - start) / number)
    return statistics.median(samples)


def train_steps(name_or_path: str | Path | None, overrides: Sequence[str] = ()) -> tuple[Any, dict, Callable, Callable]:
    """The trainer's own pieces for a config (a shipped config's name or a YAML path; None: the
    defaults) with `overrides`: (experiment, state, jitted step (state, batch) -> (state,
    metrics), batch(step) -> that step's global batch on the devices)."""
    from zoo import experiment, steps
    exp = experiment.build(load_config(name_or_path, overrides))
    state, shardings = experiment.init_state(exp)
    return exp, state, steps.make_train_step(exp, shardings), functools.partial(experiment.train_batch, exp)


def load_config(name_or_path: str | Path | None, overrides: Sequence[str] = ()) -> Any:
    """The validated zoo.schema.Config of a shipped config's name or a YAML path (None: the
    defaults) with `overrides`."""
    from zoo import config
    from zoo.config import config_path
    return config.load(None if name_or_path is None else config_path(str(name_or_path)), list(overrides))


def advancing(step: Callable, state: dict, batch: dict) -> Callable[[], Any]:
    """A call without arguments that takes one `step` on `batch` from the state the last call
    reached (the step donates its input state) and returns the step's metrics."""
    live = [state]

    def one():
        live[0], metrics = step(live[0], batch)
        return metrics

    return one


def compile_time(jitted: Callable, *args: Any) -> float:
    """Seconds to lower and compile `jitted` for `args` (no execution)."""
    start = time.perf_counter()
    jitted.lower(*args).compile()
    return time.perf_counter() - start


def table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """Rows of dicts as an aligned text table; floats shown with 3 significant digits."""
    columns = list(columns or rows[0].keys())
    cell = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)
    widths = [max(len(c), *(len(cell(r.get(c, ""))) for r in rows)) for c in columns]
    line = lambda cells: "  ".join(v.ljust(w) for v, w in zip(cells, widths)).rstrip()
    lines = [line(columns), line("-" * w for w in widths)]
    lines += [line(cell(r.get(c, "")) for c in columns) for r in rows]
    return "\n".join(lines)


def matmul_peak_flops(n: int = 1024, dtype: str = "float32") -> float:
    """The machine's measured matmul rate (FLOP/s) through XLA: an n x n x n product, jitted."""
    import jax
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), dtype)
    f = jax.jit(lambda x, y: x @ y)
    seconds = median_time(lambda: f(a, b), warmup=2, repeats=5, number=5)
    return 2 * n**3 / seconds


def cost_flops(jitted: Callable, *args: Any) -> float:
    """FLOPs of one call of `jitted(*args)` by XLA's cost analysis of the compiled program."""
    analysis = jitted.lower(*args).compile().cost_analysis()
    if isinstance(analysis, list):  # older jax returns one dict per device
        analysis = analysis[0]
    return float(analysis.get("flops", 0.0))


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def limit_xla_threads(n: int) -> None:
    """Limit XLA's CPU work to n threads. Call it before the first JAX computation: XLA reads
    XLA_FLAGS once, when its backend starts (importing jax does not start it).

    XLA has no thread-count flag: it sizes its CPU thread pools from the CPUs this process may
    run on, so the process is pinned to n of them (sched_setaffinity, where the OS has it), and
    with n == 1 Eigen's multithreading is turned off as well. (An earlier version appended
    `intra_op_parallelism_threads=N`, which is not an XLA flag: XLA stops parsing XLA_FLAGS at
    the first word without `--`, so every flag after it was silently ignored.)"""
    if n == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:n])


class Report:
    """The lines a bench reports: each printed as it is measured and kept, so that the same
    text can go into README.md (progress messages are printed, not reported)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def __str__(self) -> str:
        return "\n".join(self.lines)


class _WriteReadme(argparse.Action):
    """--write-readme: checks README.md's markers as the arguments are parsed, so that a
    missing block stops the bench before it measures anything."""

    def __init__(self, option_strings, dest, bench: str, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)
        self.bench = bench

    def __call__(self, parser, namespace, values, option_string=None):
        start, end = markers(f"bench:{self.bench}")
        if not all(marker in (ROOT / "README.md").read_text() for marker in (start, end)):
            parser.error(f"README.md has no {start} ... {end} block: add the two markers where the table belongs")
        setattr(namespace, self.dest, True)


def add_readme_flag(parser: argparse.ArgumentParser, name: str) -> None:
    """The --write-readme flag of bench `name` (bench/bench_NAME.py)."""
    parser.add_argument("--write-readme", action=_WriteReadme, bench=name,
                        help=f"also write the report into README.md between the bench:{name} markers")


def write_readme_block(name: str, text: str, readme: Path = ROOT / "README.md") -> None:
    """Replace README's block between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->`
    with `text` as a code block under a line giving the command (this process's arguments,
    less --write-readme), the machine, the JAX version and the date."""
    args = [a for a in sys.argv[1:] if a != "--write-readme"]
    command = shlex.join(["python", "-m", f"bench.bench_{name}", *args])
    header = f"`{command}` on {machine()}, {os.cpu_count()} CPUs, {datetime.date.today().isoformat()}:"
    body = text.strip("\n")
    block = f"{header}\n\n```\n{body}\n```\n"
    readme.write_text(replace_block(readme.read_text(), f"bench:{name}", block))

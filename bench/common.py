"""Timing helpers shared by the benchmark scripts: median wall time of a callable after
warm-up, compile time of a jitted function, and a plain-text table.

Importing this module sets the process's malloc as train.py does (zoo.cpu.keep_freed_memory),
so every benchmark times JAX and its peers under the trainer's conditions."""
from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any, Callable, Sequence

from zoo import cpu

cpu.keep_freed_memory()


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


def compile_time(jitted: Callable, *args: Any) -> float:
    """Seconds to lower and compile `jitted` for `args` (no execution)."""
    start = time.perf_counter()
    jitted.lower(*args).compile()
    return time.perf_counter() - start


def table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """Rows of dicts as an aligned text table; floats shown with 3 significant digits."""
    columns = list(columns or rows[0].keys())
    cell = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    widths = [max(len(c), *(len(cell(r.get(c, ""))) for r in rows)) for c in columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell(r.get(c, "")).ljust(w) for c, w in zip(columns, widths)) for r in rows]
    return "\n".join(lines)


def matmul_peak_flops(n: int = 1024, dtype: str = "float32") -> float:
    """The machine's measured matmul rate (FLOP/s) through XLA: an n x n x n product, jitted."""
    import jax
    import jax.numpy as jnp
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


def xla_threads_from_argv() -> None:
    """`--threads N` on the command line limits XLA's CPU thread pool to N (call it before jax
    is imported: XLA reads its flags once)."""
    if "--threads" not in sys.argv:
        return
    n = sys.argv[sys.argv.index("--threads") + 1]
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_cpu_multi_thread_eigen={str(n != '1').lower()}"
                               f" intra_op_parallelism_threads={n}").strip()

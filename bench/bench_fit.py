"""The whole fit, as a user waits for it: `zoo train CONFIG` from process start to exit against
its peer's recipe run the same way (bench/peers.py), alternated in one run so that both see the
same machine. What a user waits for is all of it: imports, data, compiling, the loop,
evaluation, checkpoints and figures.

    python -m bench.bench_fit                       # every row, 2 alternations (about 15 min)
    python -m bench.bench_fit mlp cnn --repeats 3   # some rows
    python -m bench.bench_fit --phases mnist1d_mlp  # where one run's time goes, in process
    python -m bench.bench_fit --write-readme        # and write the table into README.md

zoo is timed twice per alternation: its first run (an empty compilation cache, as on a fresh
machine) and its second (the cache the first one filled: zoo.commands.host). Ratios are the
peer's seconds over zoo's, medians over the alternations; a peer whose packages are missing is
skipped with a note.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, Report, add_readme_flag, table, write_readme_block

# row -> (zoo's shipped config and overrides, the peer (bench/peers.py), the metric both report, the
# peer's packages). "mlp" is zoo's shipped MLP (256 wide, dropout, cosine: ~74%) against the paper's
# (100 wide: ~63%), about 6x its FLOPs per step; "mlp-paper" is the paper's recipe in both.
PAPER_MLP = ("model.width=100", "model.dropout_rate=0.0", "optimizer.schedule=constant", "train.eval_every=250",
             "train.log_every=250", "train.steps_per_execution=50")
ROWS = {
    "mlp": ("mnist1d_mlp", (), "mnist1d_mlp", "eval_accuracy", ("torch",)),
    "mlp-paper": ("mnist1d_mlp", PAPER_MLP, "mnist1d_mlp", "eval_accuracy", ("torch",)),
    "cnn": ("mnist1d_cnn", (), "mnist1d_cnn", "eval_accuracy", ("torch",)),
    "spiral": ("spiral_node", (), "spiral", "eval_mse", ("torch", "torchdiffeq")),
    "shakespeare": ("shakespeare_char", (), "nanogpt", "eval_loss", ("torch",)),
}
PEER_NAMES = {"mlp": "MNIST-1D paper, PyTorch", "mlp-paper": "MNIST-1D paper, PyTorch", "cnn": "MNIST-1D paper, PyTorch",
              "spiral": "torchdiffeq ode_demo", "shakespeare": "nanoGPT CPU recipe"}


def timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout


def zoo_run(config: str, overrides: tuple[str, ...], metric: str, cache: Path) -> tuple[float, float]:
    """`zoo train CONFIG OVERRIDES` in a fresh process: (whole-process seconds, its test metric)."""
    with tempfile.TemporaryDirectory() as runs:
        env = {**os.environ, "ZOO_COMPILATION_CACHE": str(cache)}
        seconds, _ = timed([sys.executable, "-m", "zoo", "train", config, *overrides, f"run.dir={runs}"], env)
        summary = json.loads(next(Path(runs).glob("*/summary.json")).read_text())
    return seconds, summary[metric]


def peer_run(peer: str, metric: str) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    seconds, out = timed([sys.executable, "-m", "bench.peers", peer], env)
    return seconds, json.loads(out.strip().splitlines()[-1])[metric]


def row(name: str, repeats: int, say: Report) -> dict:
    config, overrides, peer, metric, packages = ROWS[name]
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    first, cached, theirs = [], [], []
    for r in range(repeats):
        with tempfile.TemporaryDirectory() as cache:
            first.append(zoo_run(config, overrides, metric, Path(cache)))
            cached.append(zoo_run(config, overrides, metric, Path(cache)))
        if not missing:
            theirs.append(peer_run(peer, metric))
        print(f"  {name} #{r}: zoo {first[-1][0]:.1f} s, cached {cached[-1][0]:.1f} s"
              + (f", peer {theirs[-1][0]:.1f} s" if theirs else ""), flush=True)
    median = lambda runs, i: statistics.median(x[i] for x in runs)
    out = {"row": name, "metric": metric, "zoo s": median(first, 0), "zoo cached s": median(cached, 0),
           "zoo metric": median(first, 1)}
    if missing:
        say(f"note: {name}: the peer needs {', '.join(missing)}, not installed: skipped")
        return out
    out.update({"peer": PEER_NAMES[name], "peer s": median(theirs, 0), "peer metric": median(theirs, 1)})
    out.update({"ratio": out["peer s"] / out["zoo s"], "ratio cached": out["peer s"] / out["zoo cached s"]})
    return out


# ----------------------------------------------------------------------------- phases
def phases(config: str) -> dict[str, float]:
    """Where one run's time goes: the imports `zoo train` makes, timed in a fresh process (this
    one has imported jax already), then the trainer's phases in this process, each timed by
    wrapping the function that does it (nothing in zoo is changed)."""
    imported = float(subprocess.run(
        [sys.executable, "-c", "import time; t = time.perf_counter(); import zoo.commands.train, zoo.train, "
         "zoo.figures, zoo.commands.host; print(time.perf_counter() - t)"],
        check=True, capture_output=True, text=True).stdout)
    from zoo import checkpoint, figures, loop, program, train
    from zoo import config as zoo_config
    from zoo.commands import host
    totals: dict[str, float] = {}

    def wrap(owner, attribute: str, phase: str):
        original = getattr(owner, attribute)

        def timed_call(*args, **kwargs):
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                totals[phase] = totals.get(phase, 0.0) + time.perf_counter() - t
        setattr(owner, attribute, timed_call)

    wrap(train, "build", "data and shapes")
    wrap(train, "windowed_step", "compile step")
    wrap(loop, "windowed_step", "compile step")   # a K>1 run's one-step program, compiled when first needed
    wrap(program.Program, "init_state", "init")
    wrap(loop.Loop, "run", "loop (eval, saves inside)")
    wrap(loop.Loop, "final_metrics", "final eval")
    wrap(checkpoint.Checkpointer, "save", "saves (in the loop)")
    wrap(checkpoint.Checkpointer, "close", "last save's wait")
    with tempfile.TemporaryDirectory() as runs, contextlib.ExitStack():
        host.keep_freed_memory()
        cfg = zoo_config.load(zoo_config.config_path(config), [f"run.dir={runs}"])
        if hasattr(host, "use_compilation_cache"):  # releases before it compiled afresh every run
            host.use_compilation_cache(False)
        hooks = figures.after_training(cfg)
        for i, hook in enumerate(hooks):
            def drawn(run, hook=hook):
                t = time.perf_counter()
                hook(run)
                totals["figures"] = totals.get("figures", 0.0) + time.perf_counter() - t
            hooks[i] = drawn
        fit_start = time.perf_counter()
        train.fit(cfg, hooks=hooks)
        total = time.perf_counter() - fit_start
    inside = totals.get("saves (in the loop)", 0.0)  # already counted in the loop's time
    return {"imports": imported, **totals, "rest of fit": total - sum(totals.values()) + inside,
            "whole": imported + total}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rows", nargs="*", default=list(ROWS), help=f"rows to run (default all: {', '.join(ROWS)})")
    p.add_argument("--repeats", type=int, default=2, help="alternations of zoo and its peer per row")
    p.add_argument("--phases", metavar="CONFIG", help="instead: where one `zoo train CONFIG` spends its time")
    add_readme_flag(p, "fit")
    args = p.parse_args(argv)
    say = Report()
    if args.phases:
        say(table([{"phase": k, "s": v} for k, v in phases(args.phases).items()]))
        return
    rows = [row(name, args.repeats, say) for name in args.rows]
    say(table(rows, ["row", "metric", "zoo s", "zoo cached s", "zoo metric", "peer", "peer s", "peer metric",
                     "ratio", "ratio cached"]))
    say("ratio: the peer's whole-process seconds over zoo's (above 1: zoo is faster); medians over "
        f"{args.repeats} alternations")
    if args.write_readme:
        write_readme_block("fit", str(say))


if __name__ == "__main__":
    main()

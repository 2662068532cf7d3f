"""The single-run training loop's speed against an earlier commit, per shipped config: each
config that both commits ship is trained for a few hundred steps by this checkout and by the
other commit's own files (`git archive` into a temporary folder), each run in a fresh process,
the two alternated so that both see the same machine.

    python -m bench.bench_release                          # against the previous release, every config both ship
    python -m bench.bench_release mnist1d_mlp cora_gcn --steps 400 --repeats 3
    python -m bench.bench_release --rev HEAD~10            # against any commit

The rate is the loop's own: steps over the seconds of the logged windows after the first one
(read from each run's metrics.jsonl), so compiling, the first window's warm-up, evaluation and
the final save are left out, and each commit trains its own shipped config (with its own
settings, such as steps_per_execution) as a user of that release would. The previous release
(b5bd975) is the last commit before this wave's trainer changes.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

from bench.common import ROOT, Report, add_readme_flag, table, write_readme_block
from zoo.config import example_command

PREVIOUS_RELEASE = "b5bd975"


def shipped(root: Path) -> set[str]:
    return {p.stem for p in (root / "zoo" / "configs").glob("*.yaml")}


def checkout(rev: str, into: Path) -> Path:
    """The files of commit `rev` under `into` (no git metadata, nothing of this checkout)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev], capture_output=True, check=True)
    with tempfile.TemporaryFile() as f:
        f.write(archive.stdout)
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            tar.extractall(into, filter="data")
    shared = ROOT.parent / "shared"  # where older releases read data a config names as ../shared/...
    if shared.is_dir() and not (into.parent / "shared").exists():
        (into.parent / "shared").symlink_to(shared)
    return into


def from_scratch(path: Path) -> list[str]:
    """Overrides that train a fine-tuning config from its own initialisation: its source run
    (train.init_from) is not there, and the loop's speed does not depend on the start."""
    train = (yaml.safe_load(path.read_text()) or {}).get("train") or {}
    if not train.get("init_from"):
        return []
    return [f"train.{key}=null" for key in ("init_from", "init_exclude", "freeze", "init_step") if key in train]


def loop_rate(root: Path, config: str, steps: int, cache: Path) -> float:
    """Train `config` with the zoo under `root` in a fresh process, started in a folder beside
    `root` (so that a config's ../shared/... data resolves as in a checkout), after writing the
    example file its header says to make first; the loop's steps/s over the logged windows after
    the first."""
    log_every = max(steps // 5, 1)
    env = {**os.environ, "PYTHONPATH": str(root), "ZOO_COMPILATION_CACHE": str(cache)}
    with tempfile.TemporaryDirectory(dir=root.parent) as work:
        example = example_command(root / "zoo" / "configs" / f"{config}.yaml")
        if example:
            subprocess.run([sys.executable, "-m", "zoo.data.examples", *example], env=env, cwd=work,
                           capture_output=True, check=True)
        code = ("import sys, zoo; from pathlib import Path; "
                f"assert Path(zoo.__file__).resolve().is_relative_to(Path({str(root.resolve())!r})), zoo.__file__; "
                "from zoo.commands.cli import main; sys.exit(main(sys.argv[1:]))")
        cmd = [sys.executable, "-c", code, "train", config, f"train.steps={steps}", f"train.log_every={log_every}",
               f"run.dir={work}/runs", "run.plots=false", *from_scratch(root / "zoo" / "configs" / f"{config}.yaml")]
        proc = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{config} at {root}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
        records = [json.loads(line) for line in next(Path(work).glob("runs/*/metrics.jsonl")).read_text().splitlines()]
    return windowed_rate(records)


def windowed_rate(records: list[dict]) -> float:
    """Steps per second over the logged windows after the first (which holds the first calls'
    warm-up) of a run's metrics.jsonl records: each window's steps over its seconds, summed."""
    windows, last = [], 0
    for record in records:
        if "steps_per_s" in record and record.get("step", 0) > last:
            windows.append((record["step"] - last, record["steps_per_s"]))
            last = record["step"]
    timed = windows[1:] or windows
    return sum(n for n, _ in timed) / sum(n / rate for n, rate in timed)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("configs", nargs="*", help="shipped configs (default: every config both commits ship)")
    p.add_argument("--rev", default=PREVIOUS_RELEASE, help=f"the commit to compare with (default {PREVIOUS_RELEASE})")
    p.add_argument("--steps", type=int, default=500, help="training steps per run")
    p.add_argument("--repeats", type=int, default=2, help="alternations per config (medians are reported)")
    add_readme_flag(p, "release")
    args = p.parse_args(argv)
    say = Report()
    with tempfile.TemporaryDirectory() as tmp:
        old = checkout(args.rev, Path(tmp) / "old")
        common = sorted(shipped(ROOT) & shipped(old))
        names = args.configs or common
        unknown = [n for n in names if n not in common]
        if unknown:
            p.error(f"not shipped by both commits: {', '.join(unknown)}")
        rows = []
        for name in names:
            theirs, ours = [], []
            try:
                for _ in range(args.repeats):
                    with tempfile.TemporaryDirectory() as cache:
                        theirs.append(loop_rate(old, name, args.steps, Path(cache)))
                    with tempfile.TemporaryDirectory() as cache:
                        ours.append(loop_rate(ROOT, name, args.steps, Path(cache)))
            except RuntimeError as e:  # reported in its row; the other configs still run
                print(f"  {name}: {e}", flush=True)
                rows.append({"config": name, "ratio": f"failed: {str(e).splitlines()[-1][:80]}"})
                continue
            row = {"config": name, f"{args.rev} steps/s": statistics.median(theirs),
                   "now steps/s": statistics.median(ours)}
            row["ratio"] = row["now steps/s"] / row[f"{args.rev} steps/s"]
            print(f"  {name}: {row[f'{args.rev} steps/s']:.1f} -> {row['now steps/s']:.1f} steps/s "
                  f"({row['ratio']:.2f}x)", flush=True)
            rows.append(row)
    say(table(rows, ["config", f"{args.rev} steps/s", "now steps/s", "ratio"]))
    ratios = [r["ratio"] for r in rows if isinstance(r["ratio"], float)]
    say(f"ratio: this checkout's loop steps/s over {args.rev}'s, medians over {args.repeats} alternations of "
        f"{args.steps}-step runs; {sum(r >= 1 for r in ratios)} of {len(ratios)} configs at least as fast, "
        f"geometric mean {statistics.geometric_mean(ratios):.2f}x")
    if args.write_readme:
        write_readme_block("release", str(say))


if __name__ == "__main__":
    main()

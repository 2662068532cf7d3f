"""Measure: every file of a run's newest checkpoint truncated, deleted or with a flipped byte,
and checkpoints that are not what their names say (another step's, with a manifest of today or
of before manifests named the step; another run's); each must be skipped for the previous
checkpoint with one stderr line (absl's and orbax's records included), never restored.

    PYTHONPATH=. python tools/damage_corpus.py [--dir /tmp/damage_corpus]

Prints the counts; exits 1 on any silent acceptance or any case that is not exactly one line.
A measurement for the reliability report; tests/e2e/test_reliability.py keeps one case of each kind.
"""
import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import jax
import numpy as np

from zoo import checkpoint, config, rundir, train
from zoo import experiment as ex


def truncate(f: Path):
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def delete(f: Path):
    f.unlink()


def flip(f: Path):
    data = bytearray(f.read_bytes())
    if data:
        data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data) if data else b"\x00")


def copy_of_10(run: Path, old_manifest: bool = False):
    """Step 10's checkpoint put in place of step 20 (with a manifest that records no step)."""
    shutil.rmtree(run / "checkpoints" / "20")
    shutil.copytree(run / "checkpoints" / "10", run / "checkpoints" / "20")
    if old_manifest:
        manifest = run / "checkpoints" / "20" / checkpoint.MANIFEST
        manifest.write_text(json.dumps({"sha256": json.loads(manifest.read_text())["sha256"]}))


def another_runs(run: Path, base: Path):
    """Step 20 of another run (same config, its own id) put in place of this run's step 20."""
    shutil.rmtree(run / "checkpoints" / "20")
    shutil.copytree(base / "other" / "checkpoints" / "20", run / "checkpoints" / "20")


@contextlib.contextmanager
def fd_stderr():
    """Everything written to file descriptor 2 inside (Python, absl and C++ alike)."""
    sys.stderr.flush()
    saved, captured = os.dup(2), tempfile.TemporaryFile(mode="w+")
    os.dup2(captured.fileno(), 2)
    try:
        yield captured
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def leaves(run):
    return [np.asarray(x) for x in jax.tree.leaves(run.params)]


def main() -> int:
    args = argparse.ArgumentParser()
    args.add_argument("--dir", default="/tmp/damage_corpus")
    base = Path(args.parse_args().dir)
    shutil.rmtree(base, ignore_errors=True)
    overrides = ["model.name=mlp", "model.width=16", "data.name=mnist1d", "train.steps=20", "train.checkpoint_every=10",
                 "train.eval_batches=1", "run.plots=false", f"run.dir={base}"]
    for name in ("ref", "other"):
        train.fit(config.load(None, [*overrides, f"run.name={name}"]))
    expected = leaves(ex.load_run(base / "ref", step=10))
    files = sorted(p.relative_to(base / "ref") for p in (base / "ref" / "checkpoints" / "20").rglob("*") if p.is_file())
    cases = [(f"{damage.__name__} {name}", lambda run, d=damage, n=name: d(run / n))
             for damage in (truncate, delete, flip) for name in files]
    cases += [("step 10 in place of 20", copy_of_10), ("step 10 in place of 20, old manifest",
                                                        lambda run: copy_of_10(run, old_manifest=True)),
              ("another run's step 20", lambda run: another_runs(run, base))]
    fell_back = silent = 0
    for label, damage in cases:
        run = base / "case"
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(base / "ref", run)
        damage(run)
        with fd_stderr() as err:
            loaded = ex.load_run(run)
        err.seek(0)
        text = err.read()
        same = all(np.array_equal(a, b) for a, b in zip(expected, leaves(loaded)))
        ok = loaded.step == 10 and same and text.count("\n") == 1 and "skipped" in text
        fell_back += ok
        silent += loaded.step == 20
        if not ok:
            print(f"{label}: restored step {loaded.step} (params of step 10: {same}); stderr {text!r}")
    assert rundir.run_id(base / "ref") != rundir.run_id(base / "other")
    print(f"{len(cases)} damaged checkpoints ({len(files)} files x truncate/delete/flip, {len(cases) - 3 * len(files)} "
          f"put in place of another): {fell_back} fell back to the intact step 10 with one line, {silent} restored "
          f"silently")
    return 0 if fell_back == len(cases) and silent == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

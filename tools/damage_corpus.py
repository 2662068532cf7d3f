"""Measure: every file of a run's newest checkpoint truncated, deleted or with a flipped byte;
each must be skipped for the previous checkpoint (one stderr line), never restored.

    PYTHONPATH=. python tools/damage_corpus.py [--dir /tmp/damage_corpus]

Prints the counts; exits 1 on any silent acceptance. A measurement for the reliability
report; tests/e2e/test_reliability.py keeps one case of each kind of damage.
"""
import argparse
import contextlib
import io
import shutil
from pathlib import Path

from zoo import checkpoint, config, train


def truncate(f: Path):
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def delete(f: Path):
    f.unlink()


def flip(f: Path):
    data = bytearray(f.read_bytes())
    if data:
        data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data) if data else b"\x00")


def main() -> int:
    args = argparse.ArgumentParser()
    args.add_argument("--dir", default="/tmp/damage_corpus")
    base = Path(args.parse_args().dir)
    shutil.rmtree(base, ignore_errors=True)
    train.fit(config.load(None, ["model.name=mlp", "model.width=16", "data.name=mnist1d", "train.steps=20",
                                 "train.checkpoint_every=10", "train.eval_batches=1", "run.plots=false",
                                 f"run.dir={base}", "run.name=ref"]))
    files = sorted(p.relative_to(base / "ref") for p in (base / "ref" / "checkpoints" / "20").rglob("*") if p.is_file())
    fell_back = silent = 0
    for damage in (truncate, delete, flip):
        for name in files:
            run = base / "case"
            shutil.rmtree(run, ignore_errors=True)
            shutil.copytree(base / "ref", run)
            damage(run / name)
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                step = checkpoint.Checkpointer(run / "checkpoints", 3, create=False).check_step(None, run)
            ok = step == 10 and err.getvalue().count("\n") == 1 and "skipped" in err.getvalue()
            fell_back += ok
            silent += step == 20
            if not ok:
                print(f"{damage.__name__} {name}: restored step {step}; stderr {err.getvalue()!r}")
    total = 3 * len(files)
    print(f"{total} damaged checkpoints ({len(files)} files x truncate/delete/flip): {fell_back} fell back to the "
          f"intact step 10 with one line, {silent} restored silently")
    return 0 if fell_back == total and silent == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

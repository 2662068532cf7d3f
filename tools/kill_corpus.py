"""Measure: runs killed with SIGKILL at random moments (right after their run directory appears,
before their first checkpoint, during a save, anywhere) and resumed end bit for bit where an
uninterrupted run ends; a run killed before it wrote its config is started again by name and
must take its leftover directory (not name-2).

    PYTHONPATH=. python tools/kill_corpus.py [--kills 20] [--seed 0] [--dir /tmp/kill_corpus]

Prints one line per kill and a total; exits 1 unless every resumed run matches. A measurement
for the reliability report, not a test (it takes minutes); tests/e2e/test_train.py and
tests/e2e/test_reliability.py keep representative kills.
"""
import argparse
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
model: {name: mlp, width: 32, dropout_rate: 0.1}
data: {name: mnist1d, val_size: 500}
train: {batch_size: 50, eval_batch_size: 500, eval_batches: 1, steps: 1500, checkpoint_every: 100,
        log_every: 50, eval_every: 100, select: val_accuracy, keep_checkpoints: 2}
run: {plots: false}
"""


def train(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def final_state(run_dir: Path) -> list[np.ndarray]:
    """Every leaf of the last checkpoint: train state, selected params and their scores."""
    from zoo import checkpoint, config
    from zoo import experiment as ex
    from zoo.selection import Selection
    from zoo.train import restore

    exp = ex.build(config.load(run_dir / "config.yaml"))
    state, shardings = ex.init_state(exp)
    best = Selection(exp.cfg.train.select, state["params"])
    ckpt = checkpoint.Checkpointer(run_dir / "checkpoints", 2, create=False)
    restored, position = restore(exp, ckpt, shardings, best)
    ckpt.close()
    return [np.asarray(x) for x in jax.tree.leaves({**restored, "best": best.tree(), "position": position})]


def committed(run_dir: Path) -> bool:
    ckpts = run_dir / "checkpoints"
    return ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir())


def kill_when(proc: subprocess.Popen, run_dir: Path, mode: str, delay: float) -> str:
    """SIGKILL `proc` during a save (mode "save"), `delay` s after its start ("start") or
    `delay` s after its first checkpoint committed ("train"); returns what it was doing."""
    start, first = time.time(), None
    while proc.poll() is None:
        ckpts = run_dir / "checkpoints"
        saving = ckpts.is_dir() and any("tmp" in p.name for p in ckpts.iterdir())
        if first is None and committed(run_dir):
            first = time.time()
        due = {"save": saving, "start": time.time() - start >= delay, "mkdir": run_dir.is_dir(),
               "train": first is not None and time.time() - first >= delay}[mode]
        if due:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return "during a save" if saving else ("between saves" if committed(run_dir)
                                                    else "before the first checkpoint")
        time.sleep(0.002)
    return "finished before the kill"


def timings(base: Path) -> tuple[float, float]:
    """(seconds to the first committed checkpoint, seconds of training after it) of an
    uninterrupted run, the reference."""
    t0, first = time.time(), None
    proc = train(str(base / "c.yaml"), f"run.dir={base}", "run.name=ref")
    while proc.poll() is None:
        if first is None and committed(base / "ref"):
            first = time.time()
        time.sleep(0.002)
    assert proc.returncode == 0 and first is not None
    return first - t0, time.time() - first


def main() -> int:
    args = argparse.ArgumentParser()
    args.add_argument("--kills", type=int, default=20)
    args.add_argument("--seed", type=int, default=0)
    args.add_argument("--dir", default="/tmp/kill_corpus")
    a = args.parse_args()
    base = Path(a.dir)
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    (base / "c.yaml").write_text(CONFIG)
    startup, training = timings(base)
    reference = final_state(base / "ref")
    rng, same = random.Random(a.seed), 0
    for i in range(a.kills):
        run_dir = base / f"k{i}"
        mode = ("start", "save", "train", "mkdir")[i % 4]
        proc = train(str(base / "c.yaml"), f"run.dir={base}", f"run.name=k{i}")
        when = kill_when(proc, run_dir, mode, rng.uniform(0.0, startup if mode == "start" else 0.9 * training))
        if not (run_dir / "config.yaml").is_file():  # killed before it wrote its config: start it again
            when += " (no config yet)"
            resumed = train(str(base / "c.yaml"), f"run.dir={base}", f"run.name=k{i}")
        else:
            resumed = train("--resume", str(run_dir))
        _, err = resumed.communicate()
        equal = (resumed.returncode == 0 and not (base / f"k{i}-2").exists()
                 and all(np.array_equal(x, y) for x, y in zip(reference, final_state(run_dir))))
        same += equal
        print(f"kill {i + 1:2d}: {when:28s} resume exit {resumed.returncode}, final state "
              f"{'bit-identical' if equal else 'DIFFERENT'}" + ("" if equal else f"\n{err[-1500:]}"), flush=True)
    print(f"{same} of {a.kills} killed runs resumed to the uninterrupted run's final state, bit for bit")
    return 0 if same == a.kills else 1


if __name__ == "__main__":
    raise SystemExit(main())

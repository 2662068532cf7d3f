"""Runs started, killed and read back by the resume tests (test_train, test_data_resume): the
`python train.py` command in a subprocess, its end, its last checkpoint's state."""
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, subprocess_env

from zoo import checkpoint, config, train


def cli(*args):
    env = subprocess_env()
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc) -> tuple[int, str]:
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err[-2000:]


def final_state(run_dir: Path):
    """The last checkpoint's train state plus the selected parameters and their scores."""
    program = train.build(config.load(run_dir / "config.yaml"))
    best = program.selection(program.init_state()["params"])
    ckpt = checkpoint.Checkpointer(run_dir / "checkpoints", 3)
    restored, position = train.restore(program, ckpt, best)
    ckpt.close()
    return {**restored, "best": best.tree()}, position


def wait_for_checkpoint(proc, run_dir: Path, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (run_dir / "checkpoints" / "100" / "zoo_manifest.json").is_file():  # committed and sealed
            return
        assert proc.poll() is None, finish(proc)
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared")

"""Nothing lost, nothing silent: bad inputs end in one line, runs resume exactly or refuse,
checkpoints are verified, non-finite steps never reach the params, signals and full disks are
one line, and the loop keeps a bounded number of steps in flight."""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from bad_inputs import CASES
from zoo import checkpoint, config, rundir, train
from zoo import experiment as ex
from zoo.commands import cli

ROOT = Path(__file__).resolve().parent.parent


def _materialize(tmp_path: Path, args, files) -> list[str]:
    for name, content in files.items():
        content = content.replace("{tmp}", str(tmp_path)) if isinstance(content, str) else content
        (tmp_path / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return [a.replace("{tmp}", str(tmp_path)) for a in args]


@pytest.mark.parametrize("args, files, expect", CASES, ids=[f"{i}:{' '.join(c[0])[-60:]}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_line_exit_2_and_leaves_no_run_directory(tmp_path, capsys, args, files, expect):
    argv = _materialize(tmp_path, args, files)
    runs = tmp_path / "out"
    if not any(a.startswith("run.dir=") for a in argv):  # after the config file, before any --flag
        argv.insert(len(argv) if argv[0].startswith("--") else 0 if "=" in argv[0] else 1, f"run.dir={runs}")
    code = cli.main(["train", *argv])
    out = capsys.readouterr()
    assert code == 2, out.err[-3000:]
    assert out.err.count("\n") == 1 and out.err.startswith("error: "), out.err[-3000:]
    assert expect.replace("{tmp}", str(tmp_path)) in out.err
    assert not runs.exists()

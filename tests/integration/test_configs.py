"""Every shipped config: a header saying what it trains, the command, the expected result and
time; and a smoke run of a few steps through the real CLI."""
import json
import math
import re
from pathlib import Path

import pytest
from conftest import ROOT, subprocess_env

from zoo import config
from zoo.commands.cli import main

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def test_there_are_configs_and_the_default_exists():
    assert (ROOT / "configs" / "mnist1d_cnn.yaml") in CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_header_says_what_command_expected_and_time(path):
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    text = "\n".join(header)
    assert len(header) >= 3, "start with comments: what it trains, the command, the expected result"
    assert f"python train.py configs/{path.name}" in text
    assert re.search(r"Expected:.*\d", text) and re.search(r"\d+ (s|min|seconds|minutes)\b", text)


QUICK = ["train.steps=2", "train.log_every=1", "train.eval_batches=1", "train.checkpoint_every=0", "run.plots=false"]


def _trained_configs() -> set[str]:
    """The configs the smoke test trains: the first of each (model, data) pair, and every config
    with a path of its own (an example file to make, a run to fine-tune from). The others differ
    from a trained one only in sizes and options: they are built and their steps traced with
    their own shapes (jax.eval_shape), without compiling, which is most of a smoke run's time."""
    seen, trained = set(), set()
    for path in CONFIGS:
        cfg = config.load(path)
        if (cfg.model_name, cfg.data_name) not in seen or cfg.train.init_from or config.example_command(path):
            trained.add(path.stem)
        seen.add((cfg.model_name, cfg.data_name))
    return trained


TRAINED = _trained_configs()


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem not in TRAINED], ids=lambda p: p.stem)
def test_config_builds_and_its_steps_trace_by_name(path, tmp_path, monkeypatch):
    """A config whose (model, data) pair another config trains below: built by name from a folder
    outside the checkout, its train and evaluation steps traced on its own shapes."""
    import jax
    import numpy as np

    from zoo import train
    monkeypatch.chdir(tmp_path)
    program = train.build(config.load(config.config_path(path.stem), QUICK))
    state, metrics = jax.eval_shape(program.train_step(), program.shapes, program.batch,
                                    *program.step_args(np.ones(program.count, bool)))
    assert jax.tree.structure(state) == jax.tree.structure(program.shapes)
    assert metrics["loss"].dtype == np.float32
    batch = next(iter(program.exp.dataset.eval_batches(program.exp.cfg.train.eval_batch_size)))
    sums, _ = jax.eval_shape(program.eval_step(), program.shapes["params"], batch)
    assert "loss" in sums


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem in TRAINED], ids=lambda p: p.stem)
def test_config_first_steps_run_by_name_from_a_folder_outside_the_checkout(path, tmp_path, monkeypatch, capsys):
    """`zoo train NAME` as a user types it after `pip install`, in an empty folder far from the
    checkout (no ../shared beside it): shipped data is found inside the package, example files
    are made as the config's header says, a fine-tuning config's source run is trained first.
    In this process: a subprocess per config would add an interpreter start and imports to each."""
    from zoo.data import examples
    monkeypatch.chdir(tmp_path)
    command = config.example_command(path)
    if command is not None:  # a config that shows reading your own file: one line names the command first
        assert main(["train", path.stem, *QUICK]) == 2
        assert f"python -m zoo.data.examples {' '.join(command)}" in capsys.readouterr().err
        assert examples.main(command) == 0
    cfg = config.load(config.config_path(path.stem))
    if cfg.train.init_from is not None:  # fine-tuning: one line says what to train first; train it
        source = Path(cfg.train.init_from).name
        assert main(["train", path.stem, *QUICK]) == 2
        assert f"train it first (zoo train {source}" in capsys.readouterr().err
        assert main(["train", source, *QUICK]) == 0
    code = main(["train", path.stem, *QUICK])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    summary = json.loads((tmp_path / "runs" / cfg.run.name / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["params"] > 0
    assert isinstance(summary["eval_loss"], float) and math.isfinite(summary["eval_loss"])  # NaN is stored as null
    assert "step=2" in out


def test_the_zoo_command_trains_shakespeare_from_an_empty_folder(tmp_path):
    """The console script itself, as the README's `zoo summary shakespeare_char` and `zoo train
    shakespeare_char` are typed: the text ships with zoo, so no data.path is needed anywhere."""
    import subprocess
    import sys
    zoo = Path(sys.executable).parent / "zoo"
    env = subprocess_env()
    proc = subprocess.run([str(zoo), "train", "shakespeare_char", *QUICK, "data.seq_len=16"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "runs" / "shakespeare_char" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["eval_loss"] < 5  # 65 characters: ln 65 = 4.17 at chance

"""Every shipped config trained by name through the `zoo` command, a few steps each, from a folder
outside the checkout, as a user types it after `pip install`."""
import json
import math
import subprocess
from pathlib import Path

import pytest
from conftest import subprocess_env, zoo_command
from shipped_configs import CONFIGS, QUICK, TRAINED

from zoo import config
from zoo.commands.cli import main


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
    env = subprocess_env()
    proc = subprocess.run([zoo_command(), "train", "shakespeare_char", *QUICK, "data.seq_len=16"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "runs" / "shakespeare_char" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["eval_loss"] < 5  # 65 characters: ln 65 = 4.17 at chance

"""Every shipped config: a header saying what it trains, the command, the expected result and
time; and a smoke run of a few steps through the real CLI."""
import json
import math
import re
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from zoo import config
from zoo.commands.cli import alias

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


def _data_path(path: Path) -> Path | None:
    value = (yaml.safe_load(path.read_text()).get("data") or {}).get("path")
    return (ROOT / value) if value else None


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_smoke_runs_through_the_cli(path, tmp_path, capsys):
    """`zoo train` in this process (a subprocess per config would add an interpreter
    start and imports to each of them)."""
    data = _data_path(path)
    if data is not None and not data.exists():
        pytest.skip(f"{data} is not on this machine")
    cfg = config.load(path)
    overrides = [f"data.path={data}"] if data is not None else []
    quick = ["train.steps=3", "train.log_every=1", "train.eval_batches=1", "train.checkpoint_every=0",
             f"run.dir={tmp_path / 'runs'}", "run.plots=false"]
    if cfg.train.init_from is not None:  # fine-tuning: train the run it starts from first
        source = Path(cfg.train.init_from).name
        assert alias("train", [str(ROOT / "configs" / f"{source}.yaml"), *quick]) == 0
        overrides.append(f"train.init_from={tmp_path / 'runs' / source}")
    code = alias("train", [str(path), *overrides, *quick])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    summary = json.loads((tmp_path / "runs" / cfg.run.name / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["params"] > 0
    assert isinstance(summary["eval_loss"], float) and math.isfinite(summary["eval_loss"])  # NaN is stored as null
    assert "step=3" in out

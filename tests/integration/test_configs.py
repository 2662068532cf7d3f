"""Every shipped config: a header saying what it trains, the command, the expected result and
time; those that tests/e2e/test_shipped_configs.py does not train are built and their steps traced."""
import re

import pytest
from conftest import ROOT
from shipped_configs import CONFIGS, QUICK, TRAINED

from zoo import config


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


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem not in TRAINED], ids=lambda p: p.stem)
def test_config_builds_and_its_steps_trace_by_name(path, tmp_path, monkeypatch):
    """A config whose (model, data) pair another config trains (tests/e2e/test_shipped_configs.py): built by name from a folder
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

"""bench/bench_release.py's arithmetic: the loop's rate leaves out the first window, and a
fine-tuning config is trained from scratch (its source run is not there)."""
from pathlib import Path

import pytest

from bench.bench_release import from_scratch, windowed_rate

CONFIGS = Path(__file__).resolve().parents[2] / "zoo" / "configs"


def test_the_rate_is_steps_over_seconds_of_the_windows_after_the_first():
    records = [{"step": 100, "loss": 1.0, "steps_per_s": 10.0},     # compile and warm-up: left out
               {"step": 100, "eval_loss": 0.9},                     # an evaluation record has no rate
               {"step": 300, "loss": 0.8, "steps_per_s": 100.0},    # 200 steps in 2 s
               {"step": 400, "loss": 0.7, "steps_per_s": 50.0}]     # 100 steps in 2 s
    assert windowed_rate(records) == pytest.approx(300 / 4)


def test_one_window_is_its_own_rate():
    assert windowed_rate([{"step": 50, "steps_per_s": 25.0}]) == pytest.approx(25.0)


def test_a_fine_tuning_config_trains_from_its_own_initialisation():
    assert from_scratch(CONFIGS / "mnist1d_cnn_finetune.yaml") == ["train.init_from=null", "train.init_exclude=null"]
    assert from_scratch(CONFIGS / "mnist1d_cnn.yaml") == []

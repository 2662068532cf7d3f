"""Training on the archives' files and predicting with the run: unequal lengths reach a GRU as
{"x", "lengths"} and zoo predict reads a .ts without classes; a bad file is one line, exit 2;
a timestamped .ts trains ode_rnn (data.task=irregular)."""
import csv
import importlib.util
import json
import math
from pathlib import Path

import pytest
from conftest import SHARED_DATA

from zoo.commands.cli import alias, main

QUICK = ["train.steps=3", "train.log_every=1", "run.plots=false", "train.checkpoint_every=0"]


def japanese_vowels() -> Path:
    """aeon's JapaneseVowels: 9 classes of 12-channel series, 7 to 29 steps long."""
    spec = importlib.util.find_spec("aeon")
    if spec is None:
        pytest.skip("aeon is not installed (pip install -e '.[test]')")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "JapaneseVowels"


def test_unequal_lengths_train_a_gru_and_predict_reads_series_without_classes(tmp_path, capsys):
    data = japanese_vowels()
    run = ["model.name=gru", "model.hidden_size=8", "data.name=timeseries", f"data.path={data}",
           "data.standardize=channel", "train.batch_size=16", f"run.dir={tmp_path}", "run.name=jv", *QUICK]
    assert alias("train", run) == 0, capsys.readouterr().err[-2000:]
    lines = (data / "JapaneseVowels_TEST.ts").read_text().split("@data")[1].strip().splitlines()
    unlabelled = tmp_path / "new.ts"   # the test series with their classes cut off
    unlabelled.write_text("@classLabel false\n@data\n" + "\n".join(line.rsplit(":", 1)[0] for line in lines[:5]))
    out = tmp_path / "p.csv"
    assert main(["predict", str(tmp_path / "jv"), "--input", str(unlabelled), "--output", str(out)]) == 0
    assert "wrote 5 predictions" in capsys.readouterr().out
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and rows[0]["class_name"] in [str(k) for k in range(1, 10)]


@pytest.mark.parametrize("config", ["arrowhead_fcn", "arrowhead_transformer"])
def test_a_model_of_one_length_refuses_unequal_lengths_in_one_line(tmp_path, capsys, config):
    """A CNN or a Transformer given series of unequal lengths stops before anything is built,
    naming the models that take lengths, instead of failing inside its own code."""
    code = main(["train", config, f"data.path={japanese_vowels()}", f"run.dir={tmp_path}", *QUICK])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "unequal lengths" in err and "model.name=deepsets or gru or lstm or rnn" in err
    assert not any(tmp_path.iterdir())   # no run directory


def test_a_shipped_dataset_trains_and_a_truncated_input_is_one_line(tmp_path, capsys):
    gunpoint = SHARED_DATA / "ucr" / "GunPoint"
    run = ["model.name=cnn", "model.strides=[1]", "model.readout=mean", "data.name=timeseries",
           f"data.path={gunpoint / 'GunPoint_TRAIN.ts'}", "train.batch_size=10", f"run.dir={tmp_path}", "run.name=gp",
           *QUICK]
    assert alias("train", run) == 0, capsys.readouterr().err[-2000:]
    short = tmp_path / "short.ts"
    short.write_text("@classLabel false\n@data\n" + ",".join(["0.5"] * 100) + "\n")
    code = main(["predict", str(tmp_path / "gp"), "--input", str(short), "--output", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "short.ts" in err and "series of 150" in err


def _stamped_file(path: Path, cases: int, seed: int) -> None:
    """Periodic series at random date-times, 5 to 9 points each: a timestamped .ts."""
    import numpy as np
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(cases):
        minutes = np.sort(rng.choice(600, rng.integers(5, 10), replace=False))
        f = rng.uniform(0.4, 0.8)
        rows.append(",".join(f"(2024-05-01T{m // 60:02d}:{m % 60:02d}:00,{np.sin(f * m / 60):.4f})" for m in minutes))
    path.write_text("@problemName Stamped\n@timeStamps true\n@classLabel false\n@data\n" + "\n".join(rows) + "\n")


def test_a_timestamped_file_trains_ode_rnn_and_predict_refuses_in_one_line(tmp_path, capsys):
    _stamped_file(tmp_path / "S_TRAIN.ts", 12, 0)
    _stamped_file(tmp_path / "S_TEST.ts", 5, 1)
    run = ["periodic_ode_rnn", "data.name=timeseries", f"data.path={tmp_path / 'S_TRAIN.ts'}", "data.task=irregular",
           "data.time_unit=hours", "train.batch_size=4", "train.eval_batch_size=5", "train.eval_every=3",
           f"run.dir={tmp_path}", "run.name=s", *QUICK]
    assert main(["train", *run]) == 0, capsys.readouterr().err[-2000:]
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["steps"] == 3 and all(math.isfinite(summary[k]) for k in ("eval_interp_mse", "eval_extrap_mse"))
    pre = json.loads((tmp_path / "s" / "preprocessing.json").read_text())
    assert pre["task"] == "irregular" and pre["timestamps"] == "date-time" and pre["input_shape"] == [9, 1]
    capsys.readouterr()
    code = main(["predict", str(tmp_path / "s"), "--input", str(tmp_path / "S_TEST.ts"), "--output",
                 str(tmp_path / "p.csv")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "zoo evaluate" in err

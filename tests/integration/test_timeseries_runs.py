"""Training on the archives' files and predicting with the run: unequal lengths reach a GRU as
{"x", "lengths"} and zoo predict reads a .ts without classes; a bad file is one line, exit 2."""
import csv
import importlib.util
from pathlib import Path

import pytest
from conftest import SHARED_DATA

from zoo.commands.cli import alias, main

QUICK = ["train.steps=3", "train.log_every=1", "run.plots=false", "train.checkpoint_every=0"]


def test_unequal_lengths_train_a_gru_and_predict_reads_series_without_classes(tmp_path, capsys):
    spec = importlib.util.find_spec("aeon")
    if spec is None:
        pytest.skip("aeon is not installed (pip install -e '.[test]')")
    data = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "JapaneseVowels"
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

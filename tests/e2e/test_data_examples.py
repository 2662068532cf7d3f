"""Every shipped config for user data runs on the file that the command in its header
(`python -m zoo.data.examples KIND PATH`) makes."""
import json
import math
import subprocess
import sys

import pytest
from conftest import ROOT

from zoo import config
from zoo.commands.cli import alias

CONFIGS = {"digits_folder_cnn": "digits-png", "wine_csv_mlp": "wine-csv", "breast_cancer_csv_mlp": "breast-cancer-csv",
           "mnist1d_npz_cnn": "mnist1d-npz", "graphs_npz_gin": "graphs-npz"}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_shipped_user_data_config_runs_on_the_file_its_header_makes(tmp_path, capsys, name):
    path = ROOT / "configs" / f"{name}.yaml"
    header = path.read_text().split("\nmodel:")[0]
    kind = CONFIGS[name]
    stored = config.load(path).data.path
    assert f"python -m zoo.data.examples {kind} {stored}" in header
    made = tmp_path / stored
    subprocess.run([sys.executable, "-m", "zoo.data.examples", kind, str(made)], check=True, cwd=ROOT,
                   capture_output=True)
    cache = [f"data.cache_dir={tmp_path / 'cache'}"] if kind == "digits-png" else []
    code = alias("train", [str(path), f"data.path={made}", *cache, "train.steps=3", "train.log_every=1", "train.eval_batches=1",
                 f"run.dir={tmp_path / 'runs'}", f"run.name={name}", "run.plots=false"])
    assert code == 0, capsys.readouterr().err[-2000:]
    summary = json.loads((tmp_path / "runs" / name / "summary.json").read_text())
    assert summary["steps"] == 3 and isinstance(summary["eval_loss"], float) and math.isfinite(summary["eval_loss"])

"""The vision models from a user's folder of PNG files, through the commands: `zoo train` reads the
folder, `zoo export` writes an artifact that computes what the model does."""
import json

import numpy as np
import pytest
from conftest import ROOT

from zoo import export
from zoo.commands.cli import alias
from zoo.data import examples
from zoo.experiment import load_run

QUICK = ["train.steps=3", "train.log_every=1", "train.eval_batches=1", "train.eval_batch_size=40",
         "train.checkpoint_every=0", "run.plots=false"]


@pytest.mark.parametrize("name", ["vit", "mixer"])
def test_trains_from_a_png_folder_and_exports_through_the_cli(name, tmp_path, monkeypatch):
    examples.digits_png(tmp_path / "digits")
    monkeypatch.chdir(tmp_path)
    assert alias("train", [str(ROOT / "configs" / f"digits_{name}.yaml"), "data.name=image_folder",
                           "data.path=digits", f"data.cache_dir={tmp_path / 'cache'}", "run.dir=runs",
                           f"run.name={name}", *QUICK]) == 0
    run = load_run(tmp_path / "runs" / name)
    assert run.exp.dataset.preprocessing["class_names"] == [str(d) for d in range(10)]
    assert alias("export", [str(tmp_path / "runs" / name)]) == 0
    manifest = json.loads((tmp_path / "runs" / name / "export" / "model.jaxexport.json").read_text())
    assert manifest["model"] == name and manifest["symbolic_dims"].startswith("b")
    x = export.example_inputs(run)
    got = export.load(tmp_path / "runs" / name / "export" / "model.jaxexport").call(x[:3])
    np.testing.assert_allclose(got, run.model.apply(run.params, x[:3]), atol=1e-5)

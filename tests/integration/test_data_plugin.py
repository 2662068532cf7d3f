"""data.name="package.module:function": the user's own dataset, its parameters typed as the
data section's keys, trained, resumed and reloaded from the run's config; each mistake one line."""
import re
import sys

import numpy as np
import pytest

from zoo import config, train
from zoo import experiment as ex
from zoo.commands.cli import alias
from zoo.data import DATASETS, entry

MODULE = '''
from typing import Literal

import numpy as np

from zoo.data import ArrayDataset, dataset


@dataset
def blobs(n: int = 200, centers: list[float] = [0.0, 4.0], noise: Literal["low", "high"] = "low", seed: int = 0):
    """Gaussian blobs in 3-D, one per centre."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(centers), n).astype(np.int32)
    scale = 0.5 if noise == "low" else 2.0
    x = (scale * rng.standard_normal((n, 3)) + np.array(centers, np.float32)[y, None]).astype(np.float32)
    return ArrayDataset(task="classification", model_defaults={"num_outputs": len(centers)},
                        preprocessing={"centers": list(centers)},
                        train={"x": x[:150], "y": y[:150]}, test={"x": x[150:], "y": y[150:]})


@dataset
def needs(size: int):
    return blobs(size)


@dataset
def a_list():
    return [1, 2]


@dataset
def odd_task():
    ds = blobs()
    ds.task = "telepathy"
    return ds


@dataset
def odd_type(where: bytes = b""):
    return blobs()


@dataset
def ragged():
    ds = blobs()
    ds.train["y"] = ds.train["y"][:-1]
    return ds


@dataset
def beyond():
    ds = blobs()
    ds.test["y"] = ds.test["y"] + 5
    return ds


@dataset
def nans():
    ds = blobs()
    ds.train["x"][7, 1] = np.nan
    return ds


def touch(path: str = "ran"):
    """Not marked as a dataset: never called."""
    open(path, "w").close()
    return blobs()
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A module of datasets in the current directory, under a name no other test imports."""
    name = f"user_data_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    (tmp_path / "broken.py").write_text("def f(:\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield name
    sys.modules.pop(name, None)


def test_the_signature_is_the_config_and_the_run_resumes_from_its_stored_config(tmp_path, plugin):
    run = ["model.name=mlp", "model.width=16", f"data.name={plugin}:blobs", "data.centers=[0.0, 4.0, 8.0]",
           "train.steps=40", "train.batch_size=30", "optimizer.learning_rate=0.01", "train.log_every=20",
           "train.checkpoint_every=20",
           f"run.dir={tmp_path / 'runs'}", "run.name=p", "run.plots=false"]
    cfg = config.load(None, run)
    assert cfg.data.centers == (0.0, 4.0, 8.0) and cfg.data.noise == "low" and cfg.data_name == f"{plugin}:blobs"
    assert f"{plugin}:blobs" not in DATASETS and entry(f"{plugin}:blobs").description == "Gaussian blobs in 3-D, one per centre."
    summary = train.fit(cfg)
    assert summary["eval_accuracy"] > 0.9
    stored = config.load(tmp_path / "runs" / "p" / "config.yaml")
    assert stored.data == cfg.data and stored.model.num_outputs == 3
    assert alias("train", ["--resume", str(tmp_path / "runs" / "p"), "train.steps=60"]) == 0
    exp = ex.build(config.load(tmp_path / "runs" / "p" / "config.yaml"))
    assert exp.dataset.preprocessing == {"centers": [0.0, 4.0, 8.0]}
    assert (tmp_path / "runs" / "p" / "checkpoints" / "60").is_dir()


@pytest.mark.parametrize("name, extra, message", [
    ("nowhere_module:f", [], "cannot import 'nowhere_module' \\(ModuleNotFoundError"),
    ("broken:f", [], "cannot import 'broken' \\(SyntaxError"),
    ("{m}:missing", [], "has no function 'missing'"),
    ("{m}:a_list", [], "returned list, not a zoo.data.Dataset"),
    ("{m}:odd_task", [], "task 'telepathy'; valid tasks"),
    ("{m}:odd_type", [], "parameter 'where': annotation .*bytes.* is not a config type"),
    ("{m}:needs", [], "data.size is required"),
    ("{m}:blobs", ["data.noise=medium"], "data.noise: expected 'low' \\| 'high', got 'medium'"),
    ("{m}:blobs", ["data.sead=1"], "data.sead: unknown key .*did you mean 'data.seed'"),
    ("{m}:", [], "write a dataset of your own as 'package.module:function'"),
    ("{m}:ragged", [], "the inputs \\(train x\\) have 150 rows but the labels \\(train y\\) have 149"),
    ("{m}:beyond", [], "test y row 0 is class [5-6], but the model has 2 outputs"),
    ("{m}:nans", [], "train x row 7 has a NaN"),
    ("{m}:touch", [], "'touch' is not marked as a zoo dataset; zoo calls only functions marked as datasets"),
    ("os:system", ["data.command='touch ran'"], "'os' is a standard-library module, not a dataset"),
])
def test_plugin_mistakes_are_one_line_exit_2_and_no_run_directory(tmp_path, capsys, plugin, name, extra, message):
    code = alias("train", ["model.name=mlp", f"data.name={name.format(m=plugin)}", *extra, f"run.dir={tmp_path / 'runs'}",
                 "train.steps=2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "ran").exists()


def test_unknown_names_mention_the_plugin_form():
    with pytest.raises(config.ConfigError, match="or 'package.module:function' for your own"):
        config.load(None, ["model.name=mlp", "data.name=mnsit1d"])


def test_the_function_sees_tuples_for_lists_and_its_defaults(plugin):
    found = entry(f"{plugin}:blobs")
    defaults = found.config()
    assert defaults.centers == (0.0, 4.0) and defaults.n == 200
    ds = found.load(defaults)
    assert ds.model_defaults == {"num_outputs": 2} and np.asarray(ds.train["x"]).shape == (150, 3)


def test_an_entry_point_registers_an_unmarked_function(tmp_path, plugin, monkeypatch):
    """A package that declares `[zoo.datasets]` entry points (here: an installed distribution's
    metadata on sys.path) makes its functions callable without the decorator."""
    (tmp_path / f"{plugin}.py").write_text(MODULE.replace("@dataset\ndef blobs", "def blobs"))
    name = f"{plugin}:blobs"
    with pytest.raises(config.ConfigError, match="'blobs' is not marked as a zoo dataset"):
        entry(name)
    info = tmp_path / "site" / "user_data-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: user-data\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[zoo.datasets]\nblobs = {name}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert entry(name).load(entry(name).config()).model_defaults == {"num_outputs": 2}

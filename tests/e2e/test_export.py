"""zoo export: a trained run as a jax.export artifact that a process without zoo (jax and numpy
only) loads and runs to the outputs of `model.apply`, for one model of every array family."""
import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import subprocess_env

from zoo import config, export, train
from zoo.commands import cli
from zoo.errors import ConfigError
from zoo.experiment import load_run

TINY = ["train.steps=1", "train.batch_size=8", "train.eval_batch_size=8", "train.eval_batches=1",
        "train.log_every=1", "run.plots=false"]
FAMILIES = {
    "mlp": ["model.name=mlp", "model.width=16", "data.name=mnist1d"],
    "cnn": ["model.name=cnn", "model.channels=[4,4]", "model.kernel_sizes=[3,3]", "model.strides=[2,2]",
            "data.name=mnist1d"],
    # BatchNorm's running statistics (the model's state) go into the artifact with the params
    "cnn_batchnorm": ["model.name=cnn", "model.channels=[4,4]", "model.kernel_sizes=[3,3]", "model.strides=[2,2]",
                      "model.norm=batch", "model.norm_momentum=0.5", "data.name=mnist1d"],
    "gru": ["model.name=gru", "model.hidden_size=8", "data.name=mnist1d", "data.format=sequence"],
    "transformer": ["model.name=transformer", "model.size=tiny", "model.d_model=16", "model.num_layers=1",
                    "model.num_heads=2", "model.positions=learned", "model.pooling=cls", "data.name=mnist1d",
                    "data.format=patches", "data.patch_size=4"],
    "gpt": ["model.name=gpt", "model.size=tiny", "model.d_model=16", "model.num_layers=1", "model.num_heads=2",
            "data.name=text", "data.seq_len=16"],
    "odenet": ["model.name=odenet", "model.channels=8", "model.num_groups=4", "model.solver=euler",
               "model.dt0=1.0", "data.name=mnist1d"],
    "gcn": ["model.name=gcn", "model.hidden_sizes=[8]", "data.name=karate"],
}
# what each family's export is expected to take: which dims are symbolic
SYMBOLIC = {"mlp": "b", "cnn": "b", "gru": "b, t", "transformer": "b, t, t <= 10", "gpt": "b, t, t <= 16"}

# runs in a fresh interpreter: jax and numpy only, never zoo
SERVE = """
import sys, numpy as np, jax
exported = jax.export.deserialize(bytearray(open(sys.argv[1], "rb").read()))
inputs = np.load(sys.argv[2], allow_pickle=False)
outputs = {name: np.asarray(exported.call(inputs[name])) for name in inputs.files}
assert "zoo" not in sys.modules, "the artifact must load without zoo"
np.savez(sys.argv[3], **outputs)
"""


def fit(root, name, overrides=()):
    train.fit(config.load(None, [*FAMILIES[name], *TINY, f"run.dir={root}", f"run.name={name}", *overrides]))
    return load_run(root / name)


@pytest.fixture(scope="module")
def trained(request, tmp_path_factory):
    """A run of FAMILIES[name] trained for one step, shared by the tests that ask for `name`."""
    return fit(tmp_path_factory.mktemp("runs"), request.param)


def families(*names):
    return pytest.mark.parametrize("trained", names, indirect=True)


def variants(run, manifest) -> dict[str, np.ndarray]:
    """The eval batch, and where dims are symbolic, fewer rows and a shorter sequence."""
    x = export.example_inputs(run)
    out = {"eval_batch": x}
    if manifest["symbolic_dims"].startswith("b"):
        out["three_rows"] = x[:3]
    if manifest["symbolic_dims"].startswith("b, t"):
        out["shorter"] = x[:3, :x.shape[1] - 3]
    return out


def serve_without_zoo(artifact, inputs: dict, tmp_path) -> dict:
    np.savez(tmp_path / "inputs.npz", **inputs)
    env = {k: v for k, v in subprocess_env().items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", SERVE, str(artifact), str(tmp_path / "inputs.npz"),
                           str(tmp_path / "outputs.npz")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(np.load(tmp_path / "outputs.npz"))


@families("mlp", "cnn", "cnn_batchnorm", "gru", "transformer", "gpt", "odenet")
def test_artifact_matches_apply_in_a_fresh_process_without_zoo(trained, tmp_path):
    run, name = trained, trained.cfg.model_name
    paths = export.write(run)
    assert paths["artifact"] == run.run_dir / "export" / "model.jaxexport"
    manifest = json.loads(paths["manifest"].read_text())
    assert (manifest["model"], manifest["step"], manifest["jax_version"]) == (name, 1, jax.__version__)
    assert manifest["symbolic_dims"].startswith(SYMBOLIC.get(name, "none"))
    inputs = variants(run, manifest)
    outputs = serve_without_zoo(paths["artifact"], inputs, tmp_path)
    for key, x in inputs.items():
        np.testing.assert_allclose(outputs[key], run.model.apply(run.params, x), atol=1e-5, err_msg=key)
    if name == "odenet":
        assert "function evaluations" in manifest["notes"][0]


@families("gru", "transformer")
def test_params_as_inputs_are_saved_beside_by_path(trained, tmp_path):
    run = trained
    paths = export.write(run, tmp_path / "m.jaxexport", params_as_inputs=True)
    params = dict(np.load(paths["params"], allow_pickle=False))
    assert set(params) == set(export.param_arrays(run)) and any("/" in k for k in params)
    x = export.example_inputs(run)[:2]
    got = export.load(paths["artifact"]).call(params, x)
    np.testing.assert_allclose(got, run.model.apply(run.params, x), atol=1e-5)
    assert json.loads(paths["manifest"].read_text())["call"] == "exported.call(params, x)"


@families("mlp")
def test_fixed_batch_and_the_command_line(trained, tmp_path):
    run = trained
    out = tmp_path / "sub" / "fixed.jaxexport"
    assert cli.main(["export", str(run.run_dir), "--output", str(out), "--fixed-batch"]) == 0
    manifest = json.loads(out.with_name("fixed.jaxexport.json").read_text())
    assert manifest["inputs"] == [{"name": "x", "shape": [8, 40], "dtype": "float32"}]
    assert manifest["output"]["shape"] == [8, 10] and manifest["class_names"] is None


@families("gcn")
def test_graph_models_take_the_padded_arrays_by_name(trained):
    run = trained
    blob, manifest = export.export_run(run)
    graph = export.example_inputs(run)
    names = {i["name"] for i in manifest["inputs"]}
    assert names == {"nodes", "senders", "receivers", "n_node", "n_edge"}
    assert manifest["symbolic_dims"].startswith("none") and "padded GraphsTuple" in manifest["notes"][0]
    got = jax.export.deserialize(bytearray(blob)).call(export.named_inputs(graph))
    np.testing.assert_allclose(got, run.model.apply(run.params, graph), atol=1e-5)


@families("mlp", "gcn")
def test_stored_standardisation_is_applied_inside_the_artifact(trained):
    """A run whose data stored {"standardize": {"mean", "std"}} exports a function of raw inputs."""
    run = trained
    mean, std = np.linspace(-1, 1, 40, dtype=np.float32), np.linspace(0.5, 2, 40, dtype=np.float32)
    run.exp.dataset.preprocessing = {"standardize": {"mean": mean, "std": std}}
    try:
        if run.cfg.model_name == "gcn":
            with pytest.raises(ConfigError, match="cannot be exported"):
                export.write(run)
            assert not (run.run_dir / "export").exists()   # nothing written
            return
        blob, manifest = export.export_run(run)
    finally:
        del run.exp.dataset.preprocessing
    raw = np.random.default_rng(0).normal(size=(5, 40)).astype(np.float32)
    got = jax.export.deserialize(bytearray(blob)).call(raw)
    np.testing.assert_allclose(got, run.model.apply(run.params, (raw - mean) / std), atol=1e-5)
    assert manifest["preprocessing_inside"] == ["standardize"] and manifest["preprocessing"]["standardize"]["std"][0] == 0.5


def test_a_directory_that_is_not_a_run_is_one_line_and_exit_2(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path), "--output", str(tmp_path / "m.jaxexport")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "not a run directory" in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []

"""A trained run in use: evaluate equals the summary, predict, fine-tune, discovery."""
import json

import jax
import numpy as np
import pytest
from conftest import ROOT

from zoo import experiment as ex
from zoo import inference
from zoo.commands.cli import main

FAST = {  # shipped configs, shortened: the equality is the point, not the accuracy
    "mnist1d_mlp": ["train.steps=20"],
    "mnist1d_cnn": ["train.steps=20", "train.select=val_loss", "data.val_size=500", "train.eval_every=5"],
    "digits_cnn": ["train.steps=20"],
    "karate_gcn": ["train.steps=20"],
    "graph_cycles_gin": ["train.steps=10", "data.num_test=64", "train.eval_batch_size=64"],
    "cora_gcn": ["train.steps=20"],
}


def train(tmp_path, name, *overrides):
    code = main(["train", name, *overrides, f"run.dir={tmp_path}", "run.plots=false", "train.log_every=1000"])
    assert code == 0
    return tmp_path / name


@pytest.mark.parametrize("name", sorted(FAST))
def test_evaluate_equals_the_summary_exactly(tmp_path, name, capsys):
    run_dir = train(tmp_path, name, *FAST[name])
    summary = json.loads((run_dir / "summary.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(run_dir)]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads(next((run_dir / "evaluation").glob("test-step*.json")).read_text())
    assert printed == written
    for key in ("eval_loss", "eval_accuracy"):
        if key in summary:
            assert printed[key] == summary[key], key


def test_evaluate_a_step_and_the_validation_split(tmp_path, capsys):
    run_dir = train(tmp_path, "mnist1d_mlp", "train.steps=20", "train.checkpoint_every=10", "data.val_size=500")
    early = inference.evaluate(ex.load_run(run_dir, step=10), "val")
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--step", "10", "--split", "val"]) == 0
    assert json.loads(capsys.readouterr().out)["val_loss"] == early["val_loss"]
    assert main(["evaluate", str(run_dir), "--step", "7"]) == 2
    assert "no checkpoint of step 7; it has steps 10, 20" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path)]) == 2    # not a run
    assert not (tmp_path / "evaluation").exists()


def test_the_training_split_is_every_training_example_in_eval_mode(tmp_path, capsys):
    """--split train: the loss of He et al.'s degradation plots, over all 4000 examples (not
    the last training batch), without dropout."""
    run_dir = train(tmp_path, "mnist1d_mlp", "train.steps=20", "model.dropout_rate=0.5", "train.eval_batch_size=512")
    run = ex.load_run(run_dir)
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--split", "train"]) == 0
    printed = json.loads(capsys.readouterr().out)
    data = run.exp.dataset.train
    logits = run.model.apply(run.params, data["x"])
    nll = -np.take_along_axis(np.asarray(jax.nn.log_softmax(logits)), data["y"][:, None], 1).mean()
    np.testing.assert_allclose(printed["train_loss"], nll, rtol=1e-5)
    assert printed["train_accuracy"] == pytest.approx(np.mean(np.argmax(np.asarray(logits), -1) == data["y"]))
    assert "eval_loss" not in printed
    assert main(["evaluate", str(train(tmp_path, "karate_gcn", "train.steps=2")), "--split", "train"]) == 2
    assert "does not hold its training examples in memory" in capsys.readouterr().err


def test_predict_writes_classes_and_probabilities(tmp_path, capsys):
    run_dir = train(tmp_path, "mnist1d_mlp", "train.steps=30")
    run = ex.load_run(run_dir)
    test_x = run.exp.dataset.test["x"]
    x = np.concatenate([test_x, test_x[:234]])              # 1234 rows: not a multiple of the eval batch
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", str(run_dir), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "p.npz")]) == 0
    with np.load(tmp_path / "p.npz") as p:
        logits = np.asarray(jax.jit(run.model.apply)(run.params, x))
        np.testing.assert_array_equal(p["class"], logits.argmax(-1))
        np.testing.assert_allclose(p["probabilities"], jax.nn.softmax(logits, -1), rtol=1e-5, atol=1e-6)
    assert main(["predict", str(run_dir), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "p.csv")]) == 0
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0].startswith("class,probabilities_0,") and len(rows) == 1 + 1234
    np.save(tmp_path / "bad.npy", x[:, :30])
    capsys.readouterr()
    assert main(["predict", str(run_dir), "--input", str(tmp_path / "bad.npy"), "--output", str(tmp_path / "q.npz")]) == 2
    assert "trained on [40]" in capsys.readouterr().err and not (tmp_path / "q.npz").exists()


def test_finetune_moves_a_trunk_to_a_relabelled_task(tmp_path, capsys):
    source = train(tmp_path, "mnist1d_cnn", "train.steps=30")
    parity = ["data.label_map=[0,1,0,1,0,1,0,1,0,1]", "data.train_size=400", "run.name=parity"]
    capsys.readouterr()
    assert main(["train", "mnist1d_cnn", *parity, f"train.init_from={source}", f"run.dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "head/bias is [10] there, [2] here" in err and "train.init_exclude" in err
    assert not (tmp_path / "parity").exists()
    train(tmp_path, "mnist1d_cnn", *parity, "train.steps=5", f"train.init_from={source}",
          "train.init_exclude=^head/", "optimizer.freeze=^blocks/0/")
    before, after = ex.load_run(source).params, ex.load_run(tmp_path / "parity").params
    np.testing.assert_array_equal(after["blocks"][0]["conv"]["kernel"], before["blocks"][0]["conv"]["kernel"])
    assert not np.array_equal(after["blocks"][1]["conv"]["kernel"], before["blocks"][1]["conv"]["kernel"])
    assert after["head"]["kernel"].shape == (before["head"]["kernel"].shape[0], 2)


def test_discovery_lists_what_exists(capsys):
    for kind, name in [("models", "gpt"), ("datasets", "mnist1d"), ("optimizers", "adamw"), ("configs", "cora_gcn")]:
        assert main(["list", kind]) == 0
        assert any(line.startswith(name + " ") for line in capsys.readouterr().out.splitlines())
    assert main(["train", "--help-config", "model=gpt"]) == 0
    out = capsys.readouterr().out
    assert "model.vocab_size: int or null = None  # None: taken from the dataset" in out
    assert main(["train", "--help-config", "model=gtp"]) == 2


def in_a_fresh_python(tmp_path, script: str) -> None:
    """Run `script` in a new interpreter (a clean sys.modules) and fail with its stderr."""
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_text_commands_do_not_import_jax(tmp_path):
    """`zoo --help`, `zoo list models|datasets|configs` and `--help-config` of a section or a
    dataset only print text: they answer without importing jax (seconds of a 2-core machine)."""
    script = ("import contextlib, io, sys\n"
              "from zoo.commands.cli import main\n"
              "for argv in (['--help'], ['list', 'models'], ['list', 'datasets'], ['list', 'configs'],\n"
              "             ['train', '--help-config', 'train'], ['train', '--help-config', 'data=text']):\n"
              "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
              "        try:\n"
              "            main(argv)\n"
              "        except SystemExit:\n"
              "            pass\n"
              "    assert out.getvalue().strip(), argv\n"
              "    assert 'jax' not in sys.modules, (argv, 'imported jax')\n")
    in_a_fresh_python(tmp_path, script)


def test_orbax_is_imported_by_what_reads_or_writes_checkpoints_only(tmp_path):
    """orbax's import (0.15-0.35 s) is paid where checkpoints are made or read: the trainer
    imports it in a thread while XLA compiles its step, and a module import alone never does."""
    script = ("import sys\n"
              "import zoo.train, zoo.experiment, zoo.commands.summary, zoo.commands.compile\n"
              "assert 'orbax.checkpoint' not in sys.modules\n"
              "from zoo import checkpoint\n"
              "checkpoint.orbax().CheckpointManagerOptions\n"
              "assert 'orbax.checkpoint' in sys.modules\n")
    in_a_fresh_python(tmp_path, script)


def test_shipped_configs_resolve_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "mnist1d_mlp", "--print-config"]) == 0
    assert "name: mlp" in capsys.readouterr().out
    assert (ROOT / "zoo" / "configs" / "mnist1d_mlp.yaml").is_file()

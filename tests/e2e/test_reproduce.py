"""The results table is written from real training runs, never by hand."""
import json

import jax
import pytest
from conftest import ROOT

from zoo.commands import reproduce


def test_reproduce_trains_and_writes_the_table(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # reproduce runs from the repository root; restored afterwards
    args = ["karate_gcn", "--out", str(tmp_path), "--no-readme", "--set", "train.steps=20", "run.plots=false"]
    assert reproduce.main(args) == 0
    (row,) = json.loads((tmp_path / "results.json").read_text())
    summary = json.loads((tmp_path / "runs" / "karate_gcn-seed0" / "summary.json").read_text())
    assert row["config"] == "karate_gcn" and row["values"] == [summary["eval_accuracy"]]
    assert row["steps"] == 20 and row["params"] == summary["params"]
    assert row["device"] == jax.devices()[0].device_kind   # the table names it where it is not the CPU
    assert f"| karate_gcn | eval_accuracy | {100 * summary['eval_accuracy']:.1f}%" in (tmp_path / "results.md").read_text()
    assert reproduce.main(["--out", str(tmp_path), "--no-readme", "--table-only"]) == 0   # trains nothing
    assert json.loads((tmp_path / "results.json").read_text()) == [row]


def test_a_probed_metric_comes_from_the_probe_on_the_trained_run(tmp_path):
    """The HNN rows' energy MSE is measured by zoo.probes.conservation on the trained run."""
    from zoo import config
    from zoo.train import fit

    cfg = config.load(ROOT / "configs" / "mass_spring_hnn.yaml",
                      ["train.steps=20", "run.plots=false", f"run.dir={tmp_path}", "run.name=r"])
    fit(cfg)
    (value,) = reproduce.probed(str(tmp_path / "r"), "energy_mse")
    assert value == json.loads((tmp_path / "r" / "probes" / "conservation.json").read_text())["energy_mse"] > 0
    assert "e-" in reproduce._fmt(3.9e-5, "energy_mse") and reproduce._fmt(0.0123, "eval_mse") == "0.0123"


def test_a_training_loss_row_is_every_seed_on_the_whole_training_set(tmp_path, monkeypatch):
    """The degradation rows' metric: each seed's params evaluated on all training examples."""
    from zoo import inference
    from zoo.experiment import load_runs

    monkeypatch.chdir(ROOT)
    args = ["mnist1d_plain8", "--out", str(tmp_path), "--no-readme", "--set", "train.steps=5", "model.channels=[4,4]",
            "model.num_groups=2", "run.plots=false"]
    assert reproduce.main(args) == 0
    (row,) = json.loads((tmp_path / "results.json").read_text())
    runs = load_runs(tmp_path / "runs" / "mnist1d_plain8-seeds0-2")
    assert row["metric"] == "train_loss" and row["seeds"] == 3 == len(runs)
    assert row["values"] == [inference.evaluate(run, "train")["train_loss"] for run in runs]
    assert len(set(row["values"])) == 3   # three seeds, three networks


def test_a_further_metric_is_its_own_row_and_the_anode_figure_reads_the_runs(tmp_path, monkeypatch):
    """The ANODE rows report the NFE of the same runs (reproduce.ALSO) beside the loss; the
    figure command draws both runs' paths and their training NFE from them."""
    from zoo.figures import anode

    monkeypatch.chdir(ROOT)
    args = ["g1d_node", "--out", str(tmp_path), "--no-readme", "--set", "train.steps=4", "train.log_every=1",
            "run.plots=false"]
    assert reproduce.main(args) == 0
    (row,) = json.loads((tmp_path / "results.json").read_text())
    run_dir = tmp_path / "runs" / "g1d_node-seeds0-2"
    summary = json.loads((run_dir / "summary.json").read_text())
    mean, _ = row["also"]["eval_nfe"]
    assert mean == summary["eval_nfe"] > 0 and row["seeds"] == 3
    assert f"| g1d_node | eval_nfe | {mean:.1f} ± " in (tmp_path / "results.md").read_text()
    steps, nfe = anode.nfe_curves(run_dir)
    assert list(steps) == [1, 2, 3, 4] and nfe.shape == (4, 3)
    with pytest.raises(SystemExit, match="2"):   # the second run has no extra dimension to draw
        anode.main([str(run_dir), str(run_dir), "--out", str(tmp_path / "a.png")])
    from zoo import config
    from zoo.figures import after_training
    from zoo.train import fit
    cfg = config.load(ROOT / "configs" / "g1d_anode.yaml", ["train.steps=2", f"run.dir={tmp_path}", "run.name=a"])
    fit(cfg, hooks=after_training(cfg))
    assert (tmp_path / "a" / "trajectories.png").is_file()   # the run's own figure hook
    assert anode.main([str(run_dir), str(tmp_path / "a"), "--out", str(tmp_path / "a.png")]) == 0
    assert (tmp_path / "a.png").stat().st_size > 10_000

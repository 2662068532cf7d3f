"""Many models at once (zoo.replicas): N seeds or a small sweep trained as one vmapped program
give each replica the result of its own separate run; selection, early stopping, checkpoints,
resume, load_run(replica=i), zoo evaluate and a seeds mesh axis work on the stacked run."""
import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import ROOT, SHARED_DATA, subprocess_env

from zoo import config, replicas, train
from zoo import experiment as ex
from zoo.commands import evaluate as evaluate_cmd
from zoo.errors import ConfigError

SMALL = ["model.name=mlp", "model.width=32", "model.dropout_rate=0.1", "data.name=mnist1d", "train.batch_size=50",
         "train.eval_batch_size=500", "train.steps=30", "train.log_every=10", "run.plots=false"]


def cfg(tmp_path, *overrides, name="t"):
    return config.load(None, [*SMALL, f"run.dir={tmp_path}", f"run.name={name}", *overrides])


@pytest.mark.parametrize("shipped", [None, "mnist1d_cnn", "mnist1d_gru", "karate_gcn"])
def test_init_and_batches_are_each_seeds_own_bit_for_bit(tmp_path, shipped):
    def load(*overrides):
        if shipped is None:
            return cfg(tmp_path, *overrides)
        return config.load(ROOT / "configs" / f"{shipped}.yaml", [f"run.dir={tmp_path}", *overrides])
    stack = train.build(load("train.seeds=[0,3]"))
    state = stack.init_state()
    shared, batch = replicas.host_batches(stack.replicas, 7)
    assert shared == (shipped == "karate_gcn")  # a whole graph is every replica's batch
    for i, seed in enumerate([0, 3]):
        one = ex.build(load(f"train.seed={seed}"))
        alone, _ = ex.init_state(one)
        jax.tree.map(lambda a, b, i=i: np.testing.assert_array_equal(np.asarray(a)[i], np.asarray(b)), state, alone)
        jax.tree.map(lambda a, b, i=i: np.testing.assert_array_equal(a if shared else a[i], b), batch, ex.host_batch(one, 7))


@pytest.fixture(scope="module")
def stacked(tmp_path_factory):
    """Seeds 0 and 3 as one stacked run, and seed 3 alone: (run directory root, their summaries)."""
    root = tmp_path_factory.mktemp("stacked")
    return root, train.fit(cfg(root, "train.seeds=[0,3]", name="stacked")), train.fit(cfg(root, "train.seed=3", name="seed3"))


def test_each_replica_ends_where_its_separate_run_ends(stacked):
    root, summary, alone = stacked
    assert [r["seed"] for r in summary["replicas"]] == [0, 3]
    mine = summary["replicas"][1]
    assert mine["eval_accuracy"] == alone["eval_accuracy"]
    assert mine["eval_loss"] == pytest.approx(alone["eval_loss"], rel=1e-5)  # batched matmuls may round apart
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
                 ex.load_run(root / "stacked", replica=1).params, ex.load_run(root / "seed3").params)
    values = [r["eval_loss"] for r in summary["replicas"]]
    assert summary["eval_loss"] == pytest.approx(np.mean(values)) and summary["eval_loss_std"] == pytest.approx(np.std(values))
    assert summary["steps_per_s"] > 0 and "steps_per_s" not in summary["replicas"][0]  # the loop's rate, once


def test_patience_stops_each_replica_as_its_separate_run_and_freezes_it(tmp_path):
    early = ["train.select=val_loss", "data.val_size=500", "train.eval_every=2", "train.patience=2",
             "optimizer.learning_rate=0.05", "train.steps=40"]
    summary = train.fit(cfg(tmp_path, "train.seeds=[0,1]", *early, name="stacked"))
    steps = [r["steps"] for r in summary["replicas"]]
    for i, seed in enumerate([0, 1]):
        alone = train.fit(cfg(tmp_path, f"train.seed={seed}", *early, name=f"seed{seed}"))
        mine = summary["replicas"][i]
        assert (mine["steps"], mine["selected_step"]) == (alone["steps"], alone["selected_step"])
        assert mine["eval_accuracy"] == alone["eval_accuracy"]
    assert min(steps) < max(steps) <= 40   # they stopped at different steps, the first one frozen since


def test_resumed_stacked_run_ends_bit_for_bit_as_uninterrupted(tmp_path):
    train.fit(cfg(tmp_path, "train.seeds=2", "train.steps=20", name="whole"))
    train.fit(cfg(tmp_path, "train.seeds=2", "train.steps=10", name="halves"))
    train.fit(cfg(tmp_path, "train.seeds=2", "train.steps=20", "run.resume=true", name="halves"))
    for i in range(2):
        whole, halves = (ex.load_run(tmp_path / n, replica=i) for n in ("whole", "halves"))
        assert halves.step == whole.step == 20
        jax.tree.map(np.testing.assert_array_equal, halves.params, whole.params)


def test_load_run_and_zoo_evaluate_pick_a_replica_or_report_all(stacked, capsys):
    root, summary, _ = stacked
    run_dir = str(root / "stacked")
    with pytest.raises(ConfigError, match="replica=0..1"):
        ex.load_run(run_dir)
    capsys.readouterr()
    assert evaluate_cmd.run(evaluate_cmd.add_parser(_subparsers()).parse_args([run_dir, "--replica", "1"])) == 0
    one = json.loads(capsys.readouterr().out)
    assert one["eval_accuracy"] == summary["replicas"][1]["eval_accuracy"] and one["replica"] == 1
    assert evaluate_cmd.run(evaluate_cmd.add_parser(_subparsers()).parse_args([run_dir])) == 0
    every = json.loads(capsys.readouterr().out)
    assert every["eval_accuracy"] == pytest.approx(summary["eval_accuracy"])
    assert every["eval_accuracy_std"] == pytest.approx(summary["eval_accuracy_std"])


def _subparsers():
    import argparse
    return argparse.ArgumentParser().add_subparsers()


def test_learning_rate_sweep_replicas_match_separate_runs(tmp_path):
    summary = train.fit(cfg(tmp_path, "train.sweep={optimizer.learning_rate: [0.001, 0.01]}",
                            "optimizer.schedule=cosine", name="sweep"))
    assert [row["optimizer.learning_rate"] for row in summary["replicas"]] == pytest.approx([0.001, 0.01])
    alone = train.fit(cfg(tmp_path, "optimizer.learning_rate=0.01", "optimizer.schedule=cosine", name="lr"))
    assert summary["replicas"][1]["eval_loss"] == pytest.approx(alone["eval_loss"], rel=1e-4)
    assert summary["replicas"][0]["eval_loss"] != pytest.approx(alone["eval_loss"], rel=1e-2)


def test_a_swept_dropout_rate_draws_the_bits_of_the_python_rate():
    from zoo.models import gnn
    from zoo.models import layers as L
    rates = [0.0, 0.1, 0.5, 0.6, 0.9]
    x, key = jax.random.normal(jax.random.PRNGKey(0), (64, 33)), jax.random.PRNGKey(1)
    for drop in (L.dropout, gnn.dropout):
        swept = jax.jit(jax.vmap(lambda r, drop=drop: drop(key, x, r, True)))(L.SweptRate.of(rates))
        for i, rate in enumerate(rates):
            np.testing.assert_array_equal(swept[i], drop(key, x, rate, True))


@pytest.mark.parametrize("shipped", [None, "karate_gcn"])
def test_dropout_rate_sweep_is_one_program_whose_replicas_match_separate_runs(tmp_path, shipped):
    """0.6 is a rate whose keep probability rounds apart when computed in float32 on the device."""
    def load(*overrides):
        if shipped is None:
            return cfg(tmp_path, "train.steps=20", *overrides)
        return config.load(ROOT / "configs" / f"{shipped}.yaml", [f"run.dir={tmp_path}", "train.steps=20",
                                                                 "run.plots=false", *overrides])
    summary = train.fit(load("train.sweep={model.dropout_rate: [0.0, 0.6]}", "run.name=sweep"))
    assert "programs" not in summary and [r["model.dropout_rate"] for r in summary["replicas"]] == [0.0, 0.6]
    assert "| dropout_rate=0.6 |" in (tmp_path / "sweep" / "sweep.md").read_text()  # one program, one row per value
    for i, rate in enumerate([0.0, 0.6]):
        alone = train.fit(load(f"model.dropout_rate={rate}", f"run.name=rate{i}"))
        assert summary["replicas"][i]["eval_accuracy"] == alone["eval_accuracy"]
        assert summary["replicas"][i]["eval_loss"] == pytest.approx(alone["eval_loss"], rel=1e-5)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
                     ex.load_run(tmp_path / "sweep", replica=i).params, ex.load_run(tmp_path / f"rate{i}").params)


def test_a_sweep_over_shapes_trains_one_program_per_value_in_one_table(tmp_path):
    summary = train.fit(cfg(tmp_path, "train.seeds=2", "train.steps=5",
                            "train.sweep={model.width: [8, 16], optimizer.learning_rate: [0.01, 0.02]}"))
    assert [p["program"] for p in summary["programs"]] == ["width=8", "width=16"]
    loaded = [ex.load_run(tmp_path / "t" / name, replica=0) for name in ("width=8", "width=16")]
    assert [p["params"] for p in summary["programs"]] == [ex.count_params(r.params) for r in loaded]
    rows = (tmp_path / "t" / "sweep.md").read_text().splitlines()[2:]   # one per point, over its 2 seeds
    assert [r.split(" | ")[0] for r in rows] == [f"| width={w}, learning_rate={lr}" for w in (8, 16) for lr in (0.01, 0.02)]
    program = summary["programs"][1]["replicas"]
    accuracy = [r["eval_accuracy"] for r in program if r["optimizer.learning_rate"] == pytest.approx(0.02)]
    assert rows[3].endswith(" | 2 |") and f"{np.mean(accuracy):.4f} ± {np.std(accuracy):.4f}" in rows[3]


@pytest.mark.parametrize("override, message", [
    ("mesh.seeds=2", "must divide the 3 replicas"),
    ("train.sweep={optimizer.learning_rate: 0.1}", "non-empty list"),
    ("train.sweep={optimizer.learnin_rate: [0.1]}", "did you mean 'optimizer.learning_rate'"),
])
def test_replica_mistakes_are_one_line_before_a_run_directory(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message) as e:
        train.fit(cfg(tmp_path, "train.seeds=3", override))
    assert "\n" not in str(e.value) and not (tmp_path / "t").exists()


def test_replicas_that_do_not_fit_fail_in_one_line_before_anything_is_allocated(tmp_path):
    huge = cfg(tmp_path, "train.seeds=4", "model.width=300000", "model.dropout_rate=0.0")  # 4 x 1.4 TB of state
    with pytest.raises(ConfigError, match="4 replicas need about") as e:
        train.fit(huge)
    assert "\n" not in str(e.value) and not (tmp_path / "t").exists()


@pytest.mark.skipif(not (SHARED_DATA / "planetoid" / "cora.npz").exists(), reason="needs shared/data/planetoid/cora.npz")
def test_cora_seeds_share_the_graph_and_match_separate_runs(tmp_path):
    path = ROOT / "configs" / "cora_gcn.yaml"
    common = ["train.steps=20", f"run.dir={tmp_path}", "run.plots=false", f"data.path={SHARED_DATA / 'planetoid' / 'cora.npz'}"]
    stack = train.build(config.load(path, ["train.seeds=2", *common]))
    assert stack.shared and replicas.host_batches(stack.replicas, 0)[0]   # one whole graph for every replica
    stacked = train.fit(config.load(path, ["train.seeds=2", *common, "run.name=stacked"]))
    alone = train.fit(config.load(path, ["train.seed=1", *common, "run.name=seed1"]))
    assert stacked["replicas"][1]["eval_accuracy"] == alone["eval_accuracy"]
    assert stacked["replicas"][1]["selected_step"] == alone["selected_step"]


SPREAD = """
import json, sys
from zoo import config, train
base = [*json.loads(sys.argv[1]), "run.dir=" + sys.argv[2]]
out = {mesh: train.fit(config.load(None, [*base, *mesh.split(), "run.name=" + mesh.replace(" ", "_")]))["replicas"]
       for mesh in ("mesh.data=1", "mesh.seeds=4 mesh.data=2", "mesh.seeds=2 mesh.data=2 mesh.fsdp=2")}
print("RESULT " + json.dumps(out))
"""


def test_replicas_spread_over_a_seeds_mesh_axis_match_one_device(tmp_path):
    env = subprocess_env(8, PYTHONPATH=str(ROOT))
    overrides = [*SMALL, "train.seeds=4", "train.steps=10", "train.batch_size=48", "model.width=256"]
    proc = subprocess.run([sys.executable, "-c", SPREAD, json.dumps(overrides), str(tmp_path)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    one = result.pop("mesh.data=1")
    assert len(one) == 4
    for rows in result.values():
        for mine, ref in zip(rows, one, strict=True):  # every replica reported, each device's share
            assert mine["eval_loss"] == pytest.approx(ref["eval_loss"], abs=1e-4)


def test_a_long_stacked_run_without_logs_keeps_few_steps_in_flight(tmp_path):
    """Nothing read back for 400 steps: an unbounded queue of dispatched steps made XLA's CPU
    all-gather over 2 host devices abort ("Termination timeout for all gather"). One step per call:
    with train.steps_per_execution=20 (the config's) 1000 steps queue only 50 calls, and the run
    passed here with zoo.train's bound removed; one step per call, it aborts within 400 steps."""
    env = subprocess_env(2, PYTHONPATH=str(ROOT))
    steps = 400
    cmd = [sys.executable, "-m", "zoo", "train", "mnist1d_mlp", "train.seeds=8", "mesh.seeds=2", f"train.steps={steps}",
           "train.steps_per_execution=1", "train.log_every=100000", "train.eval_every=0", "run.plots=false",
           f"run.dir={tmp_path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "mnist1d_mlp" / "summary.json").read_text())
    assert summary["steps"] == steps and len(summary["replicas"]) == 8

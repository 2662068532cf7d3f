"""A model's state (zoo.models.core.Model: BatchNorm's running statistics, flax's batch_stats)
through the one trainer: updated by every training step and by no skipped one, evaluated with,
checkpointed and resumed bit for bit, and each replica's own in a stacked run, as its separate
run's; zoo evaluate and zoo predict read it as a user runs them."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import config, steps, train
from zoo import experiment as ex
from zoo.commands.cli import main
from zoo.models.core import STATE

BN = ["model.name=cnn", "model.channels=[8,8]", "model.kernel_sizes=[3]", "model.strides=[2]", "model.norm=batch",
      "model.norm_momentum=0.8", "model.readout=mean", "data.name=mnist1d", "train.batch_size=32",
      "train.eval_batch_size=500", "train.steps=20", "train.log_every=10", "run.plots=false"]
SEEDS = {1: [], 2: ["train.seeds=[0,1]"]}


def cfg(root, name, seeds, *overrides):
    return config.load(None, [*BN, f"run.dir={root}", f"run.name={name}", *SEEDS[seeds], *overrides])


def params_of(run_dir, seeds, i):
    return ex.load_run(run_dir, replica=i if seeds > 1 else None).params


def eval_accuracy(run, params) -> float:
    batches = list(run.exp.dataset.eval_batches(500))
    correct = sum(float(((run.model.apply(params, b["x"]).argmax(-1) == b["y"]) * b["mask"]).sum()) for b in batches)
    return correct / sum(float(b["mask"].sum()) for b in batches)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Seed 0 alone (run s1) and seeds 0 and 1 stacked (run s2), 20 steps each: (root, {seeds: summary})."""
    root = tmp_path_factory.mktemp("state")
    return root, {seeds: train.fit(cfg(root, f"s{seeds}", seeds)) for seeds in SEEDS}


@pytest.mark.parametrize("seeds", SEEDS)
def test_training_moves_the_statistics_and_evaluation_reads_them(runs, seeds):
    root, summaries = runs
    for i in range(seeds):
        run = ex.load_run(root / f"s{seeds}", replica=i if seeds > 1 else None)
        fresh = ex.init_state(ex.build(cfg(root, "fresh", 1, f"train.seed={i if seeds > 1 else 0}")))[0]["params"]
        moved = jax.tree.map(lambda a, b: not np.allclose(a, b), run.params[STATE], fresh[STATE])
        assert all(jax.tree.leaves(moved)) and all(np.isfinite(a).all() for a in jax.tree.leaves(run.params[STATE]))
        row = summaries[seeds]["replicas"][i] if seeds > 1 else summaries[seeds]
        assert row["eval_accuracy"] == pytest.approx(eval_accuracy(run, run.params), abs=1e-6)
        # the same weights with the statistics they started from score otherwise
        assert eval_accuracy(run, {**run.params, STATE: fresh[STATE]}) != pytest.approx(row["eval_accuracy"], abs=1e-6)


def test_each_replica_keeps_its_own_statistics_as_its_separate_run(runs):
    root, summaries = runs
    alone = train.fit(cfg(root, "alone1", 1, "train.seed=1"))
    assert alone["eval_accuracy"] == summaries[2]["replicas"][1]["eval_accuracy"]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
                 params_of(root / "s2", 2, 1), params_of(root / "alone1", 1, 0))


@pytest.mark.parametrize("seeds", SEEDS)
def test_a_resumed_run_ends_with_the_statistics_of_an_uninterrupted_one(tmp_path, seeds):
    train.fit(cfg(tmp_path, "whole", seeds))
    train.fit(cfg(tmp_path, "halves", seeds, "train.steps=10"))
    train.fit(cfg(tmp_path, "halves", seeds, "run.resume=true"))
    for i in range(seeds):
        jax.tree.map(np.testing.assert_array_equal, params_of(tmp_path / "halves", seeds, i),
                     params_of(tmp_path / "whole", seeds, i))


def test_a_skipped_step_leaves_the_statistics_as_they_were(tmp_path):
    exp = ex.build(cfg(tmp_path, "nan", 1))
    state, _ = ex.init_state(exp)
    step = jax.jit(steps.train_step_fn(exp))
    batch = jax.tree.map(jnp.asarray, ex.host_batch(exp, 0))
    good, metrics = step(state, batch)
    assert int(metrics["bad_step"]) == 0
    bad, metrics = step(good, {**batch, "x": batch["x"].at[0, 0].set(jnp.nan)})
    assert int(metrics["bad_step"]) == 1
    jax.tree.map(np.testing.assert_array_equal, bad["params"], good["params"])
    assert not np.allclose(good["params"][STATE]["blocks"]["0"]["norm"]["mean"],
                           state["params"][STATE]["blocks"]["0"]["norm"]["mean"])


def test_freezing_every_parameter_still_moves_the_statistics(tmp_path):
    """optimizer.freeze keeps parameters fixed, not the model's state: a frozen BatchNorm's running
    statistics follow the data it now trains on, as PyTorch's requires_grad=False leaves them (and
    as the README says), so evaluation normalises with statistics of the data being learned."""
    exp = ex.build(cfg(tmp_path, "frozen", 1, "optimizer.freeze=.*"))
    state, _ = ex.init_state(exp)
    step = jax.jit(steps.train_step_fn(exp))
    batch = jax.tree.map(jnp.asarray, ex.host_batch(exp, 0))
    after, metrics = step(state, batch)
    assert int(metrics["bad_step"]) == 0
    before = {k: v for k, v in state["params"].items() if k != STATE}
    jax.tree.map(np.testing.assert_array_equal, {k: v for k, v in after["params"].items() if k != STATE}, before)
    moved = jax.tree.map(lambda a, b: not np.allclose(a, b), after["params"][STATE], state["params"][STATE])
    assert all(jax.tree.leaves(moved))


def test_zoo_evaluate_and_predict_use_the_trained_statistics(runs, tmp_path, capsys):
    root, summaries = runs
    capsys.readouterr()
    assert main(["evaluate", str(root / "s1")]) == 0
    assert json.loads(capsys.readouterr().out)["eval_accuracy"] == summaries[1]["eval_accuracy"]
    run = ex.load_run(root / "s1")
    x = np.asarray(next(iter(run.exp.dataset.eval_batches(8)))["x"][:8])
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", str(root / "s1"), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "p.npz")]) == 0
    predicted = np.load(tmp_path / "p.npz")["probabilities"]
    np.testing.assert_allclose(predicted, jax.nn.softmax(run.model.apply(run.params, x), -1), atol=1e-5)

"""The trainer: compiles once, writes its run directory, never overwrites, resumes bit for bit."""
import dataclasses
import json
import signal
import time
from pathlib import Path

import chex
import jax
import numpy as np
import pytest
from killing import cli, final_state, finish, wait_for_checkpoint

from zoo import config, figures, schema, steps, train
from zoo import experiment as ex
from zoo.selection import Selection

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["model.name=mlp", "model.width=32", "data.name=mnist1d", "train.batch_size=50",
         "train.eval_batch_size=300", "train.log_every=10"]


def small_cfg(tmp_path, *overrides):
    return config.load(None, [*SMALL, f"run.dir={tmp_path}", "run.name=t", "run.plots=false", *overrides])


def test_train_step_compiles_once_and_partial_eval_batch_does_not_retrace(tmp_path):
    exp = ex.build(small_cfg(tmp_path, "optimizer.accumulate_steps=2"))
    # traced twice by the train step (the micro-batch gradient's shapes, the scanned body) and once
    # by the eval step, never again
    traced = chex.assert_max_traces(exp.model.apply_with_stats, n=3)
    exp = dataclasses.replace(exp, model=exp.model._replace(apply_with_stats=traced))
    state, shardings = ex.init_state(exp)
    step, eval_step = steps.make_train_step(exp, shardings), steps.make_eval_step(exp)
    for s in range(5):
        state, _ = step(state, ex.train_batch(exp, s))
    assert step._cache_size() == 1
    result = steps.evaluate(exp, eval_step, state["params"])  # 1000 test rows: 300, 300, 300, 100 + padding
    assert eval_step._cache_size() == 1
    assert 0.0 <= result["eval_accuracy"] <= 1.0


def test_padded_eval_counts_each_example_once(tmp_path):
    exp = ex.build(small_cfg(tmp_path))
    state, _ = ex.init_state(exp)
    eval_step = steps.make_eval_step(exp)
    full = steps.evaluate(exp, eval_step, state["params"])
    exp_one = ex.build(small_cfg(tmp_path, "train.eval_batch_size=1000"))
    one = steps.evaluate(exp_one, steps.make_eval_step(exp_one), state["params"])
    np.testing.assert_allclose(full["eval_loss"], one["eval_loss"], rtol=1e-5)
    assert full["eval_accuracy"] == one["eval_accuracy"]


def test_eval_batches_evaluates_only_the_first_batches(tmp_path):
    exp = ex.build(small_cfg(tmp_path, "train.eval_batches=1"))
    state, _ = ex.init_state(exp)
    capped = steps.evaluate(exp, steps.make_eval_step(exp), state["params"])
    first = next(exp.dataset.eval_batches(300))
    sums, _ = ex.loss_sums(exp, state["params"], first, None, train=False)
    np.testing.assert_allclose(capped["eval_loss"], float(sums["loss"] / sums["count"]), rtol=1e-5)


def test_select_keeps_the_best_validation_params_and_reports_their_test_metrics(tmp_path):
    seen = {}
    cfg = small_cfg(tmp_path, "data.val_size=500", "train.steps=12", "train.eval_every=2", "train.log_every=2",
                    "train.select=val_loss", "optimizer.learning_rate=1.0")  # unstable: val loss goes back up
    summary = train.fit(cfg, on_step=lambda step, state: seen.update({step: jax.tree.map(np.array, state["params"])}))
    records = [json.loads(line) for line in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    val = {r["step"]: r["val_loss"] for r in records}
    assert sorted(val) == list(range(2, 13, 2))
    best = min(val, key=val.get)
    assert summary["selected_step"] == best < 12 and summary["selected_val_loss"] == pytest.approx(val[best])
    exp = ex.build(cfg)
    expected = steps.evaluate(exp, steps.make_eval_step(exp), seen[best])
    assert summary["eval_loss"] == pytest.approx(expected["eval_loss"], rel=1e-6)
    assert summary["eval_accuracy"] == expected["eval_accuracy"]


@pytest.mark.parametrize("select, selected, since", [
    ("val_loss", 3, 2),                 # loss 0.8 at step 3 is the lowest
    ("val_accuracy", 4, 1),             # 0.7 first reached at step 2, then at step 4 with a lower loss
    ("val_loss_and_accuracy", 2, 0),    # step 2 was the last with both at their best; step 5 ties the accuracy
])
def test_selection_rules(select, selected, since):
    best = Selection(select, {"w": jax.numpy.zeros(2)})
    evals = [(1.0, 0.5), (0.9, 0.7), (0.8, 0.6), (0.85, 0.7), (0.95, 0.7)]  # (val loss, val accuracy)
    for step, (loss, acc) in enumerate(evals, start=1):
        best.update(step, {"w": jax.numpy.full(2, step)}, {"val_loss": loss, "val_accuracy": acc})
    assert best.selected_step == selected and best.evaluations_since_progress == since
    assert float(best.params["w"][0]) == selected
    assert best.exhausted(since) == (since > 0) and not best.exhausted(since + 1)


def test_patience_stops_once_validation_stops_improving(tmp_path):
    summary = train.fit(small_cfg(tmp_path, "data.val_size=500", "train.steps=100", "train.eval_every=1",
                                  "train.select=val_loss", "train.patience=3", "optimizer.learning_rate=0"))
    assert summary["selected_step"] == 1 and summary["steps"] == 4  # evaluations 2, 3, 4 never beat 1


def test_select_needs_a_validation_split_and_evaluations(tmp_path):
    with pytest.raises(config.ConfigError, match="needs a validation split"):
        ex.build(small_cfg(tmp_path, "train.select=val_loss", "train.eval_every=1"))
    with pytest.raises(config.ConfigError, match="set train.eval_every"):
        ex.build(small_cfg(tmp_path, "train.select=val_loss", "data.val_size=100"))
    with pytest.raises(config.ConfigError, match="train.patience needs"):
        ex.build(small_cfg(tmp_path, "train.patience=5"))


def test_fit_writes_run_directory_and_never_overwrites(tmp_path):
    cfg = small_cfg(tmp_path, "train.steps=20", "train.eval_every=10", "run.plots=true")
    summary = train.fit(cfg, hooks=figures.after_training(cfg))
    run = tmp_path / "t"
    for key in ("eval_loss", "eval_accuracy", "wall_time_s", "steps", "params"):
        assert key in summary
    assert json.loads((run / "summary.json").read_text())["steps"] == 20
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20]
    assert {"loss", "learning_rate", "grad_norm", "steps_per_s", "examples_per_s", "eval_loss"} <= set(records[-1])
    assert config.load(run / "config.yaml").to_dict()["model"]["num_outputs"] == 10
    assert (run / "curves.png").stat().st_size > 0
    second = train.fit(cfg)
    assert second["run_dir"] == str(tmp_path / "t-2")
    assert json.loads((run / "summary.json").read_text()) == json.loads(json.dumps(summary))


def test_a_hook_s_prepare_runs_in_a_thread_while_the_loop_trains(tmp_path):
    """The figures import matplotlib beside the loop (figures.loss_curves.prepare): fit starts a
    hook's `prepare` in a thread before the first step and calls the hook after the last."""
    import threading
    prepared, events = threading.Event(), []

    def prepare():
        events.append(("prepare", threading.current_thread() is threading.main_thread()))
        prepared.set()

    def hook(run):
        events.append(("hook", run.run_dir.name))
    hook.prepare = prepare
    cfg = small_cfg(tmp_path, "train.steps=10")
    train.fit(cfg, hooks=[hook])
    assert prepared.wait(10)
    assert ("prepare", False) in events and events[-1] == ("hook", "t")   # in a thread; the hook at the end
    assert figures.loss_curves.prepare is figures.import_matplotlib
    plotted = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, plots=True))
    assert figures.after_training(plotted)[0] is figures.loss_curves


def test_weight_decay_skips_biases_and_norm_scales(tmp_path):
    exp = ex.build(small_cfg(tmp_path, "optimizer.name=sgd", "optimizer.learning_rate=0.0",
                                "optimizer.weight_decay=0.1", "model.norm=layer"))
    from zoo import optim
    mask = optim.decay_mask(exp.cfg.optimizer)(ex.init_state(exp)[0]["params"])
    flat = {optim.path_name(p): m for p, m in jax.tree_util.tree_leaves_with_path(mask)}
    assert flat["blocks/0/dense/kernel"] and flat["head/kernel"]
    assert not flat["blocks/0/dense/bias"] and not flat["blocks/0/norm/scale"]


def test_schedule_warmup_then_cosine_to_end():
    opt = schema.OptimizerConfig(learning_rate=1.0, schedule="warmup_cosine", warmup_steps=10, end_learning_rate=0.1)
    from zoo import optim
    lr = optim.schedule(opt, 110)
    assert float(lr(0)) == 0.0 and abs(float(lr(5)) - 0.5) < 1e-6
    assert abs(float(lr(10)) - 1.0) < 1e-6 and abs(float(lr(110)) - 0.1) < 1e-6


def test_gradient_accumulation_equals_full_batch(tmp_path):
    grads = []
    for a in (1, 5):
        exp = ex.build(small_cfg(tmp_path, f"optimizer.accumulate_steps={a}"))
        state, _ = ex.init_state(exp)
        batch = ex.train_batch(exp, 0)
        g, _ = jax.jit(lambda p, b, exp=exp: steps._grads(exp, p, b, jax.random.PRNGKey(0)))(state["params"], batch)
        grads.append(g)
    for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


# ----------------------------------------------------------------------------- resume
RESUME_YAML = """
model: {name: mlp, width: 32, dropout_rate: 0.1}
data: {name: mnist1d, val_size: 500}
train: {batch_size: 50, eval_batch_size: 300, steps: 3000, checkpoint_every: 100, log_every: 500,
        eval_every: 50, select: val_accuracy}  # the kill comes after evaluations at 50, 100
run: {plots: false}
"""


@pytest.fixture
def resume_config(tmp_path):
    path = tmp_path / "resume.yaml"
    path.write_text(RESUME_YAML)
    return str(path)


def test_sigkill_then_resume_equals_uninterrupted_bit_for_bit(tmp_path, resume_config):
    ref = cli(resume_config, f"run.dir={tmp_path}", "run.name=ref")
    killed = cli(resume_config, f"run.dir={tmp_path}", "run.name=killed")
    wait_for_checkpoint(killed, tmp_path / "killed")
    killed.send_signal(signal.SIGKILL)
    assert finish(killed)[0] == -signal.SIGKILL
    assert not (tmp_path / "killed" / "checkpoints" / "3000").exists()   # it really was cut short
    code, err = finish(cli("--resume", str(tmp_path / "killed")))
    assert code == 0 and "Traceback" not in err and "warning: checkpoint" not in err, err  # outcomes, not silence:
    # orbax may log "Waiting for previous save..." under load
    assert finish(ref)[0] == 0
    a, pos_a = final_state(tmp_path / "ref")
    b, pos_b = final_state(tmp_path / "killed")
    assert int(a["step"]) == int(b["step"]) == 3000 and pos_a == pos_b
    assert pos_a == {"step": 3000, "epoch": 42, "batch_in_epoch": 60}   # 70 batches of 50 per epoch
    assert 50 <= a["best"]["selected_step"] <= 3000
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))


def test_sigterm_checkpoints_at_step_boundary_and_exits(tmp_path, resume_config):
    proc = cli(resume_config, "train.steps=1000000", f"run.dir={tmp_path}", "run.name=term")
    wait_for_checkpoint(proc, tmp_path / "term")
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert time.time() - sent < 10
    steps = sorted(int(p.name) for p in (tmp_path / "term" / "checkpoints").iterdir() if p.name.isdigit())
    assert steps[-1] >= 100
    assert "resume with: zoo train --resume" in err
    assert finish(cli("--resume", str(tmp_path / "term"), f"train.steps={steps[-1] + 10}"))[0] == 0

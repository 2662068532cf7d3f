"""The trainer: compiles once, writes its run directory, never overwrites, resumes bit for bit."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from zoo import checkpoint, config, train

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["model.name=mlp", "model.width=32", "data.name=mnist1d", "train.batch_size=50",
         "train.eval_batch_size=300", "train.log_every=10"]


def small_cfg(tmp_path, *overrides):
    return config.load(None, [*SMALL, f"run.dir={tmp_path}", "run.name=t", "run.plots=false", *overrides])


def test_train_step_compiles_once_and_partial_eval_batch_does_not_retrace(tmp_path):
    exp = train.setup(small_cfg(tmp_path, "optimizer.accumulate_steps=2"))
    state, shardings = train.init_state(exp)
    step, eval_step = train.make_train_step(exp, shardings), train.make_eval_step(exp)
    for s in range(5):
        state, _ = step(state, train.train_batch(exp, s))
    assert step._cache_size() == 1
    result = train.evaluate(exp, eval_step, state["params"])  # 1000 test rows: 300, 300, 300, 100 + padding
    assert eval_step._cache_size() == 1
    assert 0.0 <= result["eval_accuracy"] <= 1.0


def test_padded_eval_counts_each_example_once(tmp_path):
    exp = train.setup(small_cfg(tmp_path))
    state, _ = train.init_state(exp)
    eval_step = train.make_eval_step(exp)
    full = train.evaluate(exp, eval_step, state["params"])
    exp_one = train.setup(small_cfg(tmp_path, "train.eval_batch_size=1000"))
    one = train.evaluate(exp_one, train.make_eval_step(exp_one), state["params"])
    np.testing.assert_allclose(full["eval_loss"], one["eval_loss"], rtol=1e-5)
    assert full["eval_accuracy"] == one["eval_accuracy"]


def test_fit_writes_run_directory_and_never_overwrites(tmp_path):
    cfg = small_cfg(tmp_path, "train.steps=20", "train.eval_every=10", "run.plots=true")
    summary = train.fit(cfg)
    run = tmp_path / "t"
    for key in ("eval_loss", "eval_accuracy", "wall_time_s", "steps", "params"):
        assert key in summary
    assert json.loads((run / "summary.json").read_text())["steps"] == 20
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20]
    assert {"loss", "learning_rate", "grad_norm", "examples_per_s", "eval_loss"} <= set(records[-1])
    assert config.load(run / "config.yaml").to_dict()["model"]["num_outputs"] == 10
    assert (run / "loss.png").stat().st_size > 0
    second = train.fit(cfg)
    assert second["run_dir"] == str(tmp_path / "t-2")
    assert json.loads((run / "summary.json").read_text()) == json.loads(json.dumps(summary))


def test_weight_decay_skips_biases_and_norm_scales(tmp_path):
    exp = train.setup(small_cfg(tmp_path, "optimizer.name=sgd", "optimizer.learning_rate=0.0",
                                "optimizer.weight_decay=0.1", "model.norm=layer"))
    from zoo import optim
    mask = optim.decay_mask(exp.cfg.optimizer)(train.init_state(exp)[0]["params"])
    flat = {optim.path_name(p): m for p, m in jax.tree_util.tree_leaves_with_path(mask)}
    assert flat["blocks/0/dense/kernel"] and flat["head/kernel"]
    assert not flat["blocks/0/dense/bias"] and not flat["blocks/0/norm/scale"]


def test_schedule_warmup_then_cosine_to_end():
    opt = config.OptimizerConfig(learning_rate=1.0, schedule="warmup_cosine", warmup_steps=10, end_learning_rate=0.1)
    from zoo import optim
    lr = optim.schedule(opt, 110)
    assert float(lr(0)) == 0.0 and abs(float(lr(5)) - 0.5) < 1e-6
    assert abs(float(lr(10)) - 1.0) < 1e-6 and abs(float(lr(110)) - 0.1) < 1e-6


def test_gradient_accumulation_equals_full_batch(tmp_path):
    grads = []
    for a in (1, 5):
        exp = train.setup(small_cfg(tmp_path, f"optimizer.accumulate_steps={a}"))
        state, _ = train.init_state(exp)
        batch = train.train_batch(exp, 0)
        g, _ = jax.jit(lambda p, b: train._grads(exp, p, b, jax.random.PRNGKey(0)))(state["params"], batch)
        grads.append(g)
    for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


# ----------------------------------------------------------------------------- resume
def _cli(*args):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(proc) -> tuple[int, str]:
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err[-2000:]


RESUME_YAML = """
model: {name: mlp, width: 32, dropout_rate: 0.1}
data: {name: mnist1d}
train: {batch_size: 50, eval_batch_size: 300, steps: 3000, checkpoint_every: 100, log_every: 500}
run: {plots: false}
"""


@pytest.fixture
def resume_config(tmp_path):
    path = tmp_path / "resume.yaml"
    path.write_text(RESUME_YAML)
    return str(path)


def _final_state(run_dir: Path, tmp_path):
    exp = train.setup(small_cfg(tmp_path, "model.dropout_rate=0.1"))
    state, shardings = train.init_state(exp)
    ckpt = checkpoint.Checkpointer(run_dir / "checkpoints", 3)
    restored, position = ckpt.restore(checkpoint.abstract(state, shardings))
    ckpt.close()
    return restored, position


def _wait_for_checkpoint(proc, run_dir: Path, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (run_dir / "checkpoints" / "100").is_dir():
            return
        assert proc.poll() is None, _finish(proc)
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared")


def test_sigkill_then_resume_equals_uninterrupted_bit_for_bit(tmp_path, resume_config):
    ref = _cli(resume_config, f"run.dir={tmp_path}", "run.name=ref")
    killed = _cli(resume_config, f"run.dir={tmp_path}", "run.name=killed")
    _wait_for_checkpoint(killed, tmp_path / "killed")
    killed.send_signal(signal.SIGKILL)
    assert _finish(killed)[0] == -signal.SIGKILL
    assert not (tmp_path / "killed" / "checkpoints" / "3000").exists()   # it really was cut short
    assert _finish(_cli("--resume", str(tmp_path / "killed"))) == (0, "")
    assert _finish(ref)[0] == 0
    a, pos_a = _final_state(tmp_path / "ref", tmp_path)
    b, pos_b = _final_state(tmp_path / "killed", tmp_path)
    assert int(a["step"]) == int(b["step"]) == 3000 and pos_a == pos_b
    assert pos_a == {"step": 3000, "epoch": 37, "batch_in_epoch": 40}
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))


def test_sigterm_checkpoints_at_step_boundary_and_exits(tmp_path, resume_config):
    proc = _cli(resume_config, "train.steps=1000000", f"run.dir={tmp_path}", "run.name=term")
    _wait_for_checkpoint(proc, tmp_path / "term")
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert time.time() - sent < 10
    steps = sorted(int(p.name) for p in (tmp_path / "term" / "checkpoints").iterdir() if p.name.isdigit())
    assert steps[-1] >= 100
    assert "resume with: python train.py --resume" in err
    assert _finish(_cli("--resume", str(tmp_path / "term"), f"train.steps={steps[-1] + 10}"))[0] == 0

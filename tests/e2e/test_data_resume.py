"""Resume on user data: a run on an `array` dataset killed with SIGKILL and resumed ends
bit-identical to an uninterrupted one (batches are a pure function of (seed, step), the
standardisation is refitted identically from the file)."""
import signal

import jax
import numpy as np
from killing import cli, final_state, finish, wait_for_checkpoint

# ----------------------------------------------------------------------------- resume
RESUME_YAML = """
model: {name: mlp, width: 16, dropout_rate: 0.1}
data: {name: array, path: PATH, y_path: YPATH, standardize: true, val_size: 40}
train: {batch_size: 20, eval_batch_size: 50, steps: 1500, checkpoint_every: 100, log_every: 500,
        eval_every: 50, select: val_accuracy}
run: {plots: false}
"""


def _npy_pair(tmp_path, n, d):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((n, d)) * np.arange(1, d + 1) + 5).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", (x[:, 0] > 5).astype(np.int64))


def test_sigkill_then_resume_on_an_array_dataset_equals_uninterrupted_bit_for_bit(tmp_path):
    _npy_pair(tmp_path, n=400, d=8)
    yaml_file = tmp_path / "resume.yaml"
    yaml_file.write_text(RESUME_YAML.replace("YPATH", str(tmp_path / "y.npy")).replace("PATH", str(tmp_path / "x.npy")))
    ref = cli(str(yaml_file), f"run.dir={tmp_path}", "run.name=ref")
    killed = cli(str(yaml_file), f"run.dir={tmp_path}", "run.name=killed")
    wait_for_checkpoint(killed, tmp_path / "killed")
    killed.send_signal(signal.SIGKILL)
    assert finish(killed)[0] == -signal.SIGKILL
    assert not (tmp_path / "killed" / "checkpoints" / "1500").exists()
    assert finish(cli("--resume", str(tmp_path / "killed"))) == (0, "")
    assert finish(ref)[0] == 0
    a, pos_a = final_state(tmp_path / "ref")
    b, pos_b = final_state(tmp_path / "killed")
    assert int(a["step"]) == int(b["step"]) == 1500 and pos_a == pos_b
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))

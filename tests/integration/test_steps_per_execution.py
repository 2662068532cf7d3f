"""train.steps_per_execution=K: K steps per call of one compiled program (a scan over K batches),
the same training as one step per call, resumable bit for bit, with one seed and with N."""
import jax
import numpy as np
import pytest

from zoo import config, train
from zoo import experiment as ex
from zoo.program import windowed_step

SMALL = ["model.name=mlp", "model.width=16", "model.dropout_rate=0.1", "data.name=mnist1d", "train.batch_size=50",
         "train.eval_batch_size=500", "train.eval_batches=1", "train.log_every=5", "train.steps=30", "run.plots=false"]


def fit(tmp_path, name, *overrides, on_step=None):
    calls = []
    summary = train.fit(config.load(None, [*SMALL, f"run.dir={tmp_path}", f"run.name={name}", *overrides]),
                        on_step=on_step or (lambda done, _: calls.append(done)))
    return summary, calls


def leaves(run_dir, seeds=1):
    runs = [ex.load_run(run_dir)] if seeds == 1 else [ex.load_run(run_dir, replica=r) for r in range(seeds)]
    return [np.asarray(x) for run in runs for x in jax.tree.leaves(run.params)]


def logged(run_dir):
    import json
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("seeds", [1, 2])
def test_k_steps_per_call_train_what_one_step_per_call_trains(tmp_path, seeds):
    one, calls_one = fit(tmp_path, "one", f"train.seeds={seeds}")
    five, calls_five = fit(tmp_path, "five", f"train.seeds={seeds}", "train.steps_per_execution=5")
    assert calls_one == list(range(1, 31)) and calls_five == [5, 10, 15, 20, 25, 30]   # five steps per call
    assert five["steps"] == 30
    for a, b in zip(leaves(tmp_path / "one", seeds), leaves(tmp_path / "five", seeds), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)   # the same steps; XLA may round a scan's body differently
    for a, b in zip(logged(tmp_path / "one"), logged(tmp_path / "five"), strict=True):
        assert a["step"] == b["step"]
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)   # window means: every step counted once
        assert a["bad_step"] == b["bad_step"] == 0


def test_a_k_step_program_counts_one_step_s_flops(tmp_path):
    """step_flops (the rates' FLOPs, MFU) reads XLA's cost analysis of the compiled program, which
    counts a scan's body once: a K-step program's count is one step's, not K times it."""
    program = train.build(config.load(None, [*SMALL, f"run.dir={tmp_path}"]))
    one, five = (program.step_flops(windowed_step(program, k)[0]) for k in (1, 5))
    assert one > 0
    assert five == pytest.approx(one, rel=0.02)


def test_a_k_that_does_not_divide_the_log_interval_runs_the_steps_between_one_by_one(tmp_path, capsys):
    summary, calls = fit(tmp_path, "uneven", "train.steps_per_execution=4")
    assert "train.steps_per_execution=4 does not divide train.log_every=5" in capsys.readouterr().err
    assert calls == [4, 5, 9, 10, 14, 15, 19, 20, 24, 25, 29, 30]   # every log step is a call's last
    assert [r["step"] for r in logged(tmp_path / "uneven")] == [5, 10, 15, 20, 25, 30]
    assert summary["steps"] == 30


class Crash(Exception):
    pass


def test_a_run_killed_between_calls_resumes_bit_for_bit(tmp_path):
    fit(tmp_path, "whole", "train.steps_per_execution=5", "train.checkpoint_every=10")

    def crash(done, _):
        if done == 15:
            raise Crash
    with pytest.raises(Crash):
        fit(tmp_path, "cut", "train.steps_per_execution=5", "train.checkpoint_every=10", on_step=crash)
    calls = []
    train.fit(config.load_run_config(tmp_path / "cut", ["run.resume=true"]), on_step=lambda done, _: calls.append(done))
    assert calls == [15, 20, 25, 30]   # from the checkpoint of step 10, five steps per call
    for a, b in zip(leaves(tmp_path / "whole"), leaves(tmp_path / "cut"), strict=True):
        np.testing.assert_array_equal(a, b)


def test_resuming_with_another_k_is_refused_as_a_change_of_what_the_run_computes():
    stored = config.load(None, SMALL)
    changed = config.load(None, [*SMALL, "train.steps_per_execution=5"])
    assert config.resume_changes(stored, changed) == ["train.steps_per_execution: 1 -> 5"]


def test_k_must_be_positive(tmp_path):
    from zoo.errors import ConfigError
    with pytest.raises(ConfigError, match="steps_per_execution"):
        config.load(None, [*SMALL, "train.steps_per_execution=0"])

"""One trainer: every train.*, run.* and data.* option means the same with one seed and with
N (train.seeds), asserted per replica against the single run of that replica's seed."""
import json
import os
import re

import jax
import numpy as np
import pytest
from conftest import subprocess_env

from zoo import checkpoint, config, loop, rundir, train
from zoo import experiment as ex
from zoo.commands import cli
from zoo.errors import ConfigError

SMALL = ["model.name=mlp", "model.width=16", "data.name=mnist1d", "train.batch_size=50", "train.eval_batch_size=500",
         "train.eval_batches=1", "train.log_every=5", "train.steps=20", "run.plots=false"]
SEEDS = {1: [], 2: ["train.seeds=[0,1]"]}   # one replica (the single run), two replicas


def cfg(root, name, seeds, *overrides):
    return config.load(None, [*SMALL, f"run.dir={root}", f"run.name={name}", *SEEDS[seeds], *overrides])


def replica_params(run_dir, seeds, i):
    return ex.load_run(run_dir, replica=i if seeds > 1 else None).params


def rows(summary, seeds):
    """Each replica's summary row (a single run's summary is its one row)."""
    return summary["replicas"] if seeds > 1 else [summary]


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


class Crash(Exception):
    """Stands for a process killed after a step (its checkpoints and logs stay as they were)."""


def crash_at(step):
    def on_step(done, _):
        if done == step:
            raise Crash(done)
    return on_step


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A single run of 150 steps to fine-tune from: (its directory, its summary)."""
    root = tmp_path_factory.mktemp("source")
    summary = train.fit(config.load(None, [*SMALL, f"run.dir={root}", "run.name=src", "train.steps=150",
                                           "optimizer.learning_rate=0.01", "train.eval_batches=0"]))
    return root / "src", summary


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """One run of each kind with TensorBoard, a profile, selection with patience and MFU on:
    (root, {seeds: summary})."""
    root = tmp_path_factory.mktemp("watched")
    os.environ["XDG_CACHE_HOME"] = str(root / "cache")  # the measured CPU peak: not in the user's cache
    on = ["run.tensorboard=true", "train.profile_steps=[2,3]", "train.select=val_loss", "data.val_size=500",
          "train.eval_every=5", "train.patience=50"]
    return root, {n: train.fit(cfg(root, f"seeds{n}", n, *on)) for n in SEEDS}


@pytest.mark.parametrize("seeds", SEEDS)
def test_init_from_gives_every_replica_the_source(tmp_path, source, seeds):
    src, expected = source
    summary = train.fit(cfg(tmp_path, "ft", seeds, f"train.init_from={src}", "train.steps=1",
                            "optimizer.learning_rate=1e-9", "train.eval_batches=0"))
    for row in rows(summary, seeds):
        assert row["eval_accuracy"] == pytest.approx(expected["eval_accuracy"], abs=2e-3)
    assert expected["eval_accuracy"] > 0.3   # the source learned something a fresh init does not have


@pytest.mark.parametrize("seeds", SEEDS)
def test_init_exclude_and_freeze_hold_per_replica(tmp_path, source, seeds):
    src, _ = source
    train.fit(cfg(tmp_path, "ft", seeds, f"train.init_from={src}", "train.init_exclude=^head/",
                  "optimizer.freeze=^blocks/0/", "train.steps=5"))
    before = ex.load_run(src).params
    for i in range(seeds):
        after = replica_params(tmp_path / "ft", seeds, i)
        jax.tree.map(np.testing.assert_array_equal, after["blocks"][0], before["blocks"][0])   # frozen, copied
        assert not np.array_equal(after["head"]["kernel"], before["head"]["kernel"])          # excluded: fresh
    if seeds > 1:   # the excluded head is each replica's own fresh init
        heads = [replica_params(tmp_path / "ft", seeds, i)["head"]["kernel"] for i in range(seeds)]
        assert not np.array_equal(heads[0], heads[1])


def test_init_from_a_run_of_other_replicas_is_one_line(tmp_path, source):
    src, _ = source
    train.fit(cfg(tmp_path, "two", 2, "train.steps=2"))
    with pytest.raises(ConfigError, match="holds 2 replicas"):
        train.fit(cfg(tmp_path, "ft", 1, f"train.init_from={tmp_path / 'two'}"))
    assert not (tmp_path / "ft").exists()


@pytest.mark.parametrize("seeds", SEEDS)
def test_resume_after_a_kill_before_and_after_the_first_checkpoint(tmp_path, seeds):
    whole = train.fit(cfg(tmp_path, "whole", seeds, "train.checkpoint_every=10"))
    for kill in (6, 17):
        name = f"cut{kill}"
        with pytest.raises(Crash):
            train.fit(cfg(tmp_path, name, seeds, "train.checkpoint_every=10"), on_step=crash_at(kill))
        latest = checkpoint.Checkpointer(tmp_path / name / "checkpoints", 3, create=False).latest_step()
        assert latest == (None if kill < 10 else 10)
        resumed = train.fit(config.load_run_config(tmp_path / name, ["run.resume=true"]))
        assert [r["step"] for r in records(tmp_path / name)] == [5, 10, 15, 20]    # each step logged once
        assert [r["steps"] for r in rows(resumed, seeds)] == [r["steps"] for r in rows(whole, seeds)]
        for i in range(seeds):
            jax.tree.map(np.testing.assert_array_equal, replica_params(tmp_path / name, seeds, i),
                         replica_params(tmp_path / "whole", seeds, i))


@pytest.mark.parametrize("seeds", SEEDS)
def test_a_changed_resume_is_refused_and_the_lock_holds(tmp_path, capsys, seeds):
    train.fit(cfg(tmp_path, "r", seeds, "train.steps=5"))
    run = tmp_path / "r"
    before = {p: p.read_bytes() for p in (run / "config.yaml", run / "metrics.jsonl")}
    assert cli.main(["train", "--resume", str(run), "train.batch_size=25"]) == 2
    assert "would change train.batch_size" in capsys.readouterr().err
    with rundir.lock(run):
        assert cli.main(["train", "--resume", str(run)]) == 2
    assert "is being trained by another process" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in before} == before


@pytest.mark.parametrize("seeds", SEEDS)
def test_max_bad_steps_stops_a_diverging_run(tmp_path, seeds):
    with pytest.raises(loop.Diverged, match="steps in a row had a non-finite loss"):
        train.fit(cfg(tmp_path, "d", seeds, "optimizer.name=sgd", "optimizer.learning_rate=1e30",
                      "train.max_bad_steps=3", "train.log_every=1"))
    logged = records(tmp_path / "d")
    assert len(logged) <= 4 and logged[-1]["bad_step"] == 1


@pytest.mark.parametrize("seeds", SEEDS)
def test_watching_options_hold_per_replica(watched, seeds):
    root, summaries = watched
    run = root / f"seeds{seeds}"
    assert list((run / "tensorboard").iterdir())                                   # run.tensorboard
    assert list((run / "profile").rglob("*.xplane.pb"))                            # train.profile_steps
    logged = records(run)
    assert all("mfu" in r and r["flops_per_s"] > 0 for r in logged)                 # MFU
    for row in rows(summaries[seeds], seeds):                                      # select, patience
        assert 5 <= row["selected_step"] <= 20 and "selected_val_loss" in row


def test_a_replica_logs_and_ends_as_its_own_single_run(watched):
    """Windowed means and selection: replica 0 of the two-seed run is the seed-0 run."""
    root, summaries = watched
    one, two = records(root / "seeds1"), records(root / "seeds2")
    assert [r["step"] for r in one] == [r["step"] for r in two]
    for a, b in zip(one, two):
        assert b["per_replica"]["loss"][0] == pytest.approx(a["loss"], rel=1e-5)   # both a window's mean
        assert b["loss"] == pytest.approx(np.mean(b["per_replica"]["loss"]))
    first = summaries[2]["replicas"][0]
    assert first["selected_step"] == summaries[1]["selected_step"]
    assert first["eval_accuracy"] == summaries[1]["eval_accuracy"]
    assert summaries[2]["mfu"] > 0 and summaries[2]["examples_per_s"] > summaries[1]["examples_per_s"] / 10


@pytest.mark.parametrize("seeds", SEEDS)
def test_standardized_data_is_applied_by_predict_and_export_as_a_user_runs_them(tmp_path, seeds):
    """`zoo train`, `zoo predict` and `zoo export` as typed, from a folder outside the checkout, on
    a CSV run with data.standardize: the stored standardisation is applied by both, and a run of
    two seeds predicts and exports as their ensemble; the artifact runs without zoo."""
    import subprocess
    import sys
    zoo = [sys.executable, "-m", "zoo"]
    rng = np.random.default_rng(0)
    x = rng.normal(50, 10, (200, 3))
    np.savetxt(tmp_path / "t.csv", np.column_stack([x, (x[:, 0] > 50).astype(int)]), delimiter=",",
               header="a,b,c,label", comments="", fmt=["%.5f"] * 3 + ["%d"])
    np.savetxt(tmp_path / "new.csv", x[:9], delimiter=",", header="a,b,c", comments="", fmt="%.5f")
    train_args = ["train", "mnist1d_mlp", "model.width=8", "data.name=array", "data.path=t.csv", "data.standardize=true",
                  "train.batch_size=20", "train.eval_batch_size=20", "train.steps=30", "run.plots=false",
                  "run.name=csv", *SEEDS[seeds]]
    env = subprocess_env()
    for args in (train_args, ["predict", "runs/csv", "--input", "new.csv", "--output", "p.csv"],
                 ["export", "runs/csv", *(["--ensemble"] if seeds > 1 else []), "--output", "m.jaxexport"]):
        done = subprocess.run([*zoo, *args], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    stored = json.loads((tmp_path / "runs" / "csv" / "preprocessing.json").read_text())["standardize"]
    assert stored["mean"][0] == pytest.approx(50, abs=3)
    from zoo import inference
    # trained on data.path=t.csv in tmp_path, read here from another folder: config.yaml holds the
    # file's absolute path (a relative one failed to load from anywhere else)
    assert config.load_run_config(tmp_path / "runs" / "csv").data.path == str(tmp_path / "t.csv")
    runs = ex.load_runs(tmp_path / "runs" / "csv")
    scaled = ((x[:9] - np.asarray(stored["mean"])) / np.asarray(stored["std"])).astype(np.float32)
    expected = np.mean([jax.nn.softmax(inference.outputs(r, scaled)) for r in runs], axis=0)
    written = np.genfromtxt(tmp_path / "p.csv", delimiter=",", names=True)
    np.testing.assert_allclose(written["probabilities_1"], expected[:, 1], rtol=1e-4, atol=1e-6)
    assert ("probabilities_std_1" in written.dtype.names) == (seeds > 1)
    code = ("import sys, jax, numpy as np; f = jax.export.deserialize(bytearray(open('m.jaxexport', 'rb').read()));"
            "x = np.loadtxt('new.csv', delimiter=',', skiprows=1, dtype=np.float32);"
            "print(' '.join(map(str, np.asarray(jax.nn.softmax(f.call(x)))[:, 1]))); assert 'zoo' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose([float(v) for v in done.stdout.split()], expected[:, 1], rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- every command reads a run of many
def _eval_batch(run):
    return next(iter(run.exp.dataset.eval_batches(run.cfg.train.eval_batch_size)))


def test_evaluate_reports_the_deep_ensemble_beside_each_replica(watched, capsys):
    from zoo import inference
    root, summaries = watched
    run = root / "seeds2"
    assert cli.main(["evaluate", str(run)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["replicas"]) == 2 and out["eval_accuracy"] == pytest.approx(summaries[2]["eval_accuracy"])
    runs = ex.load_runs(run, params="best")
    batch = _eval_batch(runs[0])
    logits = np.stack([inference.outputs(r, batch["x"]) for r in runs])
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    mean = (probs / probs.sum(-1, keepdims=True)).mean(0)          # the ensemble by hand
    y = batch["y"]
    assert out["ensemble"]["eval_loss"] == pytest.approx(-np.log(mean[np.arange(len(y)), y]).mean(), rel=1e-4)
    assert out["ensemble"]["eval_accuracy"] == pytest.approx((mean.argmax(-1) == y).mean())


def test_export_takes_one_replica_or_the_ensemble(watched, tmp_path):
    from zoo import inference
    root, _ = watched
    run = root / "seeds2"
    assert cli.main(["export", str(run), "--replica", "1", "--output", str(tmp_path / "one.jaxexport")]) == 0
    assert cli.main(["export", str(run), "--ensemble", "--output", str(tmp_path / "all.jaxexport")]) == 0
    runs = ex.load_runs(run, params="best")
    x = _eval_batch(runs[0])["x"][:7]
    one = jax.export.deserialize(bytearray((tmp_path / "one.jaxexport").read_bytes())).call(x)
    np.testing.assert_allclose(one, inference.outputs(runs[1], x), rtol=1e-5, atol=1e-6)
    both = jax.export.deserialize(bytearray((tmp_path / "all.jaxexport").read_bytes())).call(x)
    expected = np.mean([jax.nn.softmax(inference.outputs(r, x)) for r in runs], axis=0)
    np.testing.assert_allclose(jax.nn.softmax(both), expected, rtol=1e-5, atol=1e-6)
    assert cli.main(["export", str(root / "seeds1"), "--ensemble"]) == 2    # a single run has none


def test_generate_and_probe_take_a_replica(watched, tmp_path, capsys):
    lm = ["model.name=rnn_lm", "model.embed_dim=8", "model.hidden_size=16", "data.name=text", "data.seq_len=16",
          "train.batch_size=8", "train.eval_batch_size=8", "train.eval_batches=1", "train.steps=3", "run.plots=false",
          f"run.dir={tmp_path}", "run.name=lm", "train.seeds=2"]
    train.fit(config.load(None, lm))
    for replica in ("0", "1"):
        assert cli.main(["generate", str(tmp_path / "lm"), "--prompt", "The", "--length", "5",
                         "--replica", replica]) == 0
    out = capsys.readouterr()
    assert out.out.count("The") == 2 and out.err.count("5 tokens in ") == 2 and "compilation included" in out.err
    assert cli.main(["generate", str(tmp_path / "lm"), "--length", "5", "--timed", "2"]) == 0
    assert re.search(r"5 tokens in [\d.e-]+ s: [\d,]+ tokens/s \(best of 2, compiled before\)", capsys.readouterr().err)
    root, _ = watched
    assert cli.main(["probe", str(root / "seeds2"), "calibration", "--replica", "1", "--params", "best"]) == 0
    assert '"temperature"' in capsys.readouterr().out and (root / "seeds2" / "probes" / "calibration.json").is_file()

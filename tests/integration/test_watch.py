"""Watching a run: window-mean metrics, TensorBoard events equal to metrics.jsonl, throughput,
profiler traces, the progress bar on a terminal, curves, `zoo compare` and `zoo summary`."""
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios

import jax
import numpy as np
import pytest
from model_cases import CASES, experiment

from zoo import config, figures, throughput, train
from zoo import experiment as ex
from zoo import mesh as meshlib
from zoo.commands import cli
from zoo.figures import curves
from zoo.summary import summarize

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # tests/integration/ -> the checkout
SMALL = ["model.name=mlp", "model.width=16", "data.name=mnist1d", "train.batch_size=50", "train.eval_batch_size=500",
         "train.log_every=5", "train.steps=10", "train.eval_every=10", "mesh.data=1"]


def tensorboard_scalars(run_dir) -> dict[tuple[str, int], float]:
    """{(tag, step): value} read back from the TFRecord event files (length, crc, Event, crc)."""
    from tensorboardX.proto import event_pb2
    out = {}
    for file in sorted((run_dir / "tensorboard").iterdir()):
        data, i = file.read_bytes(), 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
            i += 12 + n + 4
            for v in event.summary.value:
                out[(v.tag, event.step)] = v.simple_value
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    os.environ["XDG_CACHE_HOME"] = str(root / "cache")  # the measured CPU peak: not in the user's cache
    cfg = config.load(None, [*SMALL, f"run.dir={root}", "run.name=w", "run.tensorboard=true",
                             "train.profile_steps=[2,3]"])
    summary = train.fit(cfg, hooks=figures.after_training(cfg))
    return root / "w", summary


def test_logged_loss_and_accuracy_are_means_over_each_window(trained):
    run_dir, _ = trained
    exp = ex.build(config.load(run_dir / "config.yaml"))
    state, shardings = ex.init_state(exp)
    step = train.make_train_step(exp, shardings)
    per_step = []
    for s in range(10):
        state, metrics = step(state, ex.train_batch(exp, s))
        per_step.append(jax.tree.map(float, meshlib.to_host(metrics)))
    records = curves.read_records(run_dir)
    assert [r["step"] for r in records] == [5, 10]
    for record, window in zip(records, (per_step[:5], per_step[5:])):
        for key in ("loss", "accuracy", "grad_norm"):
            np.testing.assert_allclose(record[key], np.mean([m[key] for m in window]), rtol=1e-5, err_msg=key)


def test_tensorboard_events_hold_the_metrics_jsonl_values(trained):
    run_dir, _ = trained
    events = tensorboard_scalars(run_dir)
    expected = {("train/loss", 5), ("train/learning_rate", 10), ("eval/accuracy", 10), ("speed/steps_per_s", 5)}
    assert expected <= set(events)
    for record in curves.read_records(run_dir):
        for key, value in record.items():
            if key != "step":
                assert events[(rundir_tag(key), record["step"])] == pytest.approx(value, rel=1e-6), key


def rundir_tag(key):
    from zoo.rundir import event_tag
    return event_tag(key)


def test_throughput_is_logged_and_summarised(trained):
    run_dir, summary = trained
    record = curves.read_records(run_dir)[-1]
    assert record["flops_per_s"] > 0 and 0 < record["mfu"] < 1
    assert record["examples_per_s"] == pytest.approx(50 * record["steps_per_s"])
    assert summary["steps_per_s"] > 0 and summary["flops_per_s"] > 0
    assert summary["params"] == summarize(ex.build(config.load(run_dir / "config.yaml")))["params"]


def test_profile_steps_write_a_trace_perfetto_and_tensorboard_open(trained):
    run_dir, _ = trained
    traces = list((run_dir / "profile" / "plugins" / "profile").glob("*/*"))
    names = {p.name for p in traces}
    assert "perfetto_trace.json.gz" in names and any(n.endswith(".xplane.pb") for n in names)


@pytest.mark.parametrize("steps", [[5], [3, 2], [1, 11]])
def test_profile_steps_must_be_a_range_inside_the_run(steps):
    with pytest.raises(config.ConfigError, match="train.profile_steps"):
        config.load(None, [*SMALL, f"train.profile_steps={steps}"])


def test_progress_bar_on_a_terminal_follows_the_run_directory_line(tmp_path):
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))  # a terminal 160 wide
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), *SMALL, "train.steps=20",
                             f"run.dir={tmp_path}", "run.name=tty", "run.plots=false"],
                            stdout=follower, stderr=follower, cwd=tmp_path,
                            env={k: v for k, v in os.environ.items() if k != "XLA_FLAGS"})
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=120) == 0, out[-2000:]
    text = out.decode(errors="replace")
    line = text[text.index("run directory:"):].split("\n")[0]
    assert line.strip() == f"run directory: {tmp_path / 'tty'}"   # whole: no bar drawn into it
    assert "20/20" in text and "loss=" in text and "lr=" in text and "acc=" in text
    assert "step=5 " not in text  # a terminal gets the bar, not the plain lines


def test_curves_log_x_for_long_runs_and_markers_for_few_points():
    short = [{"step": s, "loss": 2.0 / s, "accuracy": 0.1 * s, "learning_rate": 1e-3} for s in range(1, 11)]
    long = [{"step": s, "loss": 2.0 / s, "learning_rate": 1e-3} for s in range(100, 100_001, 100)]
    fig = curves.figure({"short": short}, "short")
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy", "learning rate"]
    assert fig.axes[0].get_xscale() == "linear" and fig.axes[0].get_lines()[0].get_marker() == "o"
    fig = curves.figure({"long": long}, "long")
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "learning rate"]
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_yscale() == "log"
    assert fig.axes[0].get_lines()[0].get_marker() in (None, "None", "")


def test_compare_prints_a_table_and_overlays_the_curves(trained, tmp_path, capsys):
    run_dir, summary = trained
    output = tmp_path / "both.png"
    assert cli.main(["compare", str(run_dir), str(run_dir), "--output", str(output)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["run", "model", "data"]
    assert lines[2].startswith(str(run_dir)) and f"{summary['eval_accuracy']:.4g}" in lines[2]
    assert output.stat().st_size > 0
    assert cli.main(["compare", str(tmp_path)]) == 2


def test_summary_command_prints_the_parameter_table(capsys):
    assert cli.main(["summary", "mnist1d_cnn", "model.channels=[4]", "model.kernel_sizes=[3]",
                     "model.strides=[2]", "mesh.data=1"]) == 0
    out = capsys.readouterr().out
    assert "blocks/0/conv/kernel  3x1x4" in out and "head/kernel" in out and "train_step:" in out


def test_cpu_peak_is_measured_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    device = jax.devices()[0]
    measured = throughput.peak_flops(device)
    assert measured > 1e8
    file = tmp_path / "zoo" / "matmul_peak.json"
    cached = json.loads(file.read_text())
    file.write_text(json.dumps({k: 123.0 for k in cached}))
    assert throughput.peak_flops(device) == 123.0
    rates = throughput.StepRates(flops=10.0, examples=4, tokens=64, peak=100.0).at(2.0)
    assert rates == {"examples_per_s": 8.0, "tokens_per_s": 128.0, "flops_per_s": 20.0, "mfu": 0.2}


@pytest.mark.parametrize("name", sorted(CASES))
def test_summary_of_every_model_counts_the_trained_params_and_nonzero_flops(name):
    exp = experiment(name)
    summary = summarize(exp)
    x = jax.tree.map(np.asarray, ex.host_batch(exp, 0)["x"])
    params = jax.eval_shape(exp.model.init, jax.random.PRNGKey(0), x)  # what fit counts, without compiling init
    assert summary["params"] == ex.count_params(params) == sum(r["count"] for r in summary["parameters"])
    assert summary["train_step"]["flops"] > summary["forward"]["flops"] > 0
    assert summary["train_step"]["memory"]["arguments"] > 0

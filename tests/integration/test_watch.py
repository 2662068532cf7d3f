"""Watching a run: window-mean metrics, TensorBoard events equal to metrics.jsonl, throughput,
profiler traces, curves, `zoo compare` and `zoo summary`."""
import json
import os
import struct

import jax
import numpy as np
import pytest
from model_cases import CASES, experiment

from zoo import config, figures, rundir, steps, throughput, train
from zoo import experiment as ex
from zoo import mesh as meshlib
from zoo.commands import cli
from zoo.figures import curves
from zoo.summary import summarize

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
    step = steps.make_train_step(exp, shardings)
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


def test_a_run_ends_with_one_sentence_and_json_only_when_asked(tmp_path, capsys):
    args = ["train", *SMALL, f"run.dir={tmp_path}", "run.plots=false"]
    assert cli.main([*args, "run.name=a"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert last == (f"test accuracy {100 * summary['eval_accuracy']:.1f}% (loss {summary['eval_loss']:.4g}) after 10 "
                    f"steps in {summary['wall_time_s']:.1f} s; run directory {tmp_path / 'a'}")
    assert cli.main([*args, "run.name=b", "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.rindex("\n{") + 1:])["steps"] == 10


def test_a_multi_seed_log_line_and_the_bar_stay_readable():
    record = {"step": 10, "loss": 0.5, "per_replica": {"loss": [0.4, 0.6, float("nan")], "accuracy": [0.1, 0.2]},
              "accuracy": 0.15, "replicas_active": 3}
    assert rundir.line(record) == "step=10 loss=0.5 [0.4..0.6] accuracy=0.15 [0.1..0.2] replicas_active=3"
    before = rundir.bar_postfix({"loss": 2.3026, "acc": 0.1, "lr": 1e-3, "eval_loss": 2.31})
    after = rundir.bar_postfix({"loss": 0.05, "acc": 1.0, "lr": 1.2345e-05, "eval_loss": 0.1})
    assert len(before) == len(after)


def _tick_label_overlaps(fig) -> int:
    """Pairs of neighbouring step-axis tick labels drawn over each other, over every panel."""
    fig.canvas.draw()
    renderer, count = fig.canvas.get_renderer(), 0
    for ax in fig.axes:
        low, high = sorted(ax.get_xlim())
        boxes = sorted((t.get_window_extent(renderer) for t in ax.xaxis.get_ticklabels(which="both")
                        if t.get_visible() and t.get_text() and low <= t.get_position()[0] <= high), key=lambda b: b.x0)
        count += sum(a.x1 > b.x0 for a, b in zip(boxes, boxes[1:]))
    return count


def test_long_run_step_labels_do_not_overlap_and_several_runs_share_one_legend_outside_the_panels():
    every_500 = [{"step": s, "loss": 30.0 / s ** 0.5, "learning_rate": 1e-3} for s in range(500, 6001, 500)]
    fig = curves.figure({"run": every_500}, "run")  # the default labels crowd 2x10^3 .. 6x10^3 here
    assert fig.axes[0].get_xscale() == "log" and _tick_label_overlaps(fig) == 0
    assert "1k" in [t.get_text() for t in fig.axes[0].xaxis.get_ticklabels()]
    fig = curves.figure({"a": every_500, "b": every_500}, "a vs b")
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    legend = fig.legends[0].get_window_extent(fig.canvas.get_renderer())
    assert all(legend.y1 <= ax.get_window_extent().y0 for ax in fig.axes)  # below every panel


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
    assert "peak: this CPU's" in out and "short samples taken so far" in out  # where the bound's peak came from
    assert "decoding cache" not in out   # a CNN has none


def test_summary_prints_the_kv_cache_of_grouped_query_attention(capsys):
    tiny = ["model.num_layers=1", "model.d_model=32", "model.num_heads=4", "data.seq_len=16", "mesh.data=1"]
    sizes = []
    for heads in (4, 1):
        assert cli.main(["summary", "shakespeare_llama", *tiny, f"model.num_kv_heads={heads}", "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        sizes.append((summary["cache_positions"], summary["cache_bytes"]))
    assert sizes == [(16, 2 * 16 * 4 * 8 * 4), (16, 2 * 16 * 1 * 8 * 4)]


def test_cpu_peak_is_the_best_of_samples_from_several_runs_and_rises_with_a_faster_run(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(throughput, "measure_matmul_peak", lambda device: 1e9)  # the sample a run takes now
    device, file = jax.devices()[0], tmp_path / "zoo" / "matmul_peak.json"
    assert throughput.peak_flops(device) == 1e9
    key, = json.loads(file.read_text())
    file.write_text(json.dumps({key: 36e6}))  # an older cache: one sample, taken on a busy machine
    assert throughput.peak_flops(device) == 1e9  # is not trusted alone: a new sample beats it
    assert json.loads(file.read_text())[key]["samples"] == 2
    file.write_text(json.dumps({key: {"flops_per_s": 5e9, "samples": 1}}))
    assert throughput.peak_flops(device) == 5e9  # the best sample so far stays
    file.write_text(json.dumps({key: {"flops_per_s": 123.0, "samples": throughput.SAMPLES}}))
    assert throughput.peak_flops(device) == 123.0  # enough samples: no more measuring
    rates = throughput.StepRates(flops=10.0, examples=4, tokens=64, peak=100.0).at(2.0)
    assert rates == {"examples_per_s": 8.0, "tokens_per_s": 128.0, "flops_per_s": 20.0, "mfu": 0.2}
    faster = throughput.StepRates(flops=10.0, peak=200.0, cpu_devices=2).at(30.0)  # 300 FLOP/s on 2 devices
    assert faster["mfu"] == 1.0 and json.loads(file.read_text())[key]["flops_per_s"] == 150.0
    assert throughput.peak_flops(device) == 150.0
    assert "a rate a training run reached" in throughput.peak_source(device)


@pytest.mark.parametrize("name", sorted(CASES))
def test_summary_of_every_model_counts_the_trained_params_and_nonzero_flops(name):
    exp = experiment(name)
    summary = summarize(exp)
    x = jax.tree.map(np.asarray, ex.host_batch(exp, 0)["x"])
    params = jax.eval_shape(exp.model.init, jax.random.PRNGKey(0), x)  # what fit counts, without compiling init
    assert summary["params"] == ex.count_params(params) == sum(r["count"] for r in summary["parameters"])
    assert summary["train_step"]["flops"] > summary["forward"]["flops"] > 0
    assert summary["train_step"]["memory"]["arguments"] > 0

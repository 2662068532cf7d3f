"""One code path for one device and many: 8 simulated devices (and FSDP) give the 1-device
result; a 2-process run over loopback gives the single-process result; checkpoints restore
across device counts; bfloat16 compute keeps float32 parameters."""
import json
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, subprocess_env

from zoo import checkpoint, config, train
from zoo import experiment as ex

SHORT = ["train.steps=20", "train.log_every=10", "train.eval_every=0", "train.checkpoint_every=0"]
# one shipped config per family, a few steps each, with batch sizes the 8 devices divide
FAMILIES = {
    "mnist1d_mlp": (["train.batch_size=96"], ["one", "eight", "fsdp"]),  # its 256x256 kernel is FSDP-sharded
    "mnist1d_cnn": (["train.batch_size=96"], ["one", "eight"]),
    "mnist1d_gru": (["train.batch_size=96", "train.steps=5"], ["one", "eight"]),
    # BatchNorm: its statistics are the global batch's on every mesh, one example per device here
    "arrowhead_fcn": (["train.batch_size=8", "train.steps=5", "train.eval_batch_size=64"], ["one", "eight", "fsdp"]),
    "charlm_transformer": (["train.batch_size=16", "train.steps=5", "train.eval_batch_size=64",
                            "train.eval_batches=2"], ["one", "eight", "fsdp"]),
    "karate_gcn": ([], ["one", "eight"]),
    "graph_cycles_gin": (["train.steps=5", "data.num_test=64", "train.eval_batch_size=64"], ["one", "eight"]),
    "spiral_node": (["train.steps=3", "train.batch_size=16", "train.eval_batch_size=8"], ["one", "eight"]),
}


def _env(devices: int) -> dict:
    env = subprocess_env(devices)
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.mark.parametrize("name", FAMILIES)  # one test per family: xdist spreads them over its workers
def test_every_family_on_eight_devices_and_fsdp_matches_one_device(tmp_path, name):
    overrides, meshes = FAMILIES[name]
    spec = {str(ROOT / "configs" / f"{name}.yaml"): ([*SHORT, *overrides], meshes)}
    cmd = [sys.executable, str(ROOT / "tests" / "e2e" / "multidevice.py"), str(tmp_path), json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(8), cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = json.loads(proc.stdout.split("RESULT ", 1)[1]).values()
    gaps = {mesh: abs(result[mesh]["eval_loss"] - result["one"]["eval_loss"]) for mesh in result if mesh != "one"}
    assert set(gaps) == set(meshes) - {"one"} and max(gaps.values()) < 1e-3, gaps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes_and_one(tmp_path, args: list[str], multi_only: list[str] = ()) -> tuple[dict, dict]:
    """Train `args` as 2 processes over loopback (RUN "multi", plus `multi_only`) and as one
    (RUN "single"); both summaries, after asserting every process succeeded."""
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, *args, "run.name=multi", *multi_only,
                               f"mesh.coordinator_address=127.0.0.1:{port}", "mesh.num_processes=2",
                               f"mesh.process_id={i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(1), cwd=ROOT)
             for i in range(2)]
    single = subprocess.run([sys.executable, *args, "run.name=single"], capture_output=True, text=True,
                            env=_env(1), cwd=ROOT, timeout=600)
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert single.returncode == 0, single.stderr[-3000:]
    return tuple(json.loads((tmp_path / name / "summary.json").read_text()) for name in ("multi", "single"))


def test_two_processes_over_loopback_match_one_process(tmp_path):
    args = [str(ROOT / "train.py"), str(ROOT / "configs" / "mnist1d_cnn.yaml"), *SHORT,
            f"run.dir={tmp_path}", "run.plots=false"]
    multi, one = _two_processes_and_one(tmp_path, args)
    assert abs(multi["eval_loss"] - one["eval_loss"]) < 1e-3
    assert multi["eval_accuracy"] == pytest.approx(one["eval_accuracy"], abs=2e-3)
    assert not (tmp_path / "multi-2").exists()          # both processes wrote into one run directory
    lines = (tmp_path / "multi" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [10, 20]  # written once, by process 0


def _train(devices: int, *args: str) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True,
                          env=_env(devices), cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_checkpoint_saved_on_eight_devices_restores_on_one_and_back(tmp_path):
    run = tmp_path / "moved"
    _train(8, str(ROOT / "configs" / "mnist1d_mlp.yaml"), *SHORT, "train.batch_size=96", f"run.dir={tmp_path}",
           "run.name=moved", "run.plots=false", "mesh.data=8", "train.steps=10")
    _train(1, "--resume", str(run), "mesh.data=1", "train.steps=20")
    _train(8, "--resume", str(run), "mesh.data=-1", "train.steps=30")
    assert json.loads((run / "summary.json").read_text())["steps"] == 30
    ckpts = sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    assert ckpts == [10, 20, 30]


def _products(jaxpr):
    """(primitive, input dtypes) of every matmul and convolution in a jaxpr, nested ones included."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("dot_general", "conv_general_dilated"):
            yield eqn.primitive.name, {v.aval.dtype for v in eqn.invars}
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                sub = getattr(sub, "jaxpr", sub)
                if hasattr(sub, "eqns"):
                    yield from _products(sub)


@pytest.mark.parametrize("name", ["mnist1d_transformer", "digits_vit"])
def test_bfloat16_reaches_every_matmul_of_the_encoders(name):
    """train.precision=bfloat16 computes the encoder in bf16 (its inputs were cast back to float32)."""
    exp = ex.build(config.load(ROOT / "configs" / f"{name}.yaml", ["train.precision=bfloat16", "train.batch_size=8"]))
    state, _ = ex.init_state(exp)
    jaxpr = jax.make_jaxpr(lambda p, b: ex.loss_sums(exp, p, b, None, train=False))(state["params"], ex.train_batch(exp, 0))
    products = list(_products(jaxpr.jaxpr))
    assert products and all(d == jnp.bfloat16 for _, dtypes in products for d in dtypes), products


def test_bfloat16_computes_in_bf16_and_keeps_float32_params(tmp_path):
    cfg = config.load(ROOT / "configs" / "mnist1d_cnn.yaml",
                      ["train.precision=bfloat16", "train.steps=200", f"run.dir={tmp_path}", "run.plots=false",
                       "train.eval_every=0", "train.log_every=100"])
    exp = ex.build(cfg)
    state, shardings = ex.init_state(exp)
    batch = ex.train_batch(exp, 0)
    jaxpr = jax.make_jaxpr(lambda p, b: ex.loss_sums(exp, p, b, None, train=False))(state["params"], batch)
    products = list(_products(jaxpr.jaxpr))
    assert products and all(d == jnp.bfloat16 for _, dtypes in products for d in dtypes), products
    summary = train.fit(cfg)
    assert summary["eval_accuracy"] > 0.6
    restored = checkpoint.Checkpointer(tmp_path / "mnist1d_cnn" / "checkpoints", 1)
    final, _ = restored.restore(checkpoint.abstract(state, shardings))
    restored.close()
    assert all(p.dtype == np.float32 for p in jax.tree.leaves(final["params"]))


def test_replicas_spread_over_two_processes_match_one_process(tmp_path):
    """mesh.seeds=2 over 2 processes: each holds 2 of the 4 replicas and every row of their
    batches (the processes split replicas, not rows), and the summary gathers all 4."""
    args = [str(ROOT / "train.py"), str(ROOT / "configs" / "mnist1d_mlp.yaml"), *SHORT, "train.seeds=4",
            "model.width=64", f"run.dir={tmp_path}", "run.plots=false"]
    multi, one = _two_processes_and_one(tmp_path, args, multi_only=["mesh.seeds=2"])
    multi, one = multi["replicas"], one["replicas"]
    assert [r["seed"] for r in multi] == [r["seed"] for r in one] == [0, 1, 2, 3]
    for mine, ref in zip(multi, one, strict=True):
        assert mine["eval_loss"] == pytest.approx(ref["eval_loss"], abs=1e-5)


def test_a_signal_to_one_process_stops_every_process_at_one_step_with_a_checkpoint(tmp_path):
    """SIGTERM reaches one process of two (a preempted host): the processes agree on the stop
    step, save the collective checkpoint there together, and both exit 128+15 naming it."""
    import re
    import signal
    import time
    port = _free_port()
    args = [sys.executable, str(ROOT / "train.py"), str(ROOT / "configs" / "mnist1d_mlp.yaml"), "train.steps=100000",
            "train.log_every=10", "train.eval_every=0", "train.checkpoint_every=0", f"run.dir={tmp_path}",
            "run.name=multi", "run.plots=false", f"mesh.coordinator_address=127.0.0.1:{port}", "mesh.num_processes=2"]
    procs = [subprocess.Popen([*args, f"mesh.process_id={i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=_env(1), cwd=ROOT) for i in range(2)]
    metrics = tmp_path / "multi" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.5)
    procs[1].send_signal(signal.SIGTERM)
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [128 + signal.SIGTERM] * 2, outs[0][1][-2000:] + outs[1][1][-2000:]
    stops = [re.search(r"stopped by signal 15 at step (\d+)", err).group(1) for _, err in outs]
    assert stops[0] == stops[1]
    saved = sorted(int(p.name) for p in (tmp_path / "multi" / "checkpoints").iterdir() if p.name.isdigit())
    assert saved == [int(stops[0])]

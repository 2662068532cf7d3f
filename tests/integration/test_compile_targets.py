"""Every model family's shipped config compiles for a TPU slice and for H100s from this CPU
host (zoo compile), and over-memory programs fail in one line on both. Needs the extras:
`pip install -e ".[test,tpu,gpu]"` (CI runs this file in its own venv); skips without them."""
import importlib.util

import jax
import pytest

from zoo import config, targets
from zoo.commands import compile as C

HAS_TPU = importlib.util.find_spec("libtpu") is not None
HAS_GPU = importlib.util.find_spec("jax_cuda12_plugin") is not None
TARGETS = [pytest.param("v5e:2x2", marks=pytest.mark.skipif(not HAS_TPU, reason="needs libtpu: zoo[tpu]")),
           pytest.param("h100:1x1x8", marks=pytest.mark.skipif(not HAS_GPU, reason="needs the CUDA plugin: zoo[gpu]"))]
# one shipped config per family, with data that ships or is generated (no data files needed)
FAMILIES = ["mnist1d_mlp", "mnist1d_cnn", "mnist1d_gru", "charlm_lstm", "charlm_transformer",
            "mnist1d_transformer", "karate_gcn", "graph_cycles_gin", "spiral_node", "toy2d_cnf", "nbody_egnn",
            "two_body_hnn", "numbers_en_de_transformer", "numbers_en_de_gru"]
SMALL = ["train.batch_size=8", "train.eval_batch_size=8", "train.eval_batches=1"]
if HAS_GPU:
    # The CUDA plugin offers compile-only topologies only while it is not a backend of this process
    # (zoo compile sets the same); collection imports this module before any test touches a device.
    jax.config.update("jax_platforms", "cpu")


@pytest.fixture(scope="module", params=TARGETS)
def target(request):
    return targets.resolve(request.param)


@pytest.mark.parametrize("name", FAMILIES)
def test_shipped_config_compiles(target, name):
    """Compiles, or (ODE models on GPU targets: a host callback) says why in one line."""
    cfg = config.load(config.config_path(name), SMALL)
    try:
        train, evaluate = C.compile_steps(cfg, target)
    except C.CannotCompile as e:
        assert target.platform == "gpu" and "calls back to Python" in str(e) and "\n" not in str(e)
        return
    assert 0 < train.peak < target.memory_bytes and evaluate.peak < target.memory_bytes
    # data-parallel gradients meet in a collective; a whole-graph batch is replicated, nothing to meet
    assert bool(train.collectives) == C.experiment(cfg, target).dataset.shardable


def test_over_memory_is_one_line(target):
    cfg = config.load(config.config_path("charlm_transformer"),
                      ["model.size=small", "model.num_layers=12", "data.seq_len=1024", "train.batch_size=2048",
                       "train.eval_batch_size=8"])
    with pytest.raises(C.DoesNotFit, match=rf"^train step needs [\d.]+ GiB per device, {target.kind} has "):
        C.compile_steps(cfg, target)


def test_remat_and_fsdp_lower_the_peak(target):
    base = ["data.seq_len=256", "train.batch_size=32", "train.eval_batch_size=8"]

    def peak(*extra):
        cfg = config.load(config.config_path("charlm_transformer"), [*base, *extra])
        return C.compile_steps(cfg, target, steps=("train",))[0].peak

    plain = peak()
    assert peak("model.remat=block") < plain
    assert peak("mesh.fsdp=4") < plain


def test_a_second_compile_loads_nothing_from_the_cache(target, tmp_path, monkeypatch):
    """JAX's persistent cache stores what a compile-only client compiles but cannot load it back:
    in a process that caches (as this suite does), the second compile of a step warned (an error
    here) and CI failed on a warm cache. zoo compile keeps the cache out of its compiles."""
    from jax.experimental.compilation_cache import compilation_cache

    from zoo.commands import host

    monkeypatch.setenv("ZOO_COMPILATION_CACHE", str(tmp_path))
    host.use_compilation_cache()
    compilation_cache.reset_cache()
    try:
        cfg = config.load(config.config_path("mnist1d_mlp"), SMALL)
        first, = C.compile_steps(cfg, target, steps=("train",))
        second, = C.compile_steps(cfg, target, steps=("train",))
        assert first.peak == second.peak
        assert not [p.name for p in tmp_path.rglob("*train_step*")]
    finally:
        monkeypatch.undo()
        host.use_compilation_cache()
        compilation_cache.reset_cache()

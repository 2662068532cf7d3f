"""zoo compile's pieces on this host's CPU devices (no extras needed): the real steps compile
from abstract state over given devices, collectives are counted, a step that cannot fit is one
line, and target names parse (those needing libtpu/CUDA fail in one line without them)."""

import jax
import pytest

from zoo import config, experiment, targets
from zoo.commands import compile as C
from zoo.errors import ConfigError
from zoo.models import entry


def cpu_target(memory_bytes=2**34):
    return targets.Target("cpu", "cpu", "cpu", "1", tuple(jax.devices()), memory_bytes)


def test_steps_compile_for_given_devices_without_placing_data():
    cfg = config.load(config.config_path("mnist1d_mlp"), ["train.batch_size=8", "train.eval_batch_size=8"])
    train, evaluate = C.compile_steps(cfg, cpu_target())
    assert (train.step, evaluate.step) == ("train", "eval")
    assert train.arguments > 0 and train.peak >= train.arguments and train.flops > evaluate.flops > 0


def test_a_config_of_many_seeds_compiles_its_stacked_step():
    overrides = ["train.batch_size=8", "train.eval_batch_size=8"]
    one, = C.compile_steps(config.load(config.config_path("mnist1d_mlp"), overrides), cpu_target(), ("train",))
    four, = C.compile_steps(config.load(config.config_path("mnist1d_mlp"), [*overrides, "train.seeds=4"]), cpu_target(),
                            ("train",))
    assert four.arguments > 3.5 * one.arguments and four.flops > 3.5 * one.flops   # four replicas' state and work


def test_a_step_that_does_not_fit_is_one_line():
    cfg = config.load(config.config_path("mnist1d_mlp"), ["train.batch_size=8", "train.eval_batch_size=8"])
    with pytest.raises(C.DoesNotFit) as e:
        C.compile_steps(cfg, cpu_target(memory_bytes=1000))
    assert "\n" not in str(e.value)
    assert str(e.value).startswith("train step needs") and "lower train.batch_size" in str(e.value)



def test_this_hosts_own_devices_compile_with_no_memory_to_exceed():
    """targets.local(): a CPU reports no memory (limit 0), which is no limit, not a limit of 0 bytes
    (every config 'needed 0.0 GiB, cpu has 0.00 GiB')."""
    cfg = config.load(config.config_path("mnist1d_mlp"), ["train.batch_size=8", "train.eval_batch_size=8"])
    target = targets.local()
    train, = C.compile_steps(cfg, target, ("train",))
    assert target.memory_bytes == 0 and train.peak > 0
    assert C.rows([train], target)[0][5] == "n/a"

def test_collectives_are_counted_from_the_compiled_text():
    hlo = ("%all-reduce.1 = f32[8]{0} all-reduce(f32[8]{0} %p), replica_groups={}\n"
           "%ags = (f32[4]{0}, f32[8]{0}) all-gather-start(f32[4]{0} %q)\n"
           "%agd = f32[8]{0} all-gather-done((f32[4]{0}, f32[8]{0}) %ags)\n")
    assert C.collectives(hlo) == {"all-reduce": 1, "all-gather": 1}


def test_exhausted_message_gives_the_bytes_needed():
    message = ("RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory required for HLO "
               "temporaries (26.84G) exceeds available HBM (15.75G).")
    assert C._exhausted_bytes(message) == pytest.approx(26.84 * 2**30)
    assert C._exhausted_bytes("INTERNAL: something else") is None


@pytest.mark.parametrize("name,topology", [("v5e-8", "2x4"), ("v5p-128", "4x4x4"), ("v4-8", "2x2x1"),
                                           ("v6e-64", "8x8"), ("v5p-16", "2x2x2")])
def test_named_slices_map_to_topologies(name, topology):
    kind, units = name.split("-")
    assert targets.slice_topology(kind, int(units)) == topology


@pytest.mark.parametrize("name", ["v9:2x2", "h100:8", "v5e-6", "a100"])
def test_bad_target_names_are_config_errors(name):
    with pytest.raises(ConfigError):
        targets.resolve(name)


def test_the_gpu_spec_ships_its_memory():
    assert "device_memory_size: 84942979072" in targets.gpu_spec("h100")


def test_command_exits_2_with_one_line(capsys):
    assert C.main(["mnist1d_mlp", "train.batch_size=7", "--target", "v9:2x2"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_sweep_spells_one_override_per_value():
    assert C.sweep("model.remat=none,block") == ["model.remat=none", "model.remat=block"]
    assert C.sweep(None) == [None]


def test_platform_choices_follow_the_mesh_not_the_host():
    cfg = config.load(config.config_path("charlm_transformer"), ["train.batch_size=8", "train.eval_batch_size=8"])
    choose = entry(cfg.model_name).for_platform
    assert choose(cfg.model, "gpu").attention == choose(cfg.model, "tpu").attention == "fused"
    assert choose(cfg.model, "cpu").attention == "explicit"
    exp = C.experiment(cfg, cpu_target())   # the model is built for the mesh's devices' platform;
    assert experiment.platform(exp.mesh) == "cpu" and exp.cfg.model.attention == "auto"  # the config stays portable


def test_bench_accelerator_runs_on_this_host(capsys):
    from bench import bench_accelerator

    assert bench_accelerator.main(["--size", "tiny", "--seq-len", "32", "--batch", "2", "--steps", "1"]) == 0
    header, _, row = capsys.readouterr().out.splitlines()
    assert "tokens/s" in header and "MFU %" in header and "gpt tiny" in row

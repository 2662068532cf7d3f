"""The `zoo` command as a user types it: the console script pip installed, run from a folder
outside the checkout. Every subcommand has its handler and a --help; a target whose extra is not
installed is one line naming the extra, exit 2."""
import argparse
import importlib.util
import subprocess

import pytest
from conftest import ROOT, subprocess_env, zoo_command

from zoo.commands import cli


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """The `zoo` parser's subcommands, as built for a user."""
    parser = cli.parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_subcommand_is_built_and_has_its_handler():
    built = subcommands()
    assert set(built) == set(cli.SUBCOMMANDS)
    missing = [name for name, sub in built.items() if not callable(sub.get_default("run"))]
    assert not missing, f"add_parser sets no run handler (p.set_defaults(run=run)) for: {missing}"


@pytest.mark.parametrize("name", sorted(cli.SUBCOMMANDS))
def test_help_of_every_subcommand_exits_0(name, tmp_path):
    proc = subprocess.run([zoo_command(), name, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"usage: zoo {name}")


@pytest.mark.skipif(importlib.util.find_spec("libtpu") is not None, reason="the tpu extra is installed here")
def test_compile_for_a_tpu_without_the_tpu_extra_names_the_extra(tmp_path):
    proc = subprocess.run([zoo_command(), "compile", "mnist1d_cnn", "--target", "v5e:2x2"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.splitlines() == ["error: target 'v5e:2x2' needs libtpu: pip install \"zoo[tpu]\""]


@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None, reason='needs the tpu extra: pip install "zoo[tpu]"')
def test_compile_for_a_tpu_with_the_tpu_extra(tmp_path):
    proc = subprocess.run([zoo_command(), "compile", "mnist1d_cnn", "--target", "v5e:2x2"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("mnist1d_cnn on ") and "train" in proc.stdout and "eval" in proc.stdout


def test_overrides_may_follow_the_options(capsys):
    assert cli.main(["train", "mnist1d_cnn", "--print-config", "train.steps=7"]) == 0
    assert "\n  steps: 7\n" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        cli.main(["train", "mnist1d_cnn", "--print-config", "steps"])
    assert stop.value.code == 2 and "unrecognized arguments: steps" in capsys.readouterr().err


def test_the_readme_names_every_subcommand():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [name for name in cli.SUBCOMMANDS if f"zoo {name} " not in readme] == []


# ----------------------------------------------------------------------------- compilation cache
CACHED_RUN = ["model.name=mlp", "model.width=16", "data.name=mnist1d", "train.batch_size=50", "train.steps=5",
              "train.eval_batches=1", "run.plots=false"]


def _train_with_cache(tmp_path, cache: str, name: str, *extra: str) -> None:
    env = subprocess_env()
    env["ZOO_COMPILATION_CACHE"] = cache
    proc = subprocess.run([zoo_command(), "train", *CACHED_RUN, f"run.dir={tmp_path / 'runs'}", f"run.name={name}", *extra],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_second_run_of_a_config_loads_its_compiled_programs_from_the_cache(tmp_path):
    cache = tmp_path / "cache"
    _train_with_cache(tmp_path, str(cache), "first")
    compiled = {p.name for p in cache.glob("*-cache")}
    big = ("jit_windowed-", "jit_make-")                     # the train step and the initialiser
    assert all(any(n.startswith(b) for n in compiled) for b in big)
    _train_with_cache(tmp_path, str(cache), "second")        # another run directory, the same programs
    new = {p.name for p in cache.glob("*-cache")} - compiled
    assert not any(n.startswith(big) for n in new), new


@pytest.mark.parametrize("off", ["env", "config"])
def test_the_compilation_cache_turns_off(tmp_path, off):
    cache = tmp_path / "cache"
    if off == "env":
        _train_with_cache(tmp_path, "0", "off")
        assert not cache.exists() and not (tmp_path / "0").exists()
    else:
        _train_with_cache(tmp_path, str(cache), "off", "run.compilation_cache=false")
        assert not list(cache.glob("*-cache"))

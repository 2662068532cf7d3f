"""A strict test environment: warnings are errors (pyproject's filterwarnings), and every test
sees one CPU device unless it starts a subprocess that asks for more.

Implicit rank promotion is allowed: bias and norm-scale broadcasting ([..., D] + [D]) is the
idiom of every layer here and of flax.linen, which these tests compare against.

Cross-checks against trusted implementations (`@pytest.mark.crosscheck`: PyTorch, PyTorch
Geometric, torchdiffeq, flax.linen) skip where their peer is not installed; with
ZOO_REQUIRE_CROSSCHECKS=1 (set by .ci/run) such a skip fails instead, so CI never passes
without them."""
import os
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from zoo.commands import host

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT / "zoo" / "data" / "files"  # the data files zoo ships (tiny Shakespeare, Planetoid)


TIERS = ("unit", "integration", "e2e")

# Compiling is most of this suite's time: hundreds of small programs, each run for a few steps. Every
# test process, and every command a test starts (subprocess_env), compiles them with XLA's backend
# optimisation off and its expensive LLVM passes skipped: the same programs, computing the same
# values within float rounding, compiled in about half the time, only slower to run for long.
# zoo's own commands, the README's main job and bench/ compile fully. ZOO_TEST_FULL_COMPILE=1 keeps
# XLA's defaults (.ci/run's accelerator step: its verdicts on what fits are XLA's full compile).
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if os.environ.get("ZOO_TEST_FULL_COMPILE") == "1":
    FAST_COMPILE = ""
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()


def subprocess_env(devices: int | None = None, **extra: str) -> dict:
    """The environment of a command a test starts: this one's, with the suite's compile flags and
    one CPU device, or `devices` simulated ones (not whatever XLA_FLAGS this process was given)."""
    flags = f"{FAST_COMPILE} --xla_force_host_platform_device_count={devices}" if devices else FAST_COMPILE
    return {**os.environ, "XLA_FLAGS": flags.strip(), **extra}

# Every test process (xdist workers, and the zoo commands they start) keeps its compiled programs
# in one persistent compilation cache, as zoo's command line does (zoo.commands.host): a program
# compiled by one test is loaded by the next (one folder per user, kept between sessions; set
# ZOO_COMPILATION_CACHE=0 to compile everything afresh).
os.environ.setdefault("ZOO_COMPILATION_CACHE", str(Path(tempfile.gettempdir()) / f"zoo-test-compilation-cache-{os.getuid()}"))
host.use_compilation_cache()  # before any test module compiles: JAX decides once per process


def pytest_collection_modifyitems(items):
    """Each test carries its tier's marker, from its folder: `pytest -m "not e2e"` selects by it."""
    for item in items:
        path = Path(item.path)
        if path.is_relative_to(ROOT / "tests") and path.relative_to(ROOT / "tests").parts[0] in TIERS:
            item.add_marker(path.relative_to(ROOT / "tests").parts[0])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.skipped and item.get_closest_marker("crosscheck") and os.environ.get("ZOO_REQUIRE_CROSSCHECKS") == "1":
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"a cross-check skipped where ZOO_REQUIRE_CROSSCHECKS=1: {reason}"


def zoo_command() -> str:
    """The `zoo` console script that `pip install` put beside this interpreter: what a user types."""
    path = Path(sysconfig.get_path("scripts")) / "zoo"
    assert path.is_file(), f"no {path}: install the project (pip install -e .) so the zoo command exists"
    return str(path)


@pytest.fixture
def run_cli(tmp_path):
    """Run `python train.py ...` as a user would, in a subprocess, runs under tmp_path."""
    import subprocess

    def run(*args, timeout=300, check=False):
        env = subprocess_env(PYTHONUNBUFFERED="1")
        proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"train.py {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
        return proc
    return run

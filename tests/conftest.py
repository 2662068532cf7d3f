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
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("XLA_FLAGS", None)
        proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"train.py {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
        return proc
    return run

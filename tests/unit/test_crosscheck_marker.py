"""A cross-check that skips fails the run where ZOO_REQUIRE_CROSSCHECKS=1 (CI), and skips elsewhere."""
import os
import shutil
import subprocess
import sys

from conftest import ROOT

SKIPPING = '''import pytest


@pytest.mark.crosscheck
def test_against_a_peer_that_is_missing():
    pytest.importorskip("a_peer_that_is_not_installed")
'''


def run_pytest(folder, require: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ZOO_REQUIRE_CROSSCHECKS": require}
    return subprocess.run([sys.executable, "-m", "pytest", str(folder), "-n", "0", "-p", "no:cacheprovider", "-o", "addopts=",
                           "-o", "markers=crosscheck"], capture_output=True, text=True, env=env, cwd=folder, timeout=120)


def test_a_skipped_crosscheck_fails_only_where_required(tmp_path):
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_peer.py").write_text(SKIPPING)
    required, optional = run_pytest(tmp_path, "1"), run_pytest(tmp_path, "")
    assert required.returncode == 1 and "a cross-check skipped where ZOO_REQUIRE_CROSSCHECKS=1" in required.stdout
    assert "1 failed" in required.stdout
    assert optional.returncode == 0 and "1 skipped" in optional.stdout, optional.stdout

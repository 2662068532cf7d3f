"""Nothing lost, nothing silent: bad inputs end in one line, runs resume exactly or refuse,
checkpoints are verified, non-finite steps never reach the params, signals and full disks are
one line, and the loop keeps a bounded number of steps in flight."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from bad_inputs import CASES
from conftest import subprocess_env

from zoo import checkpoint, config, rundir, steps, train
from zoo import experiment as ex
from zoo.commands import cli

ROOT = Path(__file__).resolve().parents[2]


def _materialize(tmp_path: Path, args, files) -> list[str]:
    for name, content in files.items():
        content = content.replace("{tmp}", str(tmp_path)) if isinstance(content, str) else content
        (tmp_path / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return [a.replace("{tmp}", str(tmp_path)) for a in args]


@pytest.mark.parametrize("args, files, expect", CASES, ids=[f"{i}:{' '.join(c[0])[-60:]}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_line_exit_2_and_leaves_no_run_directory(tmp_path, capsys, args, files, expect):
    argv = _materialize(tmp_path, args, files)
    runs = tmp_path / "out"
    if not any(a.startswith("run.dir=") for a in argv):  # after the config file, before any --flag
        argv.insert(len(argv) if argv[0].startswith("--") else 0 if "=" in argv[0] else 1, f"run.dir={runs}")
    code = cli.main(["train", *argv])
    out = capsys.readouterr()
    assert code == 2, out.err[-3000:]
    assert out.err.count("\n") == 1 and out.err.startswith("error: "), out.err[-3000:]
    assert expect.replace("{tmp}", str(tmp_path)) in out.err
    assert not runs.exists()


# ----------------------------------------------------------------------------- resume
SMALL = ["model.name=mlp", "model.width=16", "model.dropout_rate=0.1", "data.name=mnist1d", "train.batch_size=50",
         "train.eval_batch_size=500", "train.eval_batches=1", "train.log_every=5", "run.plots=false"]


def small_cfg(tmp_path, name, *overrides):
    return config.load(None, [*SMALL, f"run.dir={tmp_path}", f"run.name={name}", *overrides])


class Crash(Exception):
    """Stands for a process killed after `step` (its checkpoints and logs stay as they were)."""


def _crash_at(step):
    def on_step(done, state):
        if done == step:
            raise Crash(done)
    return on_step


def _leaves(run_dir: Path):
    run = ex.load_run(run_dir)
    return [np.asarray(x) for x in jax.tree.leaves(run.params)]


def _steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of 30 steps with checkpoints at 10, 20, 30 (not to be modified)."""
    tmp = tmp_path_factory.mktemp("ref")
    train.fit(small_cfg(tmp, "ref", *RUN))
    return tmp / "ref"


RUN = ["train.steps=30", "train.checkpoint_every=10"]


def _copy(run: Path, tmp_path: Path) -> Path:
    shutil.copytree(run, tmp_path / run.name)
    return tmp_path / run.name


def test_resume_starts_from_its_checkpoint_logs_each_step_once_and_ends_bit_for_bit(tmp_path, reference):
    with pytest.raises(Crash):
        train.fit(small_cfg(tmp_path, "cut", *RUN), on_step=_crash_at(17))
    assert _steps(tmp_path / "cut") == [5, 10, 15]          # 15 was logged after the checkpoint of step 10
    seen = []
    train.fit(config.load_run_config(tmp_path / "cut", ["run.resume=true"]), on_step=lambda done, _: seen.append(done))
    assert seen[0] == 11 and seen[-1] == 30                # from the checkpoint's step, not from 0
    assert _steps(tmp_path / "cut") == [5, 10, 15, 20, 25, 30]   # 15 once: the stale record was dropped
    for a, b in zip(_leaves(reference), _leaves(tmp_path / "cut")):
        np.testing.assert_array_equal(a, b)


def test_run_killed_before_its_first_checkpoint_resumes_from_step_0(tmp_path, reference):
    with pytest.raises(Crash):
        train.fit(small_cfg(tmp_path, "cut", *RUN), on_step=_crash_at(6))
    assert checkpoint.Checkpointer(tmp_path / "cut" / "checkpoints", 3).latest_step() is None
    assert train.fit(config.load_run_config(tmp_path / "cut", ["run.resume=true"]))["steps"] == 30
    for a, b in zip(_leaves(reference), _leaves(tmp_path / "cut")):
        np.testing.assert_array_equal(a, b)


def test_resume_refuses_inexact_overrides_and_leaves_the_run_as_it_was(tmp_path, capsys, reference):
    run = _copy(reference, tmp_path)
    before = {p: p.read_bytes() for p in (run / "config.yaml", run / "metrics.jsonl")}
    for change in ("model.width=64", "train.batch_size=25", "train.seed=1", "train.precision=bfloat16",
                   "optimizer.learning_rate=0.1", "data.val_size=100"):
        assert cli.main(["train", "--resume", str(run), change]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"would change {change.split('=')[0]}" in err and "--force-resume" in err
        assert {p: p.read_bytes() for p in before} == before
    with rundir.lock(run):
        assert cli.main(["train", "--resume", str(run)]) == 2
    assert "is being trained by another process" in capsys.readouterr().err


# orbax leaves a coroutine un-awaited when a restore fails on mismatched shapes (the refused model change)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_force_resume_accepts_a_new_learning_rate_and_a_model_change_fails_in_one_line(tmp_path, capsys, reference):
    import gc
    run = _copy(reference, tmp_path)
    assert cli.main(["train", "--resume", str(run), "--force-resume", "optimizer.learning_rate=0.01",
                     "train.steps=32"]) == 0
    stored = config.load(run / "config.yaml")
    assert stored.optimizer.learning_rate == 0.01 and not stored.run.allow_changes   # one-off permission
    before = (run / "config.yaml").read_bytes()
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run), "--force-resume", "model.width=64"]) == 2
    err = capsys.readouterr().err
    assert "does not fit the changed config" in err and err.count("\n") == 1
    assert (run / "config.yaml").read_bytes() == before
    gc.collect()


def test_runs_started_at_once_with_one_name_get_directories_of_their_own(tmp_path):
    from concurrent.futures import ThreadPoolExecutor
    cfg = small_cfg(tmp_path, "same")
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: rundir.prepare(cfg), range(8)))
    assert len(set(made)) == 8 and all(p.is_dir() for p in made)


def test_a_failed_setup_removes_its_fresh_run_directory(tmp_path, capsys, reference):
    args = ["train", *SMALL, f"run.dir={tmp_path}", "run.name=warm", f"train.init_from={reference}", "model.width=32"]
    assert cli.main(args) == 2                                  # mismatched shapes, found after the mkdir
    assert "train.init_from=" in capsys.readouterr().err
    assert not (tmp_path / "warm").exists()


# ----------------------------------------------------------------------------- checkpoints
def _truncate(step_dir):
    biggest = max((p for p in step_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 2])


def _delete(step_dir):
    next(p for p in step_dir.rglob("*") if p.is_file() and "ocdbt" in str(p) and p.parent.name == "d").unlink()


def _flip(step_dir):
    biggest = max((p for p in step_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(biggest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    biggest.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _delete, _flip])
def test_a_damaged_checkpoint_is_skipped_for_the_newest_intact_one(reference, tmp_path, capsys, damage):
    run = _copy(reference, tmp_path)
    damage(run / "checkpoints" / "30")
    assert ex.load_run(run).step == 20
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint 30 skipped" in err and "restored step 20 instead" in err
    assert not damage.__name__ == "_flip" or checkpoint.damage(run / "checkpoints" / "30").endswith("(sha256 mismatch)")
    damage(run / "checkpoints" / "20")
    damage(run / "checkpoints" / "10")
    assert cli.main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err                  # all damaged: one line, each step's reason in it
    assert err.count("\n") == 1 and err.startswith("error: ") and "no intact" in err and "checkpoint 10 skipped" in err


def test_damaged_newest_steps_are_replaced_so_the_final_parameters_are_on_disk(reference, tmp_path, capsys):
    run = _copy(reference, tmp_path)
    _flip(run / "checkpoints" / "30")
    _truncate(run / "checkpoints" / "20")
    assert ex.load_run(run, step=30).step == 10               # the newest intact at or below 30
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint 30 skipped" in err and "checkpoint 20 skipped" in err
    assert cli.main(["train", "--resume", str(run)]) == 0     # from 10: saves 20 below the damaged 30, replaces 30
    capsys.readouterr()
    ckpt = checkpoint.Checkpointer(run / "checkpoints", 3, create=False)
    assert sorted(ckpt.manager.all_steps()) == [10, 20, 30]
    assert [checkpoint.damage(run / "checkpoints" / str(s), ckpt.run) for s in (10, 20, 30)] == [None] * 3
    ckpt.close()
    assert ex.load_run(run).step == 30 and capsys.readouterr().err == ""
    for a, b in zip(_leaves(reference), _leaves(run)):
        np.testing.assert_array_equal(a, b)


def _put_in_place_of(run: Path, source: int, target: int, old_manifest: bool = False):
    shutil.rmtree(run / "checkpoints" / str(target))
    shutil.copytree(run / "checkpoints" / str(source), run / "checkpoints" / str(target))
    if old_manifest:  # as written before manifests recorded the step and the run
        manifest = run / "checkpoints" / str(target) / checkpoint.MANIFEST
        manifest.write_text(json.dumps({"sha256": json.loads(manifest.read_text())["sha256"]}))


@pytest.mark.parametrize("old_manifest", [False, True])
def test_a_checkpoint_that_is_not_what_its_name_says_is_skipped(reference, tmp_path, capsys, old_manifest):
    run = _copy(reference, tmp_path)
    _put_in_place_of(run, 20, 30, old_manifest)
    assert ex.load_run(run).step == 20
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint 30 skipped" in err and "not 30" in err


def test_a_checkpoint_of_another_run_is_skipped_and_old_manifests_still_restore(reference, tmp_path, capsys):
    run, other = _copy(reference, tmp_path), tmp_path / "other"
    shutil.copytree(reference, other)
    (other / rundir.RUN_ID).write_text("another run")         # other's own checkpoints say so
    for step in (10, 20):
        manifest = other / "checkpoints" / str(step) / checkpoint.MANIFEST
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "run": "another run"}))
    shutil.rmtree(other / "checkpoints" / "30")
    shutil.copytree(run / "checkpoints" / "30", other / "checkpoints" / "30")
    assert ex.load_run(other).step == 20
    assert "written by another run" in capsys.readouterr().err
    (run / rundir.RUN_ID).unlink()                            # a run from before run ids: unknown, not damage
    assert ex.load_run(run).step == 30 and capsys.readouterr().err == ""


# ----------------------------------------------------------------------------- full and read-only disks
def _mount(*args) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root ignores permissions, so a real file system is the honest full or
    read-only disk); skips where this process may not mount."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)):
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN); the full-disk cases run where it is allowed")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def _fill(disk: Path, leave: int = 0):
    """Fill `disk` until fewer than `leave` bytes are free."""
    with open(disk / "filler", "ab", buffering=0) as f:  # unbuffered: nothing left to flush at close
        while os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize > leave:
            try:
                f.write(b"\0" * 4096)
            except OSError:
                break


def _intact(run: Path) -> list[int]:
    ckpt = checkpoint.Checkpointer(run / "checkpoints", 3, create=False)
    steps = sorted(s for s in ckpt.manager.all_steps() if checkpoint.damage(run / "checkpoints" / str(s)) is None)
    ckpt.close()
    return steps


def test_a_disk_filling_up_during_a_save_is_an_oserror_naming_the_folder_earlier_checkpoints_intact(small_disk):
    def fill_after_the_first_checkpoint(done, state):
        if done == 15:  # the first checkpoint is saved in the background: once it is sealed
            sealed = small_disk / "full" / "checkpoints" / "10" / checkpoint.MANIFEST
            deadline = time.time() + 60
            while not sealed.exists() and time.time() < deadline:
                time.sleep(0.01)
            _fill(small_disk)
    with pytest.raises(OSError) as caught:
        train.fit(small_cfg(small_disk, "full", *RUN), on_step=fill_after_the_first_checkpoint)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(small_disk / "full" / "checkpoints")
    (small_disk / "filler").unlink()
    assert _intact(small_disk / "full") == [10]
    assert not list((small_disk / "full" / "checkpoints").glob("*tmp*"))     # orbax's half-written save removed


def test_a_full_disk_is_one_line_and_a_fresh_run_leaves_no_directory(small_disk, capsys):
    _fill(small_disk)
    assert cli.main(["train", *SMALL, f"run.dir={small_disk}", "run.name=full", *RUN]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "Traceback" not in err
    assert not (small_disk / "full").exists()


def test_a_disk_that_fills_during_a_save_is_one_line_at_the_command_line(small_disk, capsys):
    _fill(small_disk, leave=250_000)                     # room for the config, logs and one or two checkpoints
    assert cli.main(["train", *SMALL, f"run.dir={small_disk}", "run.name=full", *RUN]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot write {small_disk / 'full' / 'checkpoints'}: No space left" in err, err
    assert _intact(small_disk / "full") in ([10], [10, 20])


def test_a_read_only_checkpoint_folder_is_one_line_at_once(reference, small_disk, capsys):
    run = _copy(reference, small_disk)
    folder = run / "checkpoints"
    if not (_mount("--bind", str(folder), str(folder)) and _mount("-o", "remount,ro,bind", str(folder))):
        pytest.skip("a read-only bind mount needs root (CAP_SYS_ADMIN)")
    try:
        assert cli.main(["train", "--resume", str(run), "train.steps=40"]) == 2   # no barrier timeout: seconds
    finally:
        subprocess.run(["umount", str(folder)], check=True)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot write {folder}: Read-only file system" in err
    assert _intact(run) == [10, 20, 30]


# ----------------------------------------------------------------------------- divergence
def test_a_diverging_run_skips_its_bad_steps_stops_and_writes_only_finite_checkpoints(tmp_path, capsys):
    args = ["train", *SMALL, f"run.dir={tmp_path}", "run.name=d", "optimizer.name=sgd", "optimizer.learning_rate=1e6",
            "train.steps=200", "train.checkpoint_every=2", "train.log_every=1"]
    assert cli.main(args) == 3
    out = capsys.readouterr()
    assert "error: stopped at step" in out.err and "learning rate" in out.err
    assert "loss=nan" in out.out or "loss=inf" in out.out                # the terminal says nan
    records = [json.loads(line) for line in (tmp_path / "d" / "metrics.jsonl").read_text().splitlines()]
    assert any(r["loss"] is None for r in records) and sum(r["bad_step"] for r in records) >= 10
    ckpt = checkpoint.Checkpointer(tmp_path / "d" / "checkpoints", 3, create=False)
    for step in ckpt.manager.all_steps():
        exp = ex.build(config.load(tmp_path / "d" / "config.yaml"))
        state, _ = ckpt.restore(ex.abstract_state(exp)[0], step)
        assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state))
    ckpt.close()


def test_non_finite_steps_never_reach_the_params(tmp_path):
    exp = ex.build(small_cfg(tmp_path, "x", "optimizer.name=sgd", "optimizer.learning_rate=1e30"))
    state, shardings = ex.init_state(exp)
    step = steps.make_train_step(exp, shardings)
    for s in range(6):
        state, metrics = step(state, ex.train_batch(exp, s))
        assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state["params"]))
    assert int(metrics["bad_step"]) == 1 and int(state["step"]) == 6


# ----------------------------------------------------------------------------- signals, devices
def _catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler installed for `signum` (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads signal masks from Linux /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("moment", ["start", "compile"])
def test_a_signal_before_the_loop_is_one_line_and_leaves_nothing(tmp_path, signum, moment):
    env = subprocess_env()
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *SMALL, f"run.dir={tmp_path / 'runs'}"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # zoo's handler for SIGTERM is in place from argument parsing on (Python's own SIGTERM
    # action kills silently); the loop's handlers come seconds later, after imports and compiling
    while proc.poll() is None and not _catches(proc.pid, signal.SIGTERM):
        pass
    if moment == "compile":  # the run directory is made and announced; the first step compiles next
        while not proc.stdout.readline().startswith("run directory:"):
            pass
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err[-2000:]
    assert err.count("\n") == 1 and "Traceback" not in err, err[-2000:]
    if "interrupted by signal" in err:  # before the loop took the signal over: nothing is left
        assert not any((tmp_path / "runs").glob("*"))
    else:                               # the loop's first step boundary came first: a checkpoint to resume
        assert "resume with: zoo train --resume" in err and any((tmp_path / "runs").glob("*/checkpoints/1"))


def test_a_directory_a_killed_start_left_is_taken_by_the_next_start(tmp_path):
    left, busy, run = tmp_path / "left", tmp_path / "busy", tmp_path / "run"
    for d in (left, busy, run):
        d.mkdir()
        (d / ".lock").write_text("1234")               # a start SIGKILLed right after its mkdir
    (run / "config.yaml").write_text("{}")             # a run, even with nothing else in it
    with rundir.lock(busy):                            # another process is starting there
        made = [rundir.prepare(small_cfg(tmp_path, name)) for name in ("left", "busy", "run")]
    assert made == [left, tmp_path / "busy-2", tmp_path / "run-2"]
    rundir.remove_untrained()                          # as a failed command would: the fresh ones go
    assert not left.exists() and busy.is_dir() and run.is_dir()


def test_eight_devices_keep_a_bounded_number_of_steps_in_flight(tmp_path):
    """XLA's CPU all-reduce aborts with some 200 steps queued on 8 devices (measured before the
    fix, tests/e2e/test_reliability.py's docstring); the loop now waits two steps behind."""
    env = subprocess_env(8)
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "mnist1d_cnn", "mesh.data=8", "train.batch_size=96",
                           "train.steps=200", "train.log_every=1000", "train.eval_every=0", "train.eval_batches=1",
                           f"run.dir={tmp_path}", "run.plots=false"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(next(tmp_path.glob("*/summary.json")).read_text())["steps"] == 200

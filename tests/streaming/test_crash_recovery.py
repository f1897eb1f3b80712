"""SIGKILL a real query process at each step of the batch loop and at random moments,
restart it on the same checkpoint, and prove the committed output holds every expected
row exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest

from unbounded.demo.files import generate_events, job_command, verify
from unbounded.files.manifest import FileSinkManifest
from unbounded.testing.faults import FAULT_POINTS

FILES, PER_FILE = 8, 500


@pytest.fixture
def workdir(tmp_path):
    generate_events(str(tmp_path / "input"), FILES, PER_FILE)
    return str(tmp_path)


def _run(cmd, env, timeout=120):
    return subprocess.run(cmd, env=env, timeout=timeout, capture_output=True, text=True,
                          check=False)


def _assert_exactly_once(workdir):
    proof = verify(workdir)
    assert proof["input rows"] == FILES * PER_FILE
    assert proof["duplicates"] == 0, proof
    assert proof["missing"] == 0, proof
    assert proof["unexpected"] == 0, proof
    assert proof["output rows"] == proof["expected output rows"] == FILES * PER_FILE * 9 // 10


def _exists(workdir, *parts):
    return os.path.exists(os.path.join(workdir, "checkpoint", *parts))


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_kill_at_each_batch_step_then_restart_emits_each_row_once(workdir, python_env, point):
    cmd = job_command(workdir, files_per_trigger=2)
    crashed = _run(cmd, {**python_env, "UNBOUNDED_FAULT": f"{point}@1"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    offsets_written = point not in ("before-offset-write",)
    committed = point == "after-commit-write"
    assert _exists(workdir, "offsets", "1") == offsets_written
    assert _exists(workdir, "commits", "1") == committed
    assert _exists(workdir, "commits", "0")
    finished = _run(cmd, python_env)
    assert finished.returncode == 0, finished.stderr
    assert sorted(int(n) for n in os.listdir(os.path.join(workdir, "checkpoint", "commits"))
                  if n.isdigit()) == [0, 1, 2, 3]
    _assert_exactly_once(workdir)


def test_files_of_a_batch_killed_mid_write_are_never_read(workdir, python_env):
    cmd = job_command(workdir, files_per_trigger=2)
    crashed = _run(cmd, {**python_env, "UNBOUNDED_FAULT": "mid-sink-write@2"})
    assert crashed.returncode == -signal.SIGKILL
    out = os.path.join(workdir, "output")
    on_disk = {os.path.join(out, n) for n in os.listdir(out) if n.endswith(".parquet")}
    listed = set(FileSinkManifest(out).all_files())
    assert listed < on_disk, "the killed batch's data files exist but are not in the manifest"
    assert _run(cmd, python_env).returncode == 0
    _assert_exactly_once(workdir)


def test_random_kills_then_restart_emit_each_row_once(workdir, python_env):
    rng = random.Random(20261125)
    cmd = job_command(workdir, files_per_trigger=1)
    for _ in range(4):
        proc = subprocess.Popen(cmd, env=python_env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            time.sleep(rng.uniform(0.5, 2.0))
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert _run(cmd, python_env).returncode == 0
    _assert_exactly_once(workdir)


def test_two_processes_on_one_checkpoint_exactly_one_runs(workdir, python_env):
    cmd = job_command(workdir, files_per_trigger=1)
    # 8 batches of >= 1 s: the first run is still active when the second one, started
    # after commits/0, reaches the checkpoint, even when a loaded machine (two test
    # workers) takes seconds to start a Python process; with 0.3 s batches it had
    # sometimes finished by then and the second ran cleanly
    slow = {**python_env, "UNBOUNDED_TEST_BATCH_DELAY": "1.0"}
    first = subprocess.Popen(cmd, env=slow, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _exists(workdir, "commits", "0") and time.monotonic() < deadline:
            time.sleep(0.02)
        second = _run(cmd, python_env, timeout=60)
        assert second.returncode != 0
        assert "Another run of this query is active" in second.stderr
        assert os.path.join(workdir, "checkpoint") in second.stderr
        assert first.wait(120) == 0
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(30)
    _assert_exactly_once(workdir)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_sigint_stops_cleanly_and_restart_continues_exactly(workdir, python_env,
                                                                     sig):
    cmd = job_command(workdir, files_per_trigger=1)
    # 8 batches of >= 1 s: the job is still running when the test sees commits/1 and
    # signals it, even when a loaded machine stalls the test's polling for seconds
    slow = {**python_env, "UNBOUNDED_TEST_BATCH_DELAY": "1.0"}
    log_path = os.path.join(workdir, "job.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=slow, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while not _exists(workdir, "commits", "1") and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(sig)
        code = proc.wait(60)
        with open(log_path) as log:
            assert code == 0, log.read()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
    offsets = set(os.listdir(os.path.join(workdir, "checkpoint", "offsets")))
    commits = set(os.listdir(os.path.join(workdir, "checkpoint", "commits")))
    assert offsets == commits, "a graceful stop leaves no half-done batch"
    assert len(commits) < FILES
    assert _run(cmd, python_env).returncode == 0
    _assert_exactly_once(workdir)



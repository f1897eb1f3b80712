"""SIGKILL a sessionization job (applyInPandasWithState, event-time timeouts) at each
batch step and at random; after a restart its output equals an uninterrupted run's."""

from __future__ import annotations

import json
import os
import random
import sys
from datetime import datetime, timedelta

import pytest

from crash_runs import kill_at_random, run_job, run_killed_at
from unbounded.sql import SparkSession
from unbounded.testing.faults import FAULT_POINTS

JOB = os.path.join(os.path.dirname(__file__), "group_state_job.py")
FILES, PER_FILE = 5, 120


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Events 2 s apart with random pauses, a little out of order; each file's users are
    one of three groups of 4, so sessions close while later files are read. Every test of
    the module reads this one folder (the job never writes to it)."""
    folder = tmp_path_factory.mktemp("group-state-input")
    rng = random.Random(5)
    clock = datetime(2026, 11, 25, 10, 0, 0)
    for f in range(FILES):
        lines = []
        for i in range(PER_FILE):
            clock += timedelta(seconds=2 + (150 if rng.random() < 0.1 else 0))
            ts = clock - timedelta(seconds=rng.uniform(0, 10))
            lines.append(json.dumps({"user": f"u{rng.randrange(4) + 4 * (f % 3)}", "amount": i % 7,
                                     "ts": ts.strftime("%Y-%m-%d %H:%M:%S")}))
        (folder / f"events-{f:03d}.json").write_text("\n".join(lines) + "\n")
        os.utime(folder / f"events-{f:03d}.json", (1_700_000_000 + f, 1_700_000_000 + f))
    return folder


@pytest.fixture
def workdir(inputs, tmp_path):
    """This test's folder for outputs and checkpoints, and the module's input."""
    (tmp_path / "input").symlink_to(inputs, target_is_directory=True)
    return tmp_path


def _cmd(workdir, out="out", cp="cp", where=""):
    return [sys.executable, JOB, str(workdir / "input"), str(workdir / out), str(workdir / cp),
            where]


def _sessions(spark, folder) -> list[tuple]:
    return sorted(tuple(r) for r in spark.read.parquet(str(folder)).collect())


@pytest.fixture(scope="module")
def expected(inputs, tmp_path_factory) -> list[tuple]:
    """The uninterrupted run's sessions, computed once for the module's tests."""
    run = tmp_path_factory.mktemp("group-state-clean")
    (run / "input").symlink_to(inputs, target_is_directory=True)
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "..",
                                                   "src"))
    env.pop("UNBOUNDED_FAULT", None)
    clean = run_job(_cmd(run, "clean-out", "clean-cp"), env)
    assert clean.returncode == 0, clean.stderr
    session = SparkSession.builder.appName("group-state-crash-expected").create()
    try:
        rows = _sessions(session, run / "clean-out")
    finally:
        session.stop()
    assert len(rows) > 12, "the input must close sessions before its end"
    return rows


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_sessions_survive_sigkill_at_each_step(workdir, python_env, spark, expected, point):
    run_killed_at(_cmd(workdir), python_env, point, 2)
    finished = run_job(_cmd(workdir), python_env)
    assert finished.returncode == 0, finished.stderr
    assert _sessions(spark, workdir / "out") == expected


def test_sessions_survive_random_sigkills(workdir, python_env, spark, expected):
    rng = random.Random(3)
    for _ in range(3):
        kill_at_random(_cmd(workdir), python_env, rng, (0.6, 1.8))
    assert run_job(_cmd(workdir), python_env).returncode == 0
    assert _sessions(spark, workdir / "out") == expected


def test_sessions_survive_random_sigkills_with_the_calls_in_worker_processes(
        workdir, python_env, spark, expected):
    rng = random.Random(4)
    for _ in range(2):
        kill_at_random(_cmd(workdir, where="workers"), python_env, rng, (1.0, 2.5))
    assert run_job(_cmd(workdir, where="workers"), python_env).returncode == 0
    assert _sessions(spark, workdir / "out") == expected


def test_a_worker_killed_mid_batch_fails_it_and_a_restart_equals_an_uninterrupted_run(
        workdir, python_env, spark, expected):
    env = dict(python_env, KILL_WORKER_ONCE=str(workdir / "killed"))
    failed = run_job(_cmd(workdir, where="workers"), env)
    assert failed.returncode != 0 and (workdir / "killed").exists()
    assert "Python worker exited unexpectedly (crashed) with exit code -9" in failed.stderr
    assert run_job(_cmd(workdir, where="workers"), env).returncode == 0
    assert _sessions(spark, workdir / "out") == expected

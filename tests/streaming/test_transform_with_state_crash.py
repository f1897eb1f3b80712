"""SIGKILL a transformWithStateInPandas sessionization job (value, list and map state,
event-time timers) at each batch step, between the commits of its state variables' stores
and at random; after a restart its output and its state stores equal an uninterrupted
run's."""

from __future__ import annotations

import json
import os
import random
import sys
from datetime import datetime, timedelta
from typing import Any

import pytest

from crash_runs import kill_at_random, run_job, run_killed_at
from unbounded.testing.faults import FAULT_POINTS

JOB = os.path.join(os.path.dirname(__file__), "transform_state_job.py")
FILES, PER_FILE = 5, 100
STORES = ("var-session", "var-amounts", "var-counts", "timers")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Events 2 s apart with random pauses, a little out of order; each file's users are
    one of three groups of 4, so sessions close while later files are read."""
    folder = tmp_path_factory.mktemp("tws-crash") / "input"
    folder.mkdir()
    rng = random.Random(11)
    clock = datetime(2026, 11, 25, 10, 0, 0)
    for f in range(FILES):
        lines = []
        for i in range(PER_FILE):
            clock += timedelta(seconds=2 + (150 if rng.random() < 0.1 else 0))
            ts = clock - timedelta(seconds=rng.uniform(0, 10))
            lines.append(json.dumps({"user": f"u{rng.randrange(4) + 4 * (f % 3)}",
                                     "amount": i % 5, "ts": ts.strftime("%Y-%m-%d %H:%M:%S")}))
        (folder / f"events-{f:03d}.json").write_text("\n".join(lines) + "\n")
        os.utime(folder / f"events-{f:03d}.json", (1_700_000_000 + f, 1_700_000_000 + f))
    return folder


def _cmd(inputs: Any, run: Any) -> list[str]:
    return [sys.executable, JOB, str(inputs), str(run / "out"), str(run / "cp")]


def _outcome(spark: Any, run: Any) -> tuple[list[tuple[Any, ...]], dict[str, list[str]]]:
    """The job's output rows and each state store's rows after its last batch."""
    rows = sorted((tuple(r) for r in spark.read.parquet(str(run / "out")).collect()), key=repr)
    stores = {name: sorted(repr(tuple(r)) for r in spark.read.format("statestore")
                           .option("storeName", name).load(str(run / "cp")).collect())
              for name in STORES}
    return rows, stores


@pytest.fixture(scope="module")
def expected(inputs, tmp_path_factory) -> tuple[list[tuple[Any, ...]], dict[str, list[str]]]:
    from unbounded.sql import SparkSession

    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "..",
                                                   "src"))
    env.pop("UNBOUNDED_FAULT", None)
    run = tmp_path_factory.mktemp("tws-clean")
    clean = run_job(_cmd(inputs, run), env)
    assert clean.returncode == 0, clean.stderr
    session = SparkSession.builder.appName("tws-crash-expected").create()
    try:
        outcome = _outcome(session, run)
    finally:
        session.stop()
    kinds = [r[1] for r in outcome[0]]
    assert kinds.count("session") > 8 and kinds.count("progress") >= 15, kinds
    assert all(outcome[1][name] for name in STORES), "open sessions must remain in state"
    return outcome


@pytest.mark.parametrize("point", [*FAULT_POINTS, "mid-state-commit"])
def test_sessions_and_state_survive_sigkill_at_each_step(inputs, tmp_path, python_env, spark,
                                                         expected, point):
    run_killed_at(_cmd(inputs, tmp_path), python_env, point, 2)
    finished = run_job(_cmd(inputs, tmp_path), python_env)
    assert finished.returncode == 0, finished.stderr
    assert _outcome(spark, tmp_path) == expected


def test_a_kill_between_state_commits_of_the_first_batch_is_recovered(
        inputs, tmp_path, python_env, spark, expected):
    run_killed_at(_cmd(inputs, tmp_path), python_env, "mid-state-commit", 0)
    assert run_job(_cmd(inputs, tmp_path), python_env).returncode == 0
    assert _outcome(spark, tmp_path) == expected


def test_sessions_and_state_survive_random_sigkills(inputs, tmp_path, python_env, spark,
                                                    expected):
    rng = random.Random(4)
    for _ in range(3):
        kill_at_random(_cmd(inputs, tmp_path), python_env, rng, (0.6, 1.8))
    assert run_job(_cmd(inputs, tmp_path), python_env).returncode == 0
    assert _outcome(spark, tmp_path) == expected

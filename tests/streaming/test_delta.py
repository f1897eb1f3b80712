"""Delta -> Delta end to end in a real child process: SIGKILL at each step of a batch,
restart, and prove the output table holds every row once (one commit per batch, each
with the query's txn), read back by deltalake and Polars; then new input versions are
read on restart from exactly where the last run stopped."""

from __future__ import annotations

import json
import os

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from conftest import PYTHON
from crash_runs import run_job, run_killed_at
from unbounded.testing.faults import FAULT_POINTS

JOB = os.path.join(os.path.dirname(__file__), "delta_job.py")
KINDS = ["a", "b", "noise", "a", "b"]


def _add_input(table: str, version: int) -> None:
    ids = list(range(version * 10, version * 10 + 10))
    write_deltalake(table, pa.table({"id": ids, "kind": KINDS * 2}), mode="append")


def _expected(versions: int) -> list[tuple[int, str, int]]:
    return [(i, KINDS[i % 5], i * 10) for i in range(versions * 10) if KINDS[i % 5] != "noise"]


@pytest.fixture
def tables(tmp_path):
    paths = {name: str(tmp_path / name) for name in ("in", "out", "cp")}
    for version in range(4):
        _add_input(paths["in"], version)
    return paths


def _cmd(tables):
    return [PYTHON, JOB, tables["in"], tables["out"], tables["cp"]]


def _query_id(tables) -> str:
    with open(os.path.join(tables["cp"], "metadata")) as f:
        return str(json.load(f)["id"])


def _txns(out: str) -> list[tuple[str, int]]:
    log = os.path.join(out, "_delta_log")
    found = []
    for name in sorted(n for n in os.listdir(log) if n.endswith(".json")):
        with open(os.path.join(log, name)) as f:
            found += [(a["txn"]["appId"], a["txn"]["version"]) for a in map(json.loads, f)
                      if "txn" in a]
    return found


def _assert_output(tables, versions: int) -> None:
    expected = _expected(versions)
    via_polars = pl.read_delta(tables["out"]).select("id", "kind", "score").sort("id")
    assert via_polars.rows() == expected
    table = DeltaTable(tables["out"])
    rows = table.to_pyarrow_table().to_pylist()
    assert sorted((r["id"], r["kind"], r["score"]) for r in rows) == expected
    assert table.metadata().partition_columns == ["kind"]
    qid = _query_id(tables)
    assert _txns(tables["out"]) == [(qid, b) for b in range(versions)]  # one commit each
    assert table.version() == versions - 1


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_kill_at_each_batch_step_then_restart_commits_each_batch_once(tables, python_env,
                                                                      point):
    run_killed_at(_cmd(tables), python_env, point, 1)
    finished = run_job(_cmd(tables), python_env)
    assert finished.returncode == 0, finished.stderr
    _assert_output(tables, 4)


def test_rerun_of_a_batch_already_in_the_table_leaves_its_version_unchanged(tables,
                                                                           python_env):
    run_killed_at(_cmd(tables), python_env, "after-sink", 2)
    assert DeltaTable(tables["out"]).version() == 2  # batch 2 committed, not logged
    assert not os.path.exists(os.path.join(tables["cp"], "commits", "2"))
    finished = run_job(_cmd(tables), python_env)
    assert finished.returncode == 0, finished.stderr
    _assert_output(tables, 4)


def test_restart_reads_new_input_versions_from_where_it_stopped(tables, python_env):
    assert run_job(_cmd(tables), python_env).returncode == 0
    _add_input(tables["in"], 4)
    _add_input(tables["in"], 5)
    finished = run_job(_cmd(tables), python_env)
    assert finished.returncode == 0, finished.stderr
    _assert_output(tables, 6)

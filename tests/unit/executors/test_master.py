"""spark.master as PySpark spells it: which executor each value selects, with how many
threads and task attempts; ray without Ray installed fails saying how to install it."""

from __future__ import annotations

import os
import sys

import pytest

from unbounded.errors import AnalysisException
from unbounded.executors.base import ShippableTask
from unbounded.executors.local import LocalExecutor
from unbounded.executors.master import Master, create_executor, parse_master
from unbounded.sql import SparkSession


@pytest.mark.parametrize(("url", "threads"), [
    ("local", 1), ("local[3]", 3), ("local[*]", os.cpu_count()),
])
def test_local_masters_keep_the_thread_pool_with_one_attempt_per_task(url, threads):
    master = parse_master(url)
    executor = create_executor(master, {"spark.task.maxFailures": "4"}.get)
    try:
        assert isinstance(executor, LocalExecutor)
        assert executor.max_workers == threads
        assert master.task_max_failures("4") == 1  # Spark ignores the setting locally
    finally:
        executor.shutdown()


def test_task_max_failures_on_ray_defaults_to_four_and_follows_the_setting():
    assert Master("ray").task_max_failures(None) == 4
    assert Master("ray").task_max_failures("2") == 2


_calls: list[int] = []


def _fails_twice(item: int) -> int:
    _calls.append(item)
    if len(_calls) <= 2:
        raise OSError(f"flaky read {len(_calls)}")
    return item * 10


@pytest.mark.parametrize(("url", "outcome"), [("local[2, 3]", [70]), ("local[2, 2]", None)])
def test_local_n_f_gives_each_partition_task_f_attempts(url, outcome):
    _calls.clear()
    executor = create_executor(parse_master(url), lambda key: None)
    try:
        if outcome is None:
            with pytest.raises(OSError, match="flaky read 2") as failed:
                executor.map(ShippableTask(_fails_twice), [7])
            assert "failed 2 time(s)" in failed.value.__notes__[0]
        else:
            assert executor.map(ShippableTask(_fails_twice), [7]) == outcome
            assert executor.map_async(ShippableTask(_fails_twice), [8]).result() == [80]
    finally:
        executor.shutdown()
    assert _calls[:2] == [7, 7]


def test_a_driver_side_callable_is_never_repeated_locally():
    _calls.clear()
    executor = create_executor(parse_master("local[2, 4]"), lambda key: None)
    try:
        with pytest.raises(OSError):
            executor.map(_fails_twice, [1])
    finally:
        executor.shutdown()
    assert _calls == [1]


def test_executor_threads_setting_wins_over_local_n():
    executor = create_executor(parse_master("local[3]"),
                               {"unbounded.executor.threads": "5"}.get)
    try:
        assert isinstance(executor, LocalExecutor) and executor.max_workers == 5
    finally:
        executor.shutdown()


def test_ray_masters_name_their_address_when_ray_is_installed():
    pytest.importorskip("ray", reason="ray is not installed")
    assert parse_master("ray") == Master("ray")
    assert parse_master("ray://head:10001") == Master("ray", address="ray://head:10001")


def test_master_ray_without_ray_installed_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # find_spec then reports it missing
    with pytest.raises(ImportError, match=r"pip install 'unbounded\[ray\]'"):
        SparkSession.builder.master("ray").create()


def test_an_unknown_master_fails_when_the_session_is_built():
    with pytest.raises(AnalysisException, match="Could not parse Master URL: 'yarn'"):
        SparkSession.builder.master("yarn").create()

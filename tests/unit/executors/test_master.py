"""spark.master as PySpark spells it: which executor each value selects, with how many
threads and task attempts; ray without Ray installed fails saying how to install it."""

from __future__ import annotations

import os
import sys

import pytest

from unbounded.errors import AnalysisException
from unbounded.executors.local import LocalExecutor
from unbounded.executors.master import Master, create_executor, parse_master
from unbounded.sql import SparkSession


@pytest.mark.parametrize(("url", "threads", "failures"), [
    ("local", 1, 1), ("local[3]", 3, 1), ("local[*]", os.cpu_count(), 1),
    ("local[2, 5]", 2, 5), ("local[*,3]", os.cpu_count(), 3),
])
def test_local_masters_keep_the_thread_pool(url, threads, failures):
    master = parse_master(url)
    executor = create_executor(master, lambda key: None)
    try:
        assert isinstance(executor, LocalExecutor)
        assert executor.max_workers == threads
        assert master.task_max_failures(None) == failures
    finally:
        executor.shutdown()


def test_task_max_failures_setting_wins_over_the_masters_default():
    assert parse_master("local[2, 5]").task_max_failures("3") == 3
    assert Master("ray").task_max_failures(None) == 4


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

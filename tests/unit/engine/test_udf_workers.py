"""Row UDFs: the per-row call loop (engine/row_udfs.py) and row ranges run in worker
processes (engine/udf_workers.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import cloudpickle
import pyarrow as pa
import pytest

from unbounded.engine import udf_workers
from unbounded.engine.row_udfs import RowFailure, call_rows, python_values, rows_to_arrow
from unbounded.engine.udf_workers import UdfWorkerPool, run_row_udf
from unbounded.errors import PythonException
from unbounded.sql import functions as F
from unbounded.sql import types as T


# ---- the call loop -----------------------------------------------------------------
@pytest.mark.parametrize("arity", [1, 2, 3])
def test_a_failure_names_the_row_it_happened_on_for_any_number_of_arguments(arity):
    columns = [pa.array(range(10))] * arity

    def fail_on_six(*args):
        if args[0] == 6:
            raise ValueError("six")
        return sum(args)

    with pytest.raises(RowFailure) as raised:
        call_rows(fail_on_six, columns, 10)
    assert raised.value.index == 6
    assert str(raised.value.error) == "six"


def test_calls_return_one_result_per_row_in_order():
    assert call_rows(lambda a, b: f"{a}{b}", [pa.array([1, 2]), pa.array(["x", None])], 2) \
        == ["1x", "2None"]
    assert call_rows(lambda: 7, [], 3) == [7, 7, 7]


def test_python_values_match_to_pylist_with_and_without_nulls():
    for column in (pa.array([1, 2]), pa.array([1.5, None]), pa.array([True, False]),
                   pa.array([1.25], pa.float32()), pa.array([2**63 - 1])):
        values = python_values(column)
        assert values == column.to_pylist()
        assert [type(v) for v in values] == [type(v) for v in column.to_pylist()]


# ---- worker processes --------------------------------------------------------------
@pytest.fixture(scope="module")
def started_pool() -> Iterator[UdfWorkerPool]:
    pool = UdfWorkerPool(2)
    assert pool.wait_ready(60)
    yield pool
    pool.stop()


@pytest.fixture
def two_workers(started_pool, monkeypatch) -> UdfWorkerPool:
    """A pool of two started workers, used for ranges of 10 rows or more."""
    monkeypatch.setattr(udf_workers, "_POOL", [started_pool])
    monkeypatch.setattr(udf_workers, "MIN_ROWS_PER_PROCESS", 10)
    return started_pool


def _pickled(function) -> bytes:
    return cloudpickle.dumps(function)


def _wait_for_a_worker(marker):
    """A UDF body for this process: wait until a worker process has run a row (so the
    test sees the ranges shared, whatever the threads' timing), at most 30 s."""
    deadline = time.monotonic() + 30
    while not os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    open(marker, "a").close()  # waited once: later rows do not wait again


def test_a_large_batch_shares_its_ranges_with_worker_processes_in_row_order(
        two_workers, tmp_path):
    parent, marker = os.getpid(), str(tmp_path / "worker-ran")

    def tagged(x):
        if os.getpid() == parent:
            _wait_for_a_worker(marker)
        else:
            open(marker, "a").close()
        return f"{x}:{os.getpid()}"

    out = run_row_udf(_pickled(tagged), [pa.array(range(30))], 30, T.StringType())
    values, pids = zip(*(v.split(":") for v in out.to_pylist()), strict=True)
    assert [int(v) for v in values] == list(range(30))
    assert {int(p) for p in pids} - {parent}  # some rows ran in a worker process


def test_a_cold_pool_joins_a_batch_that_already_started(monkeypatch, tmp_path):
    pool = UdfWorkerPool(1)
    monkeypatch.setattr(udf_workers, "_POOL", [pool])
    monkeypatch.setattr(udf_workers, "MIN_ROWS_PER_PROCESS", 10)
    parent, marker = os.getpid(), str(tmp_path / "worker-ran")

    def tagged(x):
        if os.getpid() == parent:
            _wait_for_a_worker(marker)
        else:
            open(marker, "a").close()
        return os.getpid()

    out = run_row_udf(_pickled(tagged), [pa.array(range(80))], 80, T.LongType())
    assert set(out.to_pylist()) - {parent}
    pool.stop()


def test_a_failure_in_a_worker_names_the_batch_wide_row(two_workers):
    def inverse(x):
        return 1 // (x - 13)

    with pytest.raises(RowFailure) as raised:
        run_row_udf(_pickled(inverse), [pa.array(range(30))], 30, T.LongType())
    assert raised.value.index == 13
    assert isinstance(raised.value.error, ZeroDivisionError)


def test_an_exception_class_defined_in_user_code_comes_back_with_its_name(two_workers):
    class LookupMissing(Exception):
        pass

    def lookup(x):
        if x == 2:
            raise LookupMissing(f"no entry for {x}")
        return x

    with pytest.raises(RowFailure) as raised:
        run_row_udf(_pickled(lookup), [pa.array(range(30))], 30, T.LongType())
    assert raised.value.index == 2
    assert type(raised.value.error).__name__ == "LookupMissing"
    assert str(raised.value.error) == "no entry for 2"


def test_a_conversion_error_in_a_worker_fails_the_batch_with_its_own_error(two_workers):
    with pytest.raises(pa.ArrowInvalid, match=r"Could not convert .text."):
        run_row_udf(_pickled(lambda x: "text"), [pa.array(range(30))], 30, T.LongType())


def test_a_worker_that_dies_mid_range_is_dropped_and_its_rows_run_here(
        monkeypatch, tmp_path):
    pool = UdfWorkerPool(1)
    monkeypatch.setattr(udf_workers, "_POOL", [pool])
    monkeypatch.setattr(udf_workers, "MIN_ROWS_PER_PROCESS", 10)
    assert pool.wait_ready(60)
    parent, marker = os.getpid(), str(tmp_path / "worker-ran")

    def doubled(x):
        if os.getpid() != parent:
            open(marker, "a").close()
            os._exit(3)  # the worker process dies in the middle of its range
        _wait_for_a_worker(marker)
        return x * 2

    out = run_row_udf(_pickled(doubled), [pa.array(range(30))], 30, T.LongType())
    assert out.to_pylist() == [x * 2 for x in range(30)]
    assert pool._idle.empty()
    pool.stop()


def test_prints_in_a_worker_do_not_break_the_protocol(two_workers, capfd):
    def noisy(x):
        print("row", x)
        return x

    out = run_row_udf(_pickled(noisy), [pa.array(range(30))], 30, T.LongType())
    assert out.to_pylist() == list(range(30))


def test_a_small_batch_stays_in_this_process(two_workers):
    out = run_row_udf(_pickled(lambda x: os.getpid()), [pa.array(range(15))], 15,
                      T.LongType())
    assert set(out.to_pylist()) == {os.getpid()}


def test_a_udf_failing_in_a_worker_names_the_udf_the_error_and_the_row(spark, two_workers):
    def inverse(x):
        return 1 // (x - 4)

    df = spark.range(40).select(F.udf(inverse, "long")("id").alias("y"))
    with pytest.raises(PythonException) as raised:
        df.collect()
    assert "`inverse`" in str(raised.value)
    assert "ZeroDivisionError: integer division or modulo by zero" in str(raised.value)
    assert "(id=4)" in str(raised.value)


def test_a_query_over_workers_gives_the_rows_of_one_process(spark, two_workers):
    df = spark.range(100).select(F.udf(lambda x: x * 3 + 1, "long")("id").alias("y"))
    assert [r.y for r in df.collect()] == [x * 3 + 1 for x in range(100)]


def test_rows_to_arrow_converts_as_pyspark(two_workers):
    assert rows_to_arrow(lambda x: x, [pa.array([1, None])], 2, T.DoubleType()).to_pylist() \
        == [1.0, None]
    out = run_row_udf(_pickled(lambda x: x % 2 == 0), [pa.array(range(30))], 30,
                      T.StringType())
    assert out.to_pylist()[:2] == ["true", "false"]


def test_pool_size_follows_the_setting_and_is_zero_inside_a_ray_worker(monkeypatch):
    monkeypatch.delenv("UNBOUNDED_UDF_WORKERS", raising=False)
    monkeypatch.setenv("RAY_RAYLET_PID", "1")
    assert udf_workers._pool_size() == 0
    monkeypatch.setenv("UNBOUNDED_UDF_WORKERS", "3")
    assert udf_workers._pool_size() == 3
    monkeypatch.delenv("RAY_RAYLET_PID")
    monkeypatch.setenv("UNBOUNDED_UDF_WORKERS", "0")
    assert udf_workers._pool_size() == 0


def test_a_pool_whose_workers_cannot_start_runs_udfs_here(monkeypatch):
    monkeypatch.setattr(udf_workers.sys, "executable", "/nonexistent/python")
    pool = UdfWorkerPool(1)
    monkeypatch.setattr(udf_workers, "_POOL", [pool])
    monkeypatch.setattr(udf_workers, "MIN_ROWS_PER_PROCESS", 10)
    assert pool.wait_ready(30)
    out = run_row_udf(_pickled(lambda x: x + 1), [pa.array(range(30))], 30, T.LongType())
    assert out.to_pylist() == list(range(1, 31))
    assert pool._idle.empty()


def test_struct_map_and_array_arguments_arrive_as_pyspark_passes_them(spark):
    """PySpark 4.3 (with and without useArrow) passes Row, dict and list."""
    df = spark.createDataFrame([(1, "a")], "i int, s string").select(
        F.struct("i", F.struct("s").alias("inner")).alias("st"),
        F.create_map(F.lit("k"), F.col("i")).alias("m"), F.array("i").alias("arr"))
    shown = F.udf(lambda v: f"{type(v).__name__}{v!r}", "string")
    out = df.select(shown("st"), shown("m"), shown("arr"),
                    F.udf(lambda r: r.i * 10 + len(r["inner"].s), "int")("st")).collect()
    assert tuple(out[0]) == ("RowRow(i=1, inner=Row(s='a'))", "dict{'k': 1}", "list[1]", 11)


def test_ranges_shrink_with_the_rows_left_and_never_go_under_the_minimum(monkeypatch):
    monkeypatch.setattr(udf_workers, "MIN_ROWS_PER_PROCESS", 10)
    bounds = [(r.start, r.stop) for r in udf_workers._ranges(100, 2)]
    assert bounds == [(0, 25), (25, 43), (43, 57), (57, 67), (67, 77), (77, 87), (87, 97),
                      (97, 100)]


def test_arguments_and_results_pass_through_files_that_are_gone_after_the_batch(
        two_workers):
    out = run_row_udf(_pickled(lambda x: x * 2), [pa.array(range(40))], 40, T.LongType())
    assert out.to_pylist() == [x * 2 for x in range(40)]
    folders = [w.folder for w in two_workers._all]
    assert all(os.path.isdir(f) and os.listdir(f) == [] for f in folders)


def test_a_stopped_pool_leaves_no_folder_behind():
    pool = UdfWorkerPool(1)
    assert pool.wait_ready(60)
    folder = pool._all[0].folder
    pool.stop()
    assert not os.path.exists(folder)


def test_files_go_to_the_temp_folder_when_shared_memory_is_missing_or_small(
        monkeypatch, tmp_path):
    monkeypatch.setattr(udf_workers, "_SHARED_MEMORY", str(tmp_path))
    monkeypatch.setattr(udf_workers, "_MIN_SHARED_BYTES", 0)
    assert udf_workers._exchange_root() == str(tmp_path)
    monkeypatch.setattr(udf_workers, "_MIN_SHARED_BYTES", 1 << 62)
    assert udf_workers._exchange_root() is None
    monkeypatch.setattr(udf_workers, "_SHARED_MEMORY", "/nonexistent/shm")
    assert udf_workers._exchange_root() is None


def test_many_distinct_arguments_are_shared_with_the_workers_and_expanded_in_order(
        spark, two_workers, tmp_path):
    df = spark.createDataFrame([(i % 50,) for i in range(200)], "x long")
    log = tmp_path / "calls"

    def tagged(x):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return x * 10

    out = [r[0] for r in df.select(F.udf(tagged, "long")("x")).collect()]
    assert out == [(i % 50) * 10 for i in range(200)]
    assert len(log.read_text().split()) == 50  # once per distinct value


def test_a_failure_among_distinct_arguments_in_a_worker_names_its_first_row(
        spark, two_workers):
    df = spark.createDataFrame([(i % 50, i // 100) for i in range(200)], "x long, h long")

    def picky(x, h):
        if x == 37:
            raise ValueError(f"no {x} in half {h}")
        return x

    with pytest.raises(PythonException) as raised:
        df.select(F.udf(picky, "long")("x", "h")).collect()
    assert "ValueError: no 37 in half 0" in str(raised.value)
    assert "(x=37, h=0)" in str(raised.value)


def test_cpu_seconds_counts_the_live_workers_and_nothing_once_they_stopped():
    pool = UdfWorkerPool(1)
    assert pool.wait_ready(60)
    started = pool.cpu_seconds()
    assert started is not None and started > 0  # the child imported pyarrow to start
    pool.stop()
    assert pool.cpu_seconds() == 0

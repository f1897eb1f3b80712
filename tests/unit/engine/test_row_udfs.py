"""Row UDFs (engine/row_udfs.py): chunked calls, datetimes as PySpark 4.3 converts them,
and UDFs without arguments.

The datetime expectations are PySpark 4.3.0's own answers to the same queries (run with
``TZ`` set for the Python process and the session zone set apart from it): a row UDF gets
TIMESTAMP values as naive datetimes in the Python process's local zone, not in
``spark.sql.session.timeZone``, and reads a naive returned datetime in that zone too; the
pickled and the Arrow-optimised (``useArrow=True``) paths differ only at DST changes and
in the errors for a value that is not a datetime.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone

import pyarrow as pa
import pytest

from unbounded.engine import row_udfs
from unbounded.engine.row_udfs import RowFailure, rows_to_arrow
from unbounded.errors import PythonException
from unbounded.sql import Row
from unbounded.sql import functions as F
from unbounded.sql import types as T


@pytest.fixture
def process_zone() -> Iterator[Callable[[str], None]]:
    """Sets the Python process's zone (``TZ`` + ``tzset``) for one test."""
    before = os.environ.get("TZ")

    def set_zone(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield set_zone
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(row_udfs, "CHUNK_ROWS", 4)
    return 4


# ---- chunks ------------------------------------------------------------------------
def test_chunked_calls_keep_row_order_and_nulls_in_and_out(small_chunks):
    column = pa.array([1, None, 3, 4, 5, None, 7, 8, 9, 10, 11])
    out = rows_to_arrow(lambda x: None if x is None or x == 4 else x * 10, [column], 11,
                        T.LongType())
    assert out.to_pylist() == [10, None, 30, None, 50, None, 70, 80, 90, 100, 110]


def test_a_failure_in_a_later_chunk_names_the_batch_wide_row(small_chunks):
    seen = []

    def fail_on_nine(x):
        seen.append(x)
        if x == 9:
            raise ValueError("nine")
        return x

    with pytest.raises(RowFailure) as raised:
        rows_to_arrow(fail_on_nine, [pa.array(range(20))], 20, T.LongType())
    assert raised.value.index == 9
    assert seen == list(range(10))  # no chunk after the failing one is called


def test_a_bad_result_in_a_later_chunk_fails_the_batch(small_chunks):
    with pytest.raises(pa.ArrowInvalid, match="'x'"):
        rows_to_arrow(lambda x: "x" if x == 6 else x, [pa.array(range(10))], 10,
                      T.LongType())


def test_zero_argument_rows_are_chunked_too(small_chunks):
    counter = itertools.count()
    out = rows_to_arrow(lambda: next(counter), [], 10, T.LongType())
    assert out.to_pylist() == list(range(10))


# ---- datetimes -----------------------------------------------------------------------
def _shown(spark, df, use_arrow: bool) -> list[str]:
    show = F.udf(lambda v: f"{v!r} fold={getattr(v, 'fold', '-')}", "string",
                 useArrow=use_arrow)
    return list(df.select(*(show(c) for c in df.columns)).collect()[0])


@pytest.mark.parametrize("use_arrow", [False, True])
def test_timestamp_arguments_are_naive_in_the_process_zone_not_the_session_zone(
        spark, process_zone, use_arrow):
    process_zone("Asia/Tokyo")
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    df = spark.sql("select timestamp'2024-03-10 01:30:00' as ts, "
                   "timestamp_ntz'2024-03-10 01:30:00' as ntz, "
                   "array(timestamp'2024-07-01 12:00:00') as arr, "
                   "named_struct('t', timestamp'2024-07-01 12:00:00') as st")
    assert _shown(spark, df, use_arrow) == [
        "datetime.datetime(2024, 3, 10, 18, 30) fold=0",
        "datetime.datetime(2024, 3, 10, 1, 30) fold=0",
        "[datetime.datetime(2024, 7, 2, 4, 0)] fold=-",
        "Row(t=datetime.datetime(2024, 7, 2, 4, 0)) fold=-"]


@pytest.mark.parametrize(("use_arrow", "second_fold"), [(False, 1), (True, 0)])
def test_the_second_of_two_equal_wall_clocks_has_fold_1_only_in_pickled_udfs(
        spark, process_zone, use_arrow, second_fold):
    process_zone("America/Los_Angeles")
    df = spark.sql("select timestamp'2024-11-03 08:30:00' as a, "
                   "timestamp'2024-11-03 09:30:00' as b, timestamp'2024-03-10 10:30:00' as c")
    second = "datetime.datetime(2024, 11, 3, 1, 30" + (", fold=1)" if second_fold else ")")
    assert _shown(spark, df, use_arrow) == [
        "datetime.datetime(2024, 11, 3, 1, 30) fold=0", f"{second} fold={second_fold}",
        "datetime.datetime(2024, 3, 10, 3, 30) fold=0"]


def _returned_micros(spark, values: list[datetime], use_arrow: bool) -> list[int]:
    udfs = [F.udf(lambda v=v: v, "timestamp", useArrow=use_arrow) for v in values]
    return list(spark.range(1).select(*(F.unix_micros(u()) for u in udfs)).collect()[0])


@pytest.mark.parametrize("use_arrow", [False, True])
def test_a_returned_naive_datetime_is_read_in_the_process_zone(spark, process_zone,
                                                               use_arrow):
    process_zone("Asia/Tokyo")
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    assert _returned_micros(spark, [datetime(2024, 7, 1, 12), datetime(2024, 7, 1, 12,
                                                                       tzinfo=UTC)],
                            use_arrow) == [1719802800000000, 1719835200000000]


@pytest.mark.parametrize(("use_arrow", "expected"), [
    # pickled: toInternal's mktime ignores fold (earlier instant) and reads a gap with
    # the offset before it; Arrow: astimezone(utc), which honours fold.
    (False, [1730622600000000, 1730622600000000, 1710066600000000]),
    (True, [1730622600000000, 1730626200000000, 1710063000000000])])
def test_returned_wall_clocks_at_dst_changes_read_as_pyspark_reads_them(
        spark, process_zone, use_arrow, expected):
    process_zone("America/Los_Angeles")
    values = [datetime(2024, 11, 3, 1, 30), datetime(2024, 11, 3, 1, 30, fold=1),
              datetime(2024, 3, 10, 2, 30)]
    assert _returned_micros(spark, values, use_arrow) == expected


@pytest.mark.parametrize("use_arrow", [False, True])
def test_naive_datetimes_inside_array_struct_and_map_results_read_in_the_process_zone(
        spark, process_zone, use_arrow):
    process_zone("Asia/Tokyo")
    noon = datetime(2024, 7, 1, 12)
    udfs = [F.udf(lambda: [noon, None], "array<timestamp>", useArrow=use_arrow)()[0],
            F.udf(lambda: Row(t=noon), "struct<t: timestamp>", useArrow=use_arrow)().t,
            F.udf(lambda: {"t": noon}, "struct<t: timestamp>", useArrow=use_arrow)().t,
            F.udf(lambda: {"k": noon}, "map<string, timestamp>", useArrow=use_arrow)()["k"]]
    assert list(spark.range(1).select(*(F.unix_micros(u) for u in udfs)).collect()[0]) \
        == [1719802800000000] * 4


def test_a_pickled_udf_drops_the_zone_of_an_aware_timestamp_ntz_result(spark):
    aware = datetime(2024, 7, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    for use_arrow, value in ((False, aware), (True, datetime(2024, 7, 1, 12))):
        udf = F.udf(lambda v=value: v, "timestamp_ntz", useArrow=use_arrow)
        assert spark.range(1).select(udf().cast("string")).collect()[0][0] == \
            "2024-07-01 12:00:00"


@pytest.mark.parametrize(("value", "return_type", "error"), [
    ("x", "timestamp", "AttributeError: 'str' object has no attribute 'tzinfo'"),
    (5, "timestamp", "AttributeError: 'int' object has no attribute 'tzinfo'"),
    (date(2024, 1, 2), "timestamp",
     "AttributeError: 'datetime.date' object has no attribute 'tzinfo'"),
    ("x", "timestamp_ntz", "AttributeError: 'str' object has no attribute 'timetuple'")])
def test_a_pickled_udf_returning_a_non_datetime_fails_with_pysparks_error(
        spark, value, return_type, error):
    udf = F.udf(lambda: value, return_type)
    with pytest.raises(PythonException, match=error):
        spark.range(1).select(udf()).collect()


@pytest.mark.parametrize(("value", "return_type"), [
    ("x", "timestamp"), (5, "timestamp"),
    (datetime(2024, 7, 1, 12, tzinfo=UTC), "timestamp_ntz")])
def test_an_arrow_udf_returning_a_non_datetime_fails_its_assertion(spark, value,
                                                                   return_type):
    udf = F.udf(lambda: value, return_type, useArrow=True)
    with pytest.raises(PythonException, match="failed on a batch: AssertionError: \\."):
        spark.range(1).select(udf()).collect()


# ---- UDFs without arguments ------------------------------------------------------------
def test_a_nondeterministic_udf_without_arguments_is_called_once_per_row(spark):
    counter = itertools.count()
    next_id = F.udf(lambda: next(counter), "long").asNondeterministic()
    df = spark.range(5)
    first = [tuple(r) for r in df.select("id", next_id().alias("n")).collect()]
    assert [r[0] for r in first] == [0, 1, 2, 3, 4]
    assert len({r[1] for r in first}) == 5
    assert [r[1] - first[0][1] for r in first] == [0, 1, 2, 3, 4]
    assert len({r.n for r in df.withColumn("n", next_id()).collect()}) == 5


def test_a_deterministic_udf_without_arguments_is_called_once_per_batch(spark, tmp_path):
    log = tmp_path / "calls"

    def logged() -> int:
        with open(log, "a") as f:
            f.write("call\n")
        return 7

    out = spark.range(4).select("id", F.udf(logged, "int")().alias("v")).collect()
    assert [tuple(r) for r in out] == [(0, 7), (1, 7), (2, 7), (3, 7)]
    assert log.read_text().split() == ["call"]


@pytest.mark.xfail(reason="engine/expressions.py's _reads_input takes a projection of "
                   "only argument-less expressions for constants and repeats them, which "
                   "a per-row UDF cannot be: it must count a nondeterministic PythonUDF "
                   "as per-row (as rand())", raises=Exception)
def test_a_projection_of_only_a_nondeterministic_udf_without_arguments(spark):
    counter = itertools.count()
    next_id = F.udf(lambda: next(counter), "long").asNondeterministic()
    assert len({r[0] for r in spark.range(3).select(next_id()).collect()}) == 3

"""A deterministic row UDF runs once per distinct argument tuple when the batch repeats
them enough (engine/distinct_calls.py); a nondeterministic one runs once per row."""

from __future__ import annotations

import pyarrow as pa
import pytest

from unbounded.engine import distinct_calls
from unbounded.engine.distinct_calls import distinct_arguments
from unbounded.errors import PythonException
from unbounded.sql import functions as F


def _log(path, value) -> None:
    """Record a call from user code (a UDF is pickled into the plan: only a file is
    shared with it)."""
    with open(path, "a") as f:
        f.write(f"{value}\n")


def _calls(path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.fixture
def repeated(spark):
    """Eight rows with four distinct ``(k, s)`` tuples, nulls among them."""
    rows = [(1, "a"), (2, "b"), (1, "a"), (None, "a"), (2, "b"), (None, "a"), (1, None),
            (1, None)]
    return spark.createDataFrame(rows, "k long, s string")


# ---- the encoding ------------------------------------------------------------------
def test_distinct_tuples_come_in_order_of_first_appearance_with_nulls_as_values():
    found = distinct_arguments([pa.array([1, 2, 1, None, None, 2]),
                                pa.array(["a", "b", "a", None, None, "c"])], 6)
    assert found is not None
    assert [c.to_pylist() for c in found.columns] == [[1, 2, None, 2], ["a", "b", None, "c"]]
    assert found.codes.to_pylist() == [0, 1, 0, 2, 2, 3]
    assert found.first_row(2) == 3
    assert found.expand(pa.array(["w", "x", "y", "z"])).to_pylist() \
        == ["w", "x", "w", "y", "y", "z"]


def test_zero_and_negative_zero_are_different_arguments():
    found = distinct_arguments([pa.array([0.0, -0.0, 0.0, -0.0])], 4)
    assert found is not None
    assert [str(v) for v in found.columns[0].to_pylist()] == ["0.0", "-0.0"]


def test_a_batch_with_few_repeats_or_unhashable_arguments_is_not_encoded():
    assert distinct_arguments([pa.array([1, 2, 3, 4, 1])], 5) is None  # 4 of 5 distinct
    assert distinct_arguments([pa.array([[1], [1], [1]])], 3) is None  # lists
    assert distinct_arguments([], 5) is None


def test_a_large_batch_is_judged_by_a_strided_sample(monkeypatch):
    monkeypatch.setattr(distinct_calls, "SAMPLE_ROWS", 10)
    repeats = pa.array([i % 5 for i in range(100)])
    found = distinct_arguments([repeats], 100)
    assert found is not None and found.columns[0].to_pylist() == [0, 1, 2, 3, 4]
    # Every tenth row is sampled: 0, 10, 20, ... all distinct, so the batch is not encoded.
    assert distinct_arguments([pa.array(range(100))], 100) is None


# ---- through a query ---------------------------------------------------------------
def test_deterministic_udf_is_called_once_per_distinct_tuple_with_the_same_rows(
        repeated, tmp_path):
    log = tmp_path / "calls"

    def tag(k, s):
        _log(log, f"{k}/{s}")
        return f"{k}-{s}"

    out = [r[0] for r in repeated.select(F.udf(tag, "string")("k", "s")).collect()]
    assert out == ["1-a", "2-b", "1-a", "None-a", "2-b", "None-a", "1-None", "1-None"]
    assert _calls(log) == ["1/a", "2/b", "None/a", "1/None"]


def test_nondeterministic_udf_is_called_once_per_row(repeated, tmp_path):
    log = tmp_path / "calls"

    def tag(k, s):
        _log(log, f"{k}/{s}")
        return f"{k}-{s}"

    once_per_row = F.udf(tag, "string").asNondeterministic()
    out = [r[0] for r in repeated.select(once_per_row("k", "s")).collect()]
    assert out == ["1-a", "2-b", "1-a", "None-a", "2-b", "None-a", "1-None", "1-None"]
    assert _calls(log) == ["1/a", "2/b", "1/a", "None/a", "2/b", "None/a", "1/None",
                           "1/None"]


def test_the_failure_reported_is_the_first_failing_row_in_row_order(spark):
    df = spark.createDataFrame([(1,), (3,), (7,), (3,), (7,), (1,)], "x long")

    def picky(x):
        if x in (3, 7):
            raise ValueError(f"no {x}")
        return x

    with pytest.raises(PythonException) as raised:
        df.select(F.udf(picky, "long")("x")).collect()
    assert "ValueError: no 3" in str(raised.value)
    assert "(x=3)" in str(raised.value)


def test_a_wrong_return_type_still_fails_the_batch(spark):
    df = spark.createDataFrame([(1,), (1,), (1,)], "x long")
    with pytest.raises(PythonException, match="`<lambda>` failed on a batch"):
        df.select(F.udf(lambda x: "text", "long")("x")).collect()


def test_typed_arguments_arrive_as_in_a_row_by_row_run(spark, tmp_path):
    from datetime import date, datetime
    from decimal import Decimal

    row = (date(2024, 1, 2), datetime(2024, 1, 2, 3, 4, 5), Decimal("1.50"), True, b"ab")
    df = spark.createDataFrame([row, row, (None, None, None, None, None), row],
                               "d date, t timestamp, m decimal(4,2), b boolean, y binary")
    log = tmp_path / "calls"

    def shown(*values):
        _log(log, "call")
        return repr(values)

    out = [r[0] for r in df.select(F.udf(shown, "string")(*df.columns)).collect()]
    seen = ("(datetime.date(2024, 1, 2), datetime.datetime(2024, 1, 2, 3, 4, 5), "
            "Decimal('1.50'), True, b'ab')")
    assert out == [seen, seen, "(None, None, None, None, None)", seen]
    assert _calls(log) == ["call", "call"]

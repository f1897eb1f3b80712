"""UDFs, pandas UDFs, mapInPandas/mapInArrow, applyInPandas and cogroup, batch.

Expected rows are PySpark 4.3's for the same calls (checked against it by hand: row UDF
results convert through Arrow in 4.3, so an int returned for a double column is 1.0).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from datetime import datetime

import pandas as pd
import pyarrow as pa
import pytest

from unbounded.engine.udfs import MAX_RECORDS_PER_BATCH
from unbounded.errors import AnalysisException, PythonException
from unbounded.plan.expressions import PythonEvalType, PythonUDF
from unbounded.sql import DataFrame
from unbounded.sql import functions as F
from unbounded.sql import types as T


@pytest.fixture
def people(spark):
    return spark.createDataFrame([(1, "ann", 2.5), (2, None, None), (3, "cy", 1.0)],
                                 "id int, name string, score double")


def _rows(df: DataFrame) -> list[tuple]:
    return [tuple(r) for r in df.collect()]


def _log(path, value) -> None:
    """Record a call from inside user code: a UDF is pickled into the plan, so a list it
    closes over is a copy (as in PySpark's workers); a file is shared."""
    with open(path, "a") as f:
        f.write(f"{value}\n")


def _logged(path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


# ---- row UDFs ----------------------------------------------------------------------
def test_udf_call_form_with_ddl_return_type_names_the_column_after_the_function(people):
    plus_one = F.udf(lambda x: None if x is None else x + 1, "int")
    out = people.select(plus_one("id"), plus_one(F.col("id") * 10).alias("p"))
    assert out.columns == ["<lambda>(id)", "p"]
    assert out.schema["p"].dataType == T.IntegerType()
    assert _rows(out) == [(2, 11), (3, 21), (4, 31)]


def test_udf_decorator_forms_and_default_string_type(people):
    @F.udf
    def shout(s):
        return None if s is None else s.upper() + "!"

    @F.udf(returnType=T.LongType())
    def twice(x):
        return x * 2

    @F.udf("double")
    def half(x):
        return x / 2

    out = people.select(shout("name"), twice("id"), half("id"))
    assert out.columns == ["shout(name)", "twice(id)", "half(id)"]
    assert out.schema["shout(name)"].dataType == T.StringType()
    assert _rows(out) == [("ANN!", 2, 0.5), (None, 4, 1.0), ("CY!", 6, 1.5)]


def test_row_udf_results_convert_as_pyspark_4(people):
    out = people.select(
        F.udf(lambda x: 1, T.DoubleType())("id").alias("int_to_double"),
        F.udf(lambda x: 1.5, "int")("id").alias("float_to_int"),
        F.udf(lambda x: True, "string")("id").alias("bool_to_string"),
        F.udf(lambda x: [1, 2], "string")("id").alias("list_to_string"),
        F.udf(lambda x: x, "string")("score").alias("double_to_string"),
    )
    assert _rows(out) == [(1.0, 1, "true", "[1, 2]", "2.5"), (1.0, 1, "true", "[1, 2]", None),
                          (1.0, 1, "true", "[1, 2]", "1.0")]


def test_row_udf_gets_none_for_null_and_naive_datetimes(spark):
    df = spark.createDataFrame([(datetime(2024, 1, 2, 3, 4, 5),), (None,)], "ts timestamp")
    seen = F.udf(lambda ts: "none" if ts is None else f"{ts.isoformat()} {ts.tzinfo}")
    assert _rows(df.select(seen("ts"))) == [("2024-01-02T03:04:05 None",), ("none",)]


def test_use_arrow_udf_widens_int_results_and_rejects_text_for_int(people):
    arrow_double = F.udf(lambda x: x, T.DoubleType(), useArrow=True)
    assert _rows(people.select(arrow_double("id"))) == [(1.0,), (2.0,), (3.0,)]
    udf = F.udf(lambda x: "a", "int", useArrow=True)
    assert udf.evalType is PythonEvalType.SQL_ARROW_BATCHED_UDF
    with pytest.raises(PythonException, match="<lambda>"):
        people.select(udf("id")).collect()


def test_zero_argument_udf_value_fills_every_row(people):
    assert _rows(people.select(F.udf(lambda: 7, "int")(), "id")) == [(7, 1), (7, 2), (7, 3)]


def test_as_nondeterministic_marks_the_plan_node(people):
    rnd = F.udf(lambda x: x, "int").asNondeterministic()
    node = people.select(rnd("id"))._plan.exprs[0]
    assert isinstance(node, PythonUDF) and node.deterministic is False


def test_row_udf_is_called_once_per_row_and_never_through_map_elements(
        people, monkeypatch, tmp_path):
    import polars as pl

    def refuse(*args, **kwargs):
        raise AssertionError("map_elements must not be used")

    monkeypatch.setattr(pl.Expr, "map_elements", refuse)
    log = tmp_path / "calls"
    counted = F.udf(lambda x: _log(log, x) or x, "int")
    assert _rows(people.select(counted("id"))) == [(1,), (2,), (3,)]
    assert sorted(_logged(log)) == [1, 2, 3]


def test_udf_exception_names_the_udf_the_error_and_the_input_row(people):
    def inverse(x):
        return 1 // (x - 2)

    with pytest.raises(PythonException) as raised:
        people.select(F.udf(inverse, "int")("id") * 1).collect()
    message = str(raised.value)
    assert "`inverse`" in message
    assert "ZeroDivisionError: integer division or modulo by zero" in message
    assert "(id=2)" in message
    assert isinstance(raised.value.cause, ZeroDivisionError)


# ---- pandas UDFs -------------------------------------------------------------------
def test_pandas_udf_series_to_series_runs_once_per_batch(people, tmp_path):
    log = tmp_path / "calls"

    @F.pandas_udf("double")
    def scaled(v: pd.Series, w: pd.Series) -> pd.Series:
        _log(log, len(v))
        return v * 10 + w.fillna(0)

    out = people.select(scaled("id", "score"))
    assert out.columns == ["scaled(id, score)"]
    assert _rows(out) == [(12.5,), (20.0,), (31.0,)]
    assert _logged(log) == [3]


def test_pandas_udf_nan_becomes_null(people):
    doubled = F.pandas_udf(lambda s: s * 2, "double")
    assert _rows(people.select(doubled("score"))) == [(5.0,), (None,), (2.0,)]


def test_pandas_udf_struct_input_and_output(people):
    @F.pandas_udf("n long, label string")
    def pack(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"n": frame["id"] * 2, "label": frame["name"].fillna("?")})

    out = people.select(pack(F.struct("id", "name")).alias("p")).select("p.n", "p.label")
    assert _rows(out) == [(2, "ann"), (4, "?"), (6, "cy")]


def test_pandas_iterator_udf_sees_batches_of_max_records_per_batch(spark, tmp_path):
    df = spark.createDataFrame([(i,) for i in range(MAX_RECORDS_PER_BATCH + 5)], "id long")
    log = tmp_path / "sizes"

    @F.pandas_udf("long")
    def plus(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        for batch in batches:
            _log(log, len(batch))
            yield batch + 1

    total = df.select(plus("id").alias("p")).agg(F.sum("p")).collect()[0][0]
    n = MAX_RECORDS_PER_BATCH + 5
    assert total == n * (n - 1) // 2 + n
    assert _logged(log) == [MAX_RECORDS_PER_BATCH, 5]


def test_pandas_iterator_udf_over_several_columns_gets_tuples(people):
    @F.pandas_udf("double", F.PandasUDFType.SCALAR_ITER)
    def add(batches):
        for a, b in batches:
            yield a + b

    assert _rows(people.select(add("id", "score"))) == [(3.5,), (None,), (4.0,)]


def test_grouped_agg_pandas_udf_in_group_by_agg(spark):
    df = spark.createDataFrame([("a", 1.0), ("b", 4.0), ("a", 3.0), ("b", None)],
                               "k string, v double")

    @F.pandas_udf("double")
    def mean_v(v: pd.Series) -> float:
        return v.mean()

    out = df.groupBy("k").agg(mean_v("v").alias("m"), F.count("v").alias("n")).orderBy("k")
    assert _rows(out) == [("a", 2.0, 2), ("b", 4.0, 1)]
    assert _rows(df.agg(mean_v("v"))) == [(8.0 / 3,)]


def test_pandas_udf_wrong_length_and_wrong_type_fail_naming_the_udf(people):
    short = F.pandas_udf(lambda s: s.head(1), "long")
    with pytest.raises(PythonException, match=r"RESULT_ROWS_MISMATCH.*\(1\).*\(3\)"):
        people.select(short("id")).collect()
    scalar = F.pandas_udf(lambda s: 1, "long")
    with pytest.raises(PythonException, match=r"pandas\.Series, but is int"):
        people.select(scalar("id")).collect()


# ---- registered UDFs and SQL strings -----------------------------------------------
def test_registered_udf_works_in_expr_select_expr_and_filter(spark, people):
    spark.udf.register("udf_test_plus", lambda x: x + 100, "int")
    registered = spark.udf.register("udf_test_shout", F.udf(lambda s: s and s.upper()))
    assert _rows(people.selectExpr("udf_test_plus(id) AS p")) == [(101,), (102,), (103,)]
    assert _rows(people.filter("udf_test_plus(id) > 101").select("id")) == [(2,), (3,)]
    assert _rows(people.select(F.expr("udf_test_shout(name)"))) == [("ANN",), (None,), ("CY",)]
    assert people.selectExpr("UDF_TEST_SHOUT(name)").columns == ["udf_test_shout(name)"]
    assert _rows(people.select(registered("name"))) == [("ANN",), (None,), ("CY",)]
    assert _rows(people.select(F.call_udf("udf_test_plus", "id"))) == [(101,), (102,), (103,)]


def test_register_rejects_a_return_type_for_a_udf_and_unknown_names_fail(spark, people):
    with pytest.raises(TypeError, match="CANNOT_SPECIFY_RETURN_TYPE_FOR_UDF"):
        spark.udf.register("udf_test_bad", F.udf(lambda x: x), "int")
    with pytest.raises(AnalysisException, match="UNRESOLVED_ROUTINE"):
        people.selectExpr("udf_test_never_registered(id)")


# ---- pickling ----------------------------------------------------------------------
def test_plan_with_udfs_round_trips_through_pickle_and_compares_equal(people):
    offset = 1000
    closure = F.udf(lambda x: x + offset, "int")
    vectorised = F.pandas_udf(lambda s: s * 2, "double")
    df = people.select(closure("id").alias("a"), vectorised("score").alias("b"))
    restored = pickle.loads(pickle.dumps(df._plan))
    assert restored.exprs == df._plan.exprs
    again = DataFrame(restored, people.sparkSession)
    assert _rows(again) == [(1001, 5.0), (1002, None), (1003, 2.0)]


# ---- mapInPandas / mapInArrow ------------------------------------------------------
def test_map_in_pandas_filters_and_reshapes_batches(people):
    def keep_named(frames):
        for frame in frames:
            named = frame[frame["name"].notna()]
            yield pd.DataFrame({"id": named["id"] * 2, "upper": named["name"].str.upper()})

    out = people.mapInPandas(keep_named, "id long, upper string")
    assert out.schema.simpleString() == "struct<id:bigint,upper:string>"
    assert _rows(out) == [(2, "ANN"), (6, "CY")]


def test_map_in_pandas_assigns_columns_by_position_for_non_string_labels(people):
    out = people.mapInPandas(lambda it: (pd.DataFrame({0: f["id"], 1: f["id"] + 1})
                                         for f in it), "a int, b int")
    assert _rows(out) == [(1, 2), (2, 3), (3, 4)]


def test_map_in_arrow_gets_record_batches(people):
    def lengths(batches):
        for batch in batches:
            names = batch.column("name")
            yield pa.RecordBatch.from_pydict(
                {"n": pa.compute.utf8_length(names)}, schema=pa.schema([("n", pa.int32())]))

    assert _rows(people.mapInArrow(lengths, "n int")) == [(3,), (None,), (2,)]


def test_map_in_pandas_error_names_the_function(people):
    def broken(frames):
        for _ in frames:
            raise KeyError("missing")
        yield  # pragma: no cover

    with pytest.raises(PythonException, match="`broken` failed: KeyError"):
        people.mapInPandas(broken, "id int").collect()


def test_filter_above_map_in_pandas_is_not_pushed_below_it(people, tmp_path):
    log = tmp_path / "seen"

    def record(frames):
        for frame in frames:
            for value in frame["id"]:
                _log(log, value)
            yield frame[["id"]]

    assert _rows(people.mapInPandas(record, "id int").filter("id > 1")) == [(2,), (3,)]
    assert sorted(_logged(log)) == [1, 2, 3]


# ---- applyInPandas and cogroup ------------------------------------------------------
def test_apply_in_pandas_one_call_per_group_with_and_without_key(spark):
    df = spark.createDataFrame([("a", 1), ("b", 5), ("a", 3)], "k string, v int")

    def centred(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(v=frame["v"] - frame["v"].mean())

    out = df.groupBy("k").applyInPandas(centred, "k string, v double")
    assert sorted(_rows(out)) == [("a", -1.0), ("a", 1.0), ("b", 0.0)]

    def summary(key, frame):
        return pd.DataFrame({"k": [key[0]], "n": [len(frame)], "total": [frame["v"].sum()]})

    out = df.groupBy(F.col("k")).applyInPandas(summary, "k string, n long, total long")
    assert sorted(_rows(out)) == [("a", 2, 4), ("b", 1, 5)]


def test_apply_in_pandas_error_names_the_function_and_the_group(spark):
    df = spark.createDataFrame([("a", 1), ("b", 0)], "k string, v int")

    def ratio(frame):
        if (frame["v"] == 0).any():
            raise ValueError("zero")
        return frame

    with pytest.raises(PythonException, match=r"`ratio` failed on the group \('b',\)"):
        df.groupBy("k").applyInPandas(ratio, "k string, v int").collect()


def test_cogroup_apply_in_pandas_pairs_groups_of_both_sides(spark):
    orders = spark.createDataFrame([(1, 10.0), (2, 5.0), (1, 2.0)], "id int, amount double")
    users = spark.createDataFrame([(1, "ann"), (3, "cy")], "uid int, name string")

    def merge(key, left, right):
        name = right["name"].iloc[0] if len(right) else None
        return pd.DataFrame({"id": [key[0]], "total": [left["amount"].sum()],
                             "name": [name]})

    out = orders.groupBy("id").cogroup(users.groupBy("uid")).applyInPandas(
        merge, "id int, total double, name string")
    assert sorted(_rows(out)) == [(1, 12.0, "ann"), (2, 5.0, None), (3, 0.0, "cy")]

    def sizes(left, right):
        return pd.DataFrame({"l": [len(left)], "r": [len(right)]})

    out = orders.groupBy("id").cogroup(users.groupBy("uid")).applyInPandas(
        sizes, "l long, r long")
    assert sorted(_rows(out)) == [(0, 1), (1, 0), (2, 1)]


def test_plan_with_a_udf_runs_in_another_process(people, tmp_path, python_env):
    """What an executor in another process gets: the pickled plan, no test module."""
    import subprocess
    import sys

    scale = 3
    df = people.select(F.udf(lambda x: x * scale, "int")("id").alias("t"),
                       F.pandas_udf(lambda s: s.str.len(), "long")("name").alias("n"))
    plan_file = tmp_path / "plan.pkl"
    plan_file.write_bytes(pickle.dumps(df._plan))
    script = (
        "import pickle, sys, polars as pl\n"
        "from unbounded.engine.context import CompileContext\n"
        "from unbounded.engine.plans import compile_output\n"
        "plan = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "frame, _ = compile_output(plan, {}, CompileContext(pl.Schema(), 0))\n"
        "print(frame.collect().rows())\n")
    done = subprocess.run([sys.executable, "-c", script, str(plan_file)], env=python_env,
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[(3, 3), (6, None), (9, 2)]"

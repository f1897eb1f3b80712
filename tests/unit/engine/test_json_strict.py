"""``from_json`` in PERMISSIVE mode reads what Spark reads: a value Spark's parser does not
convert (``1.5`` or ``true`` for an integer, a number out of the type's range, a scalar
or an object for an array, ``true`` or a quoted number for a double) is NULL where Spark
makes it NULL, and a value read into a string field is its text as Spark writes it.
Polars' decoder read ``1.5`` as 1, ``true`` as 1 and wrapped a scalar in an array.
Expected values are PySpark 4.3's (a recorded run of ``from_json(js, schema)``)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

from unbounded.files.json_strict import strict_decode
from unbounded.sql import SparkSession

CASES = [
    ('a INT, b STRING', [
        ('{"a": 1.5, "b": "x"}', {'a': None, 'b': 'x'}),
        ('{"a": true, "b": "x"}', {'a': None, 'b': 'x'}),
        ('{"a": 3000000000, "b": "x"}', {'a': None, 'b': 'x'}),
        ('{"a": 1e2, "b": "x"}', {'a': None, 'b': 'x'}),
        ('{"a": 1.0, "b": "x"}', {'a': None, 'b': 'x'}),
        ('{"a": 99999999999999999999, "b": "x"}', {'a': None, 'b': 'x'}),
        ('{"a": "7", "b": "x"}', {'a': None, 'b': 'x'}),
        ('{"a": 1, "b": {"x": 1}}', {'a': 1, 'b': '{"x":1}'}),
        ('{"a": 1, "b": [1, 2]}', {'a': 1, 'b': '[1,2]'}),
        ('{"a": 1, "b": 1.50}', {'a': 1, 'b': '1.5'}),
        ('{"a": 1, "b": 1e2}', {'a': 1, 'b': '100.0'}),
        ('{"a": 1, "b": true}', {'a': 1, 'b': 'true'}),
        ('{"a": 1, "b": 12}', {'a': 1, 'b': '12'}),
        ('{"a": 1, "b": {"x": 1.50, "y": [true, null], "z": "q\\"r"}}',
         {'a': 1, 'b': '{"x":1.5,"y":[true,null],"z":"q\\"r"}'}),
        ('{"a": -0, "b": -0.0}', {'a': 0, 'b': '-0.0'}),
        ('{"a": 1, "b": 1E+2}', {'a': 1, 'b': '100.0'}),
        ('{"a": 1, "b": 0.1}', {'a': 1, 'b': '0.1'}),
        ('{"a": 1, "b": 1e20}', {'a': 1, 'b': '1.0E20'}),
        ('{"a": 1, "b": 123456789012345678901234567890}',
         {'a': 1, 'b': '123456789012345678901234567890'}),
        ('{"a": 1, "b": 1.0e-5}', {'a': 1, 'b': '1.0E-5'}),
        ('{"a": 2, "b": null}', {'a': 2, 'b': None}),
        ('{"b": "only"}', {'a': None, 'b': 'only'}),
    ]),
    ('a BIGINT', [
        ('{"a": 1.5}', {'a': None}),
        ('{"a": true}', {'a': None}),
        ('{"a": 99999999999999999999}', {'a': None}),
        ('{"a": 9223372036854775807}', {'a': 9223372036854775807}),
        ('{"a": -9223372036854775808}', {'a': -9223372036854775808}),
        ('{"a": 9223372036854775808}', {'a': None}),
        ('{"a": 5}', {'a': 5}),
    ]),
    ('a TINYINT, c SMALLINT', [
        ('{"a": 200, "c": 1}', {'a': -56, 'c': 1}),
        ('{"a": 1, "c": 40000}', {'a': 1, 'c': None}),
        ('{"a": -128, "c": -32768}', {'a': -128, 'c': -32768}),
    ]),
    ('a DOUBLE, b FLOAT', [
        ('{"a": true, "b": 1}', {'a': None, 'b': 1.0}),
        ('{"a": "1.5", "b": 1}', {'a': None, 'b': 1.0}),
        ('{"a": 1, "b": 1.5}', {'a': 1.0, 'b': 1.5}),
        ('{"a": "NaN", "b": "Infinity"}', {'a': 'NaN', 'b': 'inf'}),
        ('{"a": 1e400, "b": 1e39}', {'a': 'inf', 'b': 'inf'}),
    ]),
    ('a BOOLEAN', [
        ('{"a": 1}', {'a': None}),
        ('{"a": "true"}', {'a': None}),
        ('{"a": false}', {'a': False}),
    ]),
    ('arr ARRAY<INT>', [
        ('{"arr": 1}', {'arr': None}),
        ('{"arr": "x"}', {'arr': None}),
        ('{"arr": {"x": 1}}', {'arr': None}),
        ('{"arr": [1.5, 2]}', {'arr': None}),
        ('{"arr": [true]}', {'arr': None}),
        ('{"arr": [1, null]}', {'arr': [1, None]}),
        ('{"arr": [3000000000]}', {'arr': None}),
    ]),
    ('s STRUCT<a: INT>, n INT', [
        ('{"s": {"a": 1.5}, "n": 1}', {'s': {'a': None}, 'n': 1}),
        ('{"s": 1, "n": 1}', {'s': None, 'n': 1}),
        ('{"s": [1], "n": 1}', {'s': None, 'n': 1}),
        ('{"s": {"a": 2}, "n": 1.5}', {'s': {'a': 2}, 'n': None}),
    ]),
    ('arr ARRAY<STRUCT<a: INT>>', [
        ('{"arr": [{"a": 1.5}, {"a": 2}]}', {'arr': [{'a': None}, {'a': 2}]}),
        ('{"arr": {"a": 1}}', {'arr': None}),
        ('{"arr": [1]}', {'arr': None}),
    ]),
    ('ARRAY<INT>', [
        ('[1.5, 2]', None),
        ('[1, 2]', [1, 2]),
        ('1', None),
        ('{"a": 1}', None),
    ]),
    ('ARRAY<STRUCT<a: INT>>', [
        ('{"a": 1}', [{'a': 1}]),
        ('[{"a": 1.5}]', [{'a': None}]),
        ('{"a": 1.5}', [{'a': None}]),
    ]),
    ('a STRING', [
        ('{"a": 1}', {'a': '1'}),
        ('{"a": [1,{"b":2.50}]}', {'a': '[1,{"b":2.5}]'}),
        ('{"a": {}}', {'a': '{}'}),
        ('{"a": []}', {'a': '[]'}),
    ]),
]


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    with SparkSession.builder.create() as session:  # stopped: its UI port is freed
        yield session


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return str(value)
    return value


def _from_json(spark: SparkSession, texts: list[str], schema: str) -> list[Any]:
    frame = spark.createDataFrame([(t,) for t in texts], "js STRING")
    rows = frame.selectExpr(f"from_json(js, '{schema}') AS v").toArrow().to_pylist()
    return [_plain(r["v"]) for r in rows]


@pytest.mark.parametrize(("schema", "cases"), CASES, ids=[c[0] for c in CASES])
def test_each_value_alone_reads_as_spark_reads_it(spark, schema, cases):
    got = {text: _from_json(spark, [text], schema)[0] for text, _ in cases}
    assert got == dict(cases)


@pytest.mark.parametrize(("schema", "cases"), CASES, ids=[c[0] for c in CASES])
def test_a_batch_of_them_reads_as_spark_reads_it(spark, schema, cases):
    texts = [text for text, _ in cases]
    assert dict(zip(texts, _from_json(spark, texts, schema), strict=True)) == dict(cases)


def test_refused_rows_send_only_their_neighbourhood_row_by_row(spark):
    texts = [f'{{"a": {i}, "b": "x{i}"}}' for i in range(9000)]
    texts[5000] = '{"a": 1.5, "b": "bad"}'
    texts[5001] = '{"a": 7, "b": 1e20}'
    got = _from_json(spark, texts, "a INT, b STRING")
    want = [{"a": i, "b": f"x{i}"} for i in range(9000)]
    want[5000], want[5001] = {"a": None, "b": "bad"}, {"a": 7, "b": "1.0E20"}
    assert got == want
    values, read = strict_decode(pl.Series(texts), pl.Struct({"a": pl.Int32, "b": pl.String}))
    # 16 parts of 563 rows, the refused one in 16 parts of 36: rows 4972..5007 are left
    assert read.arg_true().to_list() == [*range(4972), *range(5008, 9000)]
    assert values[0] == {"a": 0, "b": "x0"}
    assert values[8999] == {"a": 8999, "b": "x8999"}


# PySpark 4.3: no document is NULL; a line break between tokens is whitespace, one inside
# a string is malformed (a struct of NULLs); what follows the first document is ignored;
# the last of a repeated field wins; one object is read as an array of structs.
EDGES = [
    ("a INT", None, None), ("a INT", "", None), ("a INT", "  ", None),
    ("a INT", '{"a":\n 1}', {"a": 1}), ("a INT", '{"a": "x\ny"}', {"a": None}),
    ("a INT", '{"a": 2} {"a": 3}', {"a": 2}), ("a INT", '{"a": 1, "a": 2}', {"a": 2}),
    ("a INT", '{"a": 1}x', {"a": 1}),
    ("ARRAY<STRUCT<a: INT>>", '[{"a": 1, "z": 2}]', [{"a": 1}]),
    ("ARRAY<STRUCT<a: INT>>", '{"a": 1, "z": 2}', [{"a": 1}]),
    ("ARRAY<STRUCT<a: INT>>", '[{"a": 1}, 2]', None), ("ARRAY<STRUCT<a: INT>>", "[]", []),
    ("ARRAY<STRUCT<a: INT>>", "", None), ("ARRAY<STRUCT<a: INT>>", '[{"a": 1}] x', [{"a": 1}]),
    ("ARRAY<INT>", "", None), ("ARRAY<INT>", '[1, "2"]', None), ("ARRAY<INT>", "[1, 2] 3", [1, 2]),
]


@pytest.mark.parametrize(("schema", "text", "want"), EDGES)
def test_edges_read_as_spark_reads_them(spark, schema, text, want):
    assert _from_json(spark, [text], schema) == [want]
    assert _from_json(spark, [text, text], schema) == [want, want]


# spark.read.schema(...).json over the same lines (PySpark 4.3): the file reader's
# row-by-row fallback, taken when pyarrow refuses a line of the file.
FILE_CASES = [
    ("a INT, b STRING", ['{"a": 1.5, "b": "x"}', '{"a": true, "b": "x"}', '{"a": 1e2, "b": "x"}',
                         '{"a": 3000000000, "b": "x"}', '{"a": 1, "b": "y"}'],
     [{"a": None, "b": "x"}] * 4 + [{"a": 1, "b": "y"}]),
    ("a BIGINT", ['{"a": 1.5}', '{"a": true}', '{"a": 9223372036854775808}',
                  '{"a": -9223372036854775808}'],
     [{"a": None}] * 3 + [{"a": -9223372036854775808}]),
    ("a TINYINT, c SMALLINT", ['{"a": 200, "c": 1}', '{"a": 1, "c": 40000}',
                               '{"a": -128, "c": -32768}'],
     [{"a": -56, "c": 1}, {"a": 1, "c": None}, {"a": -128, "c": -32768}]),
    ("a DOUBLE, b FLOAT", ['{"a": true, "b": 1}', '{"a": "1.5", "b": 1}',
                           '{"a": "NaN", "b": "Infinity"}'],
     [{"a": None, "b": 1.0}, {"a": None, "b": 1.0}, {"a": "NaN", "b": "inf"}]),
    ("a BOOLEAN", ['{"a": 1}', '{"a": "true"}', '{"a": false}'],
     [{"a": None}, {"a": None}, {"a": False}]),
    ("arr ARRAY<INT>", ['{"arr": 1}', '{"arr": [1.5, 2]}', '{"arr": [true]}', '{"arr": [1, null]}'],
     [{"arr": None}] * 3 + [{"arr": [1, None]}]),
]


@pytest.mark.parametrize(("schema", "lines", "want"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_the_json_file_reader_refuses_what_spark_refuses(spark, tmp_path, schema, lines, want):
    (tmp_path / "part.json").write_text("\n".join(lines) + "\n")
    rows = spark.read.schema(schema).json(str(tmp_path)).toArrow().to_pylist()
    assert [_plain(r) for r in rows] == want


# PySpark 4.3: a timestamp or date that does not read makes the nearest struct field
# holding it NULL: an array or a map of them as a whole, a struct's field alone.
TEMPORALS = "a ARRAY<TIMESTAMP>, s STRUCT<t: TIMESTAMP, u: INT>, t TIMESTAMP, " \
    "m MAP<STRING, DATE>, n INT"
NESTED = "x ARRAY<STRUCT<t: TIMESTAMP, u: INT>>, m MAP<STRING, STRUCT<t: DATE>>, " \
    "l MAP<STRING, ARRAY<DATE>>"


@pytest.mark.parametrize(("schema", "text", "want"), [
    (TEMPORALS, '{"a": ["2026-03-08 10:00:00", "x"], "n": 1}', '{"n":1}'),
    (TEMPORALS, '{"s": {"t": "x", "u": 1}, "n": 1}', '{"s":{"u":1},"n":1}'),
    (TEMPORALS, '{"t": "x", "n": 1}', '{"n":1}'),
    (TEMPORALS, '{"m": {"k": "x"}, "n": 1}', '{"n":1}'),
    (TEMPORALS, '{"a": ["2026-3-8"], "t": "2026-03-08 10:00Z", "n": 1}',
     '{"a":["2026-03-08T00:00:00.000Z"],"n":1}'),
    (NESTED, '{"x": [{"t": "bad", "u": 1}, {"t": "2026-03-08", "u": 2}], '
             '"m": {"k": {"t": "bad"}}, "l": {"k": ["bad"]}}',
     '{"x":[{"u":1},{"t":"2026-03-08T00:00:00.000Z","u":2}],"m":{"k":{}}}'),
])
def test_a_temporal_that_does_not_read_nulls_its_nearest_struct_field(spark, schema, text,
                                                                        want):
    frame = spark.createDataFrame([(text,)], "js STRING")
    got = frame.selectExpr(f"to_json(from_json(js, '{schema}')) AS v").collect()[0]["v"]
    assert got == want


def test_a_row_longer_than_pyarrows_block_is_read_in_bulk():
    big = '{"a": 1, "b": "' + "x" * 3_000_000 + '"}'
    values, read = strict_decode(pl.Series([big, '{"a": 2}']),
                                 pl.Struct({"a": pl.Int64, "b": pl.String}))
    assert read.to_list() == [True, True]
    assert values[1] == {"a": 2, "b": None}
    assert len(values[0]["b"]) == 3_000_000


def test_to_json_evaluates_its_argument_once_per_batch(spark, monkeypatch):
    from unbounded.engine import json_functions

    calls = []
    original = json_functions._from_json_batch

    def counted(*args: Any) -> pl.Series:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(json_functions, "_from_json_batch", counted)
    frame = spark.createDataFrame([('{"s": {"t": "2026-03-08", "u": 1}, "n": 1}',)], "js STRING")
    row = frame.selectExpr(
        "to_json(from_json(js, 's STRUCT<t: TIMESTAMP, u: INT>, n INT')) AS v").collect()[0]
    assert row["v"] == '{"s":{"t":"2026-03-08T00:00:00.000Z","u":1},"n":1}'
    assert len(calls) <= 2  # the schema pass over an empty frame, then the batch

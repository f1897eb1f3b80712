"""The JSON writer prints what Spark's prints (expected lines are PySpark 4.3's output
for the same query, session zone UTC)."""

from __future__ import annotations

import glob
from pathlib import Path

import polars as pl
import pytest

from unbounded.files.json_lines import json_lines
from unbounded.sql import SparkSession

QUERY = """select cast(1.50 as decimal(5,2)) dec, cast('NaN' as double) nan,
 cast('Infinity' as double) inf, 1e20 big, cast(0.1 as float) f, 1.0 one,
 cast(X'6162' as binary) bin, array(1, null, 3) arr,
 array(named_struct('a', 1, 'b', cast(null as string)), null) arrs,
 map('k', cast(null as int), 'j', 2) m,
 named_struct('x', named_struct('y', cast(null as int)), 'z', 'q"\\\\u00e9') s,
 cast(null as string) nul, true bo, 'é\\n' txt"""
SCALARS = '"dec":1.50,"nan":"NaN","inf":"Infinity","big":1.0E20,"f":0.1,"one":1.0,"bin":"YWI="'


@pytest.mark.parametrize(("options", "line"), [
    ({}, "{" + SCALARS + ',"arr":[1,null,3],"arrs":[{"a":1},null],"m":{"k":null,"j":2},'
     '"s":{"x":{},"z":"q\\"\\\\u00e9"},"bo":true,"txt":"é\\n"}'),
    ({"ignoreNullFields": "false"}, "{" + SCALARS + ',"arr":[1,null,3],'
     '"arrs":[{"a":1,"b":null},null],"m":{"k":null,"j":2},"s":{"x":{"y":null},'
     '"z":"q\\"\\\\u00e9"},"nul":null,"bo":true,"txt":"é\\n"}'),
])
def test_json_files_print_values_as_spark_and_leave_null_fields_out(
        spark: SparkSession, tmp_path: Path, options: dict[str, str], line: str):
    spark.sql(QUERY).write.options(**options).json(str(tmp_path / "out"))
    parts = sorted(glob.glob(str(tmp_path / "out" / "part-*")))
    assert "".join(Path(p).read_text(encoding="utf-8") for p in parts) == line + "\n"


def test_doubles_print_as_java_does_scientific_outside_1e_minus_3_to_1e7():
    values = [1e20, 12345678.9, 1e7, 9999999.0, 0.001, 0.0001234, -1.5e-10, 0.0, -12345678.0]
    frame = pl.DataFrame({"x": values})
    assert json_lines(frame, ignore_nulls=True).to_list() == [
        '{"x":1.0E20}', '{"x":1.23456789E7}', '{"x":1.0E7}', '{"x":9999999.0}',
        '{"x":0.001}', '{"x":1.234E-4}', '{"x":-1.5E-10}', '{"x":0.0}', '{"x":-1.2345678E7}']


def test_a_row_of_nulls_is_an_empty_object_and_a_map_keeps_null_values():
    entries = pl.List(pl.Struct({"key": pl.String, "value": pl.Float64}))
    frame = pl.DataFrame({
        "a": [[1e20, None, 0.5], None],
        "m": pl.Series([[("z", None)], None], dtype=entries).cast(pl.Map(pl.String,
                                                                         pl.Float64))})
    assert json_lines(frame, ignore_nulls=True).to_list() == [
        '{"a":[1.0E20,null,0.5],"m":{"z":null}}', "{}"]
